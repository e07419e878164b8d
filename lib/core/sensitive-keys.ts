// No dependency: the Workers build reads this list without loading pino.

/**
 * Keys whose values are blanked before a log line is written (pino's redaction in lib/core/logger.ts,
 * the Workers' console logger in lib/core/console-logger.ts). Secrets and customer details never
 * reach a log: code logs ids, not payloads, and this list is the second guard for anything logged
 * by mistake.
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

/** Request headers blanked as well: a checkout page's client secret and the caller's idempotency key. */
export const sensitiveHeaders = ["x-client-secret", "idempotency-key"];
