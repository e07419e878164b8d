import pino, { type Logger } from "pino";
import type { Config } from "./config.js";
import { sensitiveHeaders, sensitiveKeys } from "./sensitive-keys.js";

export type { Logger };
export { sensitiveKeys };

/** The paths pino blanks before a line is written: the sensitive keys at the top and two levels down, and two headers. */
export const redactPaths = [
  ...sensitiveKeys,
  ...sensitiveKeys.map((k) => `*.${k}`),
  ...sensitiveKeys.map((k) => `*.*.${k}`),
  ...sensitiveHeaders.map((h) => `req.headers["${h}"]`),
];

/** The service's pino logger: JSON lines by default, readable text with LOG_FORMAT=text. */
export async function createLogger(options: Config["log"], destination?: pino.DestinationStream): Promise<Logger> {
  const base: pino.LoggerOptions = {
    level: options.level,
    base: { service: "payment-service" },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: redactPaths, censor: "[redacted]" },
    formatters: { level: (label) => ({ level: label }) },
  };
  if (destination) return pino(base, destination);
  if (options.format === "text") {
    const { default: pretty } = await import("pino-pretty");
    return pino(base, pretty({ colorize: process.stdout.isTTY, translateTime: "SYS:standard", ignore: "pid,hostname,service" }));
  }
  return pino(base);
}
