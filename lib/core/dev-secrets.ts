import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Config } from "./config.js";

interface DevSecrets {
  jwtSecret: string;
  encryptionKey: string;
  webhookSecret: string;
  fiuuMerchantId: string;
  fiuuVerifyKey: string;
  fiuuSecretKey: string;
}

/**
 * Secrets for the embedded default, generated once and kept in DATA_DIR so that a printed token
 * keeps working across restarts. Never used when ENVIRONMENT=production (config refuses to start).
 */
export function loadDevSecrets(dataDir: string): DevSecrets {
  const file = path.resolve(dataDir, "dev-secrets.json");
  if (existsSync(file)) return JSON.parse(readFileSync(file, "utf8")) as DevSecrets;
  const secrets: DevSecrets = {
    jwtSecret: randomBytes(32).toString("base64url"),
    encryptionKey: randomBytes(32).toString("hex"),
    webhookSecret: `whsec_${randomBytes(24).toString("base64")}`,
    fiuuMerchantId: "SB_localshop",
    fiuuVerifyKey: randomBytes(16).toString("hex"),
    fiuuSecretKey: randomBytes(16).toString("hex"),
  };
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  chmodSync(file, 0o600);
  return secrets;
}

/** Fills every secret the configuration left empty from the development secrets (not in production). */
export function withDevSecrets(config: Config): Config {
  if (config.isProduction) return config;
  const missing =
    !config.jwtSecret || !config.encryptionKey || !config.webhooks.secret || !config.fiuu.merchantId || !config.fiuu.verifyKey || !config.fiuu.secretKey;
  if (!missing) return config;
  const dev = loadDevSecrets(config.dataDir);
  return {
    ...config,
    jwtSecret: config.jwtSecret ?? dev.jwtSecret,
    encryptionKey: config.encryptionKey ?? Buffer.from(dev.encryptionKey, "hex"),
    webhooks: {
      ...config.webhooks,
      secret: config.webhooks.secret ?? dev.webhookSecret,
      // The demo shop receives the webhooks when no receiver is configured (development only).
      urls: config.webhooks.urls.length > 0 || config.environment !== "development" ? config.webhooks.urls : [`${config.publicUrl}/demo/webhooks`],
    },
    fiuu: {
      ...config.fiuu,
      merchantId: config.fiuu.merchantId ?? dev.fiuuMerchantId,
      verifyKey: config.fiuu.verifyKey ?? dev.fiuuVerifyKey,
      secretKey: config.fiuu.secretKey ?? dev.fiuuSecretKey,
    },
  };
}
