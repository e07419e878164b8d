import pino, { type Logger } from "pino";
import type { Config } from "./config.js";

export type { Logger };

/**
 * Paths pino blanks before a line is written. Secrets and customer details never reach a log:
 * code logs ids, not payloads, and this list is the second guard for anything logged by mistake.
 */
export const sensitiveKeys = [
  "authorization",
  "cookie",
  "password",
  "secret",
  "token",
  "client_secret",
  "clientSecret",
  "skey",
  "vcode",
  "Signature",
  "encryptionKey",
  "jwtSecret",
  "verifyKey",
  "secretKey",
  "customer",
  "beneficiary",
  "account_number",
  "BeneficiaryName",
  "BeneficiaryAccNo",
  "name",
  "email",
  "mobile",
  "bill_name",
  "bill_email",
  "bill_mobile",
  "customerName",
  "customerEmail",
  "customerMobile",
];
export const redactPaths = [
  ...sensitiveKeys,
  ...sensitiveKeys.map((k) => `*.${k}`),
  ...sensitiveKeys.map((k) => `*.*.${k}`),
  'req.headers["x-client-secret"]',
  'req.headers["idempotency-key"]',
];

/** The service's pino logger: JSON lines by default, readable text with LOG_FORMAT=text. */
export async function createLogger(
  options: Config["log"],
  destination?: pino.DestinationStream,
): Promise<Logger> {
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
