import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { resolveSecrets, type Config, type DevSecrets, type RawConfig } from "./config.js";

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

/** The Node server's resolveSecrets: every secret the configuration left empty comes from the development secrets (not in production). */
export function withDevSecrets(config: RawConfig): Config {
  return resolveSecrets(config, { devSecrets: loadDevSecrets });
}
