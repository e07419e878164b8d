import type { Config } from "./config.js";
import type { Logger } from "./logger.js";
import { sensitiveHeaders, sensitiveKeys } from "./sensitive-keys.js";

// Logging for workerd: pino's Node build needs worker threads, which workerd has not. Imports
// nothing but the list of sensitive keys, so the Workers bundle carries no pino.

const levelValues = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Number.POSITIVE_INFINITY } as const;
type LevelName = Config["log"]["level"];

/** Blanks the values of sensitive keys at any depth (pino's redact paths reach two levels). */
function redact(value: unknown, sensitive: ReadonlySet<string>, depth = 0): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return {
      type: value.name,
      message: value.message,
      ...(typeof code === "string" ? { code } : {}),
      ...(value.cause !== undefined && depth < 4 ? { cause: redact(value.cause, sensitive, depth + 1) } : {}),
    };
  }
  if (value === null || typeof value !== "object" || depth > 6) return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, sensitive, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = sensitive.has(key.toLowerCase()) ? "[redacted]" : redact(v, sensitive, depth + 1);
  return out;
}

/**
 * A logger with the calls the service makes on pino's (info/warn/error/debug/trace/fatal with an
 * optional object first, and child), writing one JSON line per entry to the console, which
 * Workers Logs and `wrangler tail` collect. Values under lib/core/sensitive-keys.ts's keys (and the
 * client-secret and idempotency-key headers) are blanked as pino's redaction blanks them.
 */
export function createConsoleLogger(level: LevelName, keys: readonly string[] = sensitiveKeys): Logger {
  const sensitive = new Set([...keys, ...sensitiveHeaders].map((k) => k.toLowerCase()));
  const make = (bindings: Record<string, unknown>): Logger => {
    const threshold = levelValues[level];
    const write =
      (name: Exclude<LevelName, "silent">) =>
      (first?: unknown, ...rest: unknown[]) => {
        if (levelValues[name] < threshold) return;
        const fields = typeof first === "object" && first !== null ? (redact(first, sensitive) as Record<string, unknown>) : {};
        const message = typeof first === "string" ? first : typeof rest[0] === "string" ? rest[0] : undefined;
        const line = JSON.stringify({ level: name, time: new Date().toISOString(), ...bindings, ...fields, ...(message ? { msg: message } : {}) });
        if (levelValues[name] >= levelValues.error) console.error(line);
        else if (name === "warn") console.warn(line);
        else console.log(line);
      };
    const logger = {
      level,
      trace: write("trace"),
      debug: write("debug"),
      info: write("info"),
      warn: write("warn"),
      error: write("error"),
      fatal: write("fatal"),
      silent: () => {},
      isLevelEnabled: (name: LevelName) => levelValues[name] >= threshold,
      child: (more: Record<string, unknown>) => make({ ...bindings, ...(redact(more, sensitive) as Record<string, unknown>) }),
    };
    return logger as unknown as Logger;
  };
  return make({ service: "payment-service" });
}
