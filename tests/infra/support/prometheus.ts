import { spawnSync } from "node:child_process";
import { createMetrics } from "../../../lib/metrics.js";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text exposition format into samples (comments dropped). */
export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim() || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]!] = pair[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    const raw = match[3]!;
    samples.push({ name: match[1]!, labels, value: raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw) });
  }
  return samples;
}

/** The value of the first sample of `name` carrying all of `labels`, or undefined. */
export function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

const promqlKeywords = new Set(["and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan", "start", "end"]);

/**
 * The metric names a PromQL expression selects: identifiers that are not functions, keywords,
 * label names (in matchers and grouping lists), strings, numbers, durations or Grafana variables.
 */
export function metricNamesIn(expr: string): Set<string> {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, " ") // strings
    .replace(/\$\{[^}]*\}|\$[A-Za-z_]\w*/g, " ") // Grafana variables ($__rate_interval, ${job})
    .replace(/\{[^}]*\}/g, " ") // label matchers
    .replace(/\[[^\]]*\]/g, " ") // ranges and subqueries
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ") // label lists
    .replace(/\boffset\s+-?\w+/g, " ")
    .replace(/(?<![A-Za-z0-9_:])\d+(?:\.\d+)?(?:e[+-]?\d+)?/gi, " "); // numbers
  const names = new Set<string>();
  for (const match of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const token = match[0];
    const rest = stripped.slice(match.index + token.length);
    if (/^\s*\(/.test(rest)) continue; // a function or an aggregation
    if (promqlKeywords.has(token.toLowerCase())) continue;
    names.add(token);
  }
  return names;
}

/**
 * Every series name the service exports: its registry (with prom-client's default process_* and
 * nodejs_* metrics), histograms as their _bucket/_sum/_count series.
 */
export async function exportedSeriesNames(): Promise<Set<string>> {
  const { registry } = createMetrics();
  const names = new Set<string>();
  for (const metric of await registry.getMetricsAsJSON()) {
    const type = String(metric.type);
    if (type === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(metric.name + suffix);
    else if (type === "summary") for (const suffix of ["", "_sum", "_count"]) names.add(metric.name + suffix);
    else names.add(metric.name);
  }
  return names;
}

/** The path of an executable on PATH, or undefined. */
export function locateTool(name: string): string | undefined {
  const found = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  const path = found.stdout.trim();
  return found.status === 0 && path ? path : undefined;
}

/** In CI a missing tool is a failure, elsewhere a reason to skip. */
export const inCI = ["true", "1"].includes((process.env.CI ?? "").toLowerCase());

/** Runs a command and returns its exit status and combined output. */
export function run(command: string, args: string[], options: { cwd?: string } = {}): { status: number | null; output: string } {
  const result = spawnSync(command, args, { encoding: "utf8", cwd: options.cwd, timeout: 60_000 });
  return { status: result.status, output: `${result.stdout ?? ""}${result.stderr ?? ""}` };
}
