import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parse, stringify } from "yaml";
import { createMetrics } from "../../../lib/core/metrics.js";
import { freePort } from "../../support/process.js";

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

const promqlKeywords = new Set([
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "inf",
  "nan",
  "start",
  "end",
]);

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

/** Polls `probe` every 250 ms until it returns a value, or throws after timeoutMs. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

export interface PrometheusAlert {
  labels: Record<string, string>;
  state: "pending" | "firing";
}
export interface PrometheusRule {
  name: string;
  health: string;
  lastError?: string;
  state: string;
}

export interface RunningPrometheus {
  api: string;
  /** An instant query's result vector. */
  query(promql: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  /** Alerts pending or firing now. */
  alerts(): Promise<PrometheusAlert[]>;
  /** The alerting rules as loaded, with their health and state. */
  rules(): Promise<PrometheusRule[]>;
  /** What Prometheus wrote to stderr. */
  log(): string;
  stop(): Promise<void>;
}

const prometheusDir = path.resolve("infra/prometheus");

/**
 * The real Prometheus with the shipped prometheus.yml, its static job pointed at `target`, scraping
 * and evaluating every second, with the given rule files; Alertmanager only when one is named.
 */
export async function startPrometheus(options: { target: string; ruleFiles: string[]; alertmanager?: string }): Promise<RunningPrometheus> {
  const binary = locateTool("prometheus");
  if (!binary) throw new Error('prometheus is not on PATH: install Debian\'s "prometheus" package; .ci/run does');
  const scratch = mkdtempSync(path.join(tmpdir(), "prometheus-it-"));
  const config = parse(readFileSync(path.join(prometheusDir, "prometheus.yml"), "utf8")) as {
    global?: Record<string, unknown>;
    rule_files?: string[];
    alerting?: unknown;
    scrape_configs: { job_name: string; static_configs?: { targets: string[] }[] }[];
  };
  const job = config.scrape_configs.find((j) => j.job_name === "payment-service-static")!;
  job.static_configs = [{ targets: [options.target] }];
  config.scrape_configs = [job];
  config.global = { scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" };
  config.rule_files = options.ruleFiles;
  if (options.alertmanager) config.alerting = { alertmanagers: [{ static_configs: [{ targets: [options.alertmanager] }] }] };
  else delete config.alerting;
  writeFileSync(path.join(scratch, "prometheus.yml"), stringify(config));

  const port = await freePort();
  const api = `http://127.0.0.1:${port}`;
  const child = spawn(
    binary,
    [
      `--config.file=${path.join(scratch, "prometheus.yml")}`,
      `--storage.tsdb.path=${path.join(scratch, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr!.on("data", (chunk: Buffer) => (log += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(scratch, { recursive: true, force: true });
  };
  const get = async <T>(pathAndQuery: string) => {
    const body = (await (await fetch(`${api}${pathAndQuery}`)).json()) as { status: string; data: T };
    if (body.status !== "success") throw new Error(`Prometheus ${pathAndQuery}: ${JSON.stringify(body)}`);
    return body.data;
  };
  try {
    await waitFor(`Prometheus on ${api}`, 10_000, async () => ((await fetch(`${api}/-/ready`)).ok ? true : undefined));
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\n${log}`);
  }
  return {
    api,
    query: async (promql) =>
      (await get<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent(promql)}`))
        .result,
    alerts: async () => (await get<{ alerts: PrometheusAlert[] }>("/api/v1/alerts")).alerts,
    rules: async () => (await get<{ groups: { rules: PrometheusRule[] }[] }>("/api/v1/rules?type=alert")).groups.flatMap((g) => g.rules),
    log: () => log,
    stop,
  };
}

export interface RunningAlertmanager {
  /** host:port, for Prometheus's alerting config. */
  address: string;
  /** Alerts Alertmanager holds now, by their labels. */
  alerts(): Promise<{ labels: Record<string, string>; status: { state: string } }[]>;
  stop(): Promise<void>;
}

/** The Alertmanager binary: Debian's prometheus-alertmanager package names it so, upstream alertmanager. */
export const alertmanagerBinary = () => locateTool("prometheus-alertmanager") ?? locateTool("alertmanager");

/** The real Alertmanager with a configuration file, on a free port, clustering off. */
export async function startAlertmanager(configFile: string): Promise<RunningAlertmanager> {
  const binary = alertmanagerBinary();
  if (!binary) throw new Error('Alertmanager is not on PATH: install Debian\'s "prometheus-alertmanager" package; .ci/run does');
  const scratch = mkdtempSync(path.join(tmpdir(), "alertmanager-it-"));
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const child = spawn(
    binary,
    [`--config.file=${configFile}`, `--storage.path=${scratch}`, `--web.listen-address=${address}`, "--cluster.listen-address=", "--log.level=warn"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr!.on("data", (chunk: Buffer) => (log += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(scratch, { recursive: true, force: true });
  };
  try {
    await waitFor(`Alertmanager on ${address}`, 10_000, async () => ((await fetch(`http://${address}/-/ready`)).ok ? true : undefined));
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\n${log}`);
  }
  return {
    address,
    alerts: async () =>
      (await (await fetch(`http://${address}/api/v2/alerts`)).json()) as { labels: Record<string, string>; status: { state: string } }[],
    stop,
  };
}
