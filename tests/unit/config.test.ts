import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseDuration, resolveSecrets, type DevSecrets } from "../../lib/core/config.js";

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

/** A production configuration with secrets as an operator generates them (none weak, none a placeholder). */
const productionEnv = {
  ENVIRONMENT: "production",
  DATABASE_URL: "postgres://app:Zq4uT9w2LrX7@db:5432/payments",
  REDIS_HOST: "redis",
  JWT_SECRET: "kR8v2QeZ0pL4nW7sT1yU6bH3mD9fJ5cX8aG2qV0t",
  ENCRYPTION_KEY: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
  FIUU_MERCHANT_ID: "shop",
  FIUU_VERIFY_KEY: "a3c9e1f0b7d24c68e5f1a9b3c7d2e4f6",
  FIUU_SECRET_KEY: "7e2b9d4a1c8f3e6b0d5a9c2f7e1b4d8a",
  WEBHOOK_SECRET: `whsec_${Buffer.from("60ee2b7a94cd1f3852e07c6b9a4d8f1e35c2b7a09d4e6f8132a5c7e9b0d4f6a8", "hex").toString("base64")}`,
  PUBLIC_URL: "https://pay.shop.example",
  FIUU_SANDBOX: "true",
  WEBHOOK_URLS: "https://shop.example/webhooks/payments",
};

describe("configuration", () => {
  it("runs on embedded defaults with nothing configured", () => {
    const config = loadConfig({});
    expect(config.environment).toBe("development");
    expect(config.port).toBe(8086);
    expect(config.health.port).toBe(8087);
    expect(config.metrics.port).toBe(9090);
    expect(config.database).toEqual({ kind: "embedded", dataDir: ".data" });
    expect(config.redis).toEqual({ kind: "memory" });
    expect(config.log.format).toBe("json");
    expect(config.paymentTtlMs).toBe(30 * 60_000);
  });

  it.each([
    ["500ms", 500],
    ["30s", 30_000],
    ["5m", 300_000],
    ["1h", 3_600_000],
    ["1d", 86_400_000],
    ["1.5s", 1_500],
    ["10", 10_000],
    ["abc", undefined],
    ["5 minutes", undefined],
    ["-1s", undefined],
  ])("parses the duration %s", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    ["PORT", "eighty"],
    ["PORT", "70000"],
    ["LOG_LEVEL", "chatty"],
    ["LOG_FORMAT", "xml"],
    ["ENVIRONMENT", "prod"],
    ["DATABASE_URL", "mysql://db/payments"],
    ["DB_SSL_MODE", "sometimes"],
    ["DB_MAX_CONNECTIONS", "0"],
    ["DB_CONNECTION_LIFETIME", "forever"],
    ["REDIS_DB", "99"],
    ["FIUU_SANDBOX", "maybe"],
    ["FIUU_TIMEOUT", "soon"],
    ["FIUU_PAYMENT_URL", "not a url"],
    ["JWT_SECRET", "short"],
    ["ENCRYPTION_KEY", "too-short"],
    ["WEBHOOK_RETRY_ATTEMPTS", "-2"],
    ["PAYMENT_TTL", "30 minutes"],
    ["PUBLIC_URL", "localhost"],
  ])("names %s when its value (%s) is bad", (name, value) => {
    const problems = problemsOf({ [name]: value });
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join("\n")).toContain(name);
  });

  it("accepts a complete production configuration", () => {
    const config = loadConfig(productionEnv);
    expect(config.isProduction).toBe(true);
    expect(config.fiuu.paymentUrl).toBe("https://sandbox-payment.fiuu.com");
    expect(config.encryptionKey?.length).toBe(32);
  });

  it.each(Object.keys(productionEnv).filter((k) => k !== "ENVIRONMENT"))("refuses production without %s and names it", (missing) => {
    const env = { ...productionEnv, [missing]: "" };
    expect(problemsOf(env).join("\n")).toContain(missing);
  });

  it("points production at Fiuu's live hosts when FIUU_SANDBOX=false", () => {
    const config = loadConfig({ ...productionEnv, FIUU_SANDBOX: "false" });
    expect(config.fiuu.paymentUrl).toBe("https://pay.fiuu.com");
    expect(config.fiuu.apiUrl).toBe("https://api.fiuu.com");
  });

  it("lets DATABASE_URL win over DB_* and composes DB_* otherwise", () => {
    const both = loadConfig({ DATABASE_URL: "postgres://a@one/x", DB_HOST: "two" });
    expect(both.database).toMatchObject({ kind: "postgres", url: "postgres://a@one/x" });
    const parts = loadConfig({ DB_HOST: "db", DB_USER: "app", DB_PASSWORD: "p@ss word", DB_NAME: "pay", DB_MAX_CONNECTIONS: "7" });
    expect(parts.database).toMatchObject({ kind: "postgres", url: "postgres://app:p%40ss%20word@db:5432/pay", max: 7 });
  });

  it("decodes a 32-byte ENCRYPTION_KEY from hex, base64 or raw text", () => {
    const bytes = Buffer.alloc(32, 7);
    for (const text of [bytes.toString("hex"), bytes.toString("base64"), "k".repeat(32)]) {
      expect(loadConfig({ ENCRYPTION_KEY: text }).encryptionKey?.length).toBe(32);
    }
  });

  it("prefers the Upstash REST transport, then TCP, then the in-process stand-in", () => {
    expect(loadConfig({ UPSTASH_REDIS_REST_URL: "https://r.example", UPSTASH_REDIS_REST_TOKEN: "t", REDIS_HOST: "r" }).redis.kind).toBe("rest");
    expect(loadConfig({ REDIS_HOST: "r" }).redis).toMatchObject({ kind: "tcp", host: "r", port: 6379 });
    expect(problemsOf({ UPSTASH_REDIS_REST_URL: "https://r.example" }).join()).toContain("UPSTASH_REDIS_REST_TOKEN");
  });

  it("treats an empty variable as unset", () => {
    expect(loadConfig({ PORT: "", LOG_LEVEL: " " }).port).toBe(8086);
  });

  it("splits ALLOWED_ORIGINS and WEBHOOK_URLS on commas", () => {
    const config = loadConfig({ ALLOWED_ORIGINS: "https://a.example, https://b.example", WEBHOOK_URLS: "https://hook.example/x" });
    expect(config.allowedOrigins).toEqual(["https://a.example", "https://b.example"]);
    expect(config.webhooks.urls).toEqual(["https://hook.example/x"]);
  });
});

describe("secrets production refuses", () => {
  /** Production's problems with one variable changed, and that they name it without echoing the value. */
  const refusalsOf = (name: string, value: string) => {
    const problems = problemsOf({ ...productionEnv, [name]: value });
    const text = problems.join("\n");
    expect(text, `${name}=${value}`).toMatch(new RegExp(`(^|\\n)${name}: `));
    if (value.length >= 8) expect(text).not.toContain(value);
    return problems;
  };
  const secrets = [
    "DATABASE_URL",
    "MIGRATION_DATABASE_URL",
    "DB_PASSWORD",
    "REDIS_PASSWORD",
    "UPSTASH_REDIS_REST_TOKEN",
    "JWT_SECRET",
    "ENCRYPTION_KEY",
    "ENCRYPTION_KEY_PREVIOUS",
    "FIUU_MERCHANT_ID",
    "FIUU_VERIFY_KEY",
    "FIUU_SECRET_KEY",
    "WEBHOOK_SECRET",
  ];

  it.each(secrets)("refuses a template placeholder in %s", (name) => {
    // Long enough and valid in shape wherever a shape is checked, so only the placeholder is wrong.
    const placeholder = name.endsWith("DATABASE_URL")
      ? "postgres://payment_app:<password of the payment_app role>@db:5432/payments"
      : `<${name.toLowerCase()} from the secret manager, 32+ characters>`;
    expect(refusalsOf(name, placeholder).join("\n")).toMatch(new RegExp(`${name}: holds a template placeholder`));
  });

  it.each([
    ["a value with < or > anywhere", "JWT_SECRET", "kR8v2QeZ0pL4nW7sT1yU6bH3mD9fJ5cX>8aG2qV0t"],
    ["an unexpanded command substitution", "JWT_SECRET", "$(openssl rand -base64 48 | tr -d '\\n')"],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal unexpanded variable is the input under test
    ["an unexpanded variable", "FIUU_SECRET_KEY", "${FIUU_SECRET_KEY_FROM_VAULT}"],
    ["the command instead of its output (the Swarm stack's example)", "ENCRYPTION_KEY", "openssl rand -hex 32"],
    ["the README's elided password", "DATABASE_URL", "postgres://payment_app:…@db:5432/payments"],
    ["wrangler.toml's merchant id", "FIUU_MERCHANT_ID", "your_merchant_id"],
    ["a sandbox merchant id of the same template", "FIUU_MERCHANT_ID", "SB_your_merchant_id"],
    ["a stand-in word", "DB_PASSWORD", "changeme"],
    ["one repeated character", "REDIS_PASSWORD", "xxxxxxxxxxxxxxxx"],
    ["a placeholder among previous keys", "ENCRYPTION_KEY_PREVIOUS", `${"1f".repeat(16)}${"2e".repeat(16)},<the previous ENCRYPTION_KEY>`],
  ])("refuses %s (%s)", (_what, name, value) => {
    refusalsOf(name, value);
  });

  it("refuses a JWT_SECRET of one repeated character, and one under 32 characters", () => {
    refusalsOf("JWT_SECRET", "a".repeat(64));
    refusalsOf("JWT_SECRET", "kR8v2QeZ0pL4nW7sT1yU6bH3mD9fJ5c");
    expect(problemsOf({ ...productionEnv, JWT_SECRET: "kR8v2QeZ0pL4nW7sT1yU6bH3mD9fJ5cX" })).toEqual([]);
  });

  it("refuses a WEBHOOK_SECRET under 24 bytes of key material, decoding whsec_ values first", () => {
    const whsec = (bytes: number) => `whsec_${Buffer.from(Array.from({ length: bytes }, (_, i) => (i * 37 + 11) % 256)).toString("base64")}`;
    // whsec_ + 23 bytes is 38 characters: long as text, short as a key.
    expect(whsec(23).length).toBeGreaterThan(24);
    expect(refusalsOf("WEBHOOK_SECRET", whsec(23)).join("\n")).toMatch(/WEBHOOK_SECRET: must carry at least 24 bytes/);
    expect(problemsOf({ ...productionEnv, WEBHOOK_SECRET: whsec(24) })).toEqual([]);
    // Any other value is its own bytes.
    refusalsOf("WEBHOOK_SECRET", "Tq8vN2pX6rL0wZ4yB7mC1sK");
    expect(problemsOf({ ...productionEnv, WEBHOOK_SECRET: "Tq8vN2pX6rL0wZ4yB7mC1sK9" })).toEqual([]);
  });

  it("refuses a whsec_ WEBHOOK_SECRET that is not base64, in every environment", () => {
    expect(problemsOf({ WEBHOOK_SECRET: "whsec_not base64!" }).join()).toMatch(/WEBHOOK_SECRET: starts with whsec_ but the rest is not base64/);
    expect(problemsOf({ WEBHOOK_SECRET: "whsec_" }).join()).toContain("WEBHOOK_SECRET");
  });

  it.each(["FIUU_VERIFY_KEY", "FIUU_SECRET_KEY"])("refuses a %s under 16 characters", (name) => {
    expect(refusalsOf(name, "9b1d4f7a2c5e8b0").join("\n")).toMatch(new RegExp(`${name}: must be at least 16 characters`));
    expect(problemsOf({ ...productionEnv, [name]: "9b1d4f7a2c5e8b0d" })).toEqual([]);
  });

  it("refuses an ENCRYPTION_KEY of one repeated byte, however it is written", () => {
    refusalsOf("ENCRYPTION_KEY", "ab".repeat(32));
    refusalsOf("ENCRYPTION_KEY", Buffer.alloc(32, 7).toString("base64"));
  });

  it("requires FIUU_SANDBOX to be set explicitly: no silent default to Fiuu's sandbox", () => {
    const { FIUU_SANDBOX: _, ...unset } = productionEnv;
    expect(problemsOf(unset).join("\n")).toMatch(/FIUU_SANDBOX: must be set when ENVIRONMENT=production/);
    expect(loadConfig({ ...productionEnv, FIUU_SANDBOX: "false" }).fiuu.sandbox).toBe(false);
    expect(loadConfig({ ...productionEnv, FIUU_SANDBOX: "true" }).fiuu.sandbox).toBe(true);
    // Outside production the default stays the sandbox.
    expect(loadConfig({}).fiuu.sandbox).toBe(true);
  });

  it("requires WEBHOOK_URLS, or WEBHOOK_URLS=none to run without receivers", () => {
    const { WEBHOOK_URLS: _, ...unset } = productionEnv;
    expect(problemsOf(unset).join("\n")).toMatch(/WEBHOOK_URLS: required when ENVIRONMENT=production/);
    expect(problemsOf({ ...productionEnv, WEBHOOK_URLS: " " }).join("\n")).toContain("WEBHOOK_URLS");
    expect(loadConfig({ ...productionEnv, WEBHOOK_URLS: "none" }).webhooks.urls).toEqual([]);
    expect(loadConfig({ ...productionEnv, WEBHOOK_URLS: "NONE" }).webhooks.urls).toEqual([]);
    expect(loadConfig({ WEBHOOK_URLS: "none" }).webhooks.urls).toEqual([]);
    expect(problemsOf({ WEBHOOK_URLS: "none,https://hook.example/x" }).join()).toContain("WEBHOOK_URLS");
  });

  it("reports every refusal at once", () => {
    const problems = problemsOf({
      ...productionEnv,
      JWT_SECRET: "<output of openssl rand -base64 48 goes here>",
      FIUU_SECRET_KEY: "short",
      FIUU_SANDBOX: "",
    });
    expect(problems.map((p) => p.split(":")[0]).sort()).toEqual(["FIUU_SANDBOX", "FIUU_SECRET_KEY", "JWT_SECRET"]);
  });

  it("applies none of this outside production", () => {
    const weak = {
      JWT_SECRET: "a".repeat(32),
      FIUU_VERIFY_KEY: "verify",
      FIUU_SECRET_KEY: "secret",
      WEBHOOK_SECRET: "whsec_c2VjcmV0",
      DB_PASSWORD: "<password>",
    };
    for (const ENVIRONMENT of ["development", "test", "staging"]) {
      expect(problemsOf({ ...weak, ENVIRONMENT }), ENVIRONMENT).toEqual([]);
    }
  });
});

describe("resolving the secrets", () => {
  const dev: DevSecrets = {
    jwtSecret: "d".repeat(43),
    encryptionKey: "ab".repeat(32),
    webhookSecret: `whsec_${Buffer.alloc(24, 7).toString("base64")}`,
    fiuuMerchantId: "SB_localshop",
    fiuuVerifyKey: "v".repeat(32),
    fiuuSecretKey: "s".repeat(32),
  };
  const fromDev = { devSecrets: (dataDir: string) => (dataDir === ".data" ? dev : ({} as DevSecrets)) };
  const never = {
    devSecrets: (): DevSecrets => {
      throw new Error("development secrets read");
    },
  };

  it("fills every missing secret from development's own outside production, and the demo receives the webhooks", () => {
    const config = resolveSecrets(loadConfig({}), fromDev);
    expect(config).toMatchObject({
      jwtSecret: dev.jwtSecret,
      webhooks: { secret: dev.webhookSecret, urls: ["http://localhost:8086/demo/webhooks"] },
    });
    expect(config.encryptionKey.toString("hex")).toBe(dev.encryptionKey);
    expect(config.fiuu).toMatchObject({ merchantId: "SB_localshop", verifyKey: dev.fiuuVerifyKey, secretKey: dev.fiuuSecretKey });
  });

  it("keeps the secrets given and fills only the others", () => {
    const config = resolveSecrets(loadConfig({ JWT_SECRET: "g".repeat(40), FIUU_MERCHANT_ID: "shop" }), fromDev);
    expect(config.jwtSecret).toBe("g".repeat(40));
    expect(config.fiuu.merchantId).toBe("shop");
    expect(config.webhooks.secret).toBe(dev.webhookSecret);
  });

  it("reads no development secret when every secret is given, in production or not", () => {
    expect(resolveSecrets(loadConfig(productionEnv), never).jwtSecret).toBe(productionEnv.JWT_SECRET);
    expect(resolveSecrets(loadConfig({ ...productionEnv, ENVIRONMENT: "staging" }), never).webhooks.urls).toEqual([productionEnv.WEBHOOK_URLS]);
  });

  it("names every missing secret where there is no development secret to take", () => {
    const attempt = () => resolveSecrets(loadConfig({ JWT_SECRET: "g".repeat(40) }), { requiredBy: "the Workers build" });
    expect(attempt).toThrow(ConfigError);
    expect(() => attempt()).toThrow(/ENCRYPTION_KEY: required by the Workers build/);
    try {
      attempt();
    } catch (error) {
      expect((error as ConfigError).problems).toEqual([
        "ENCRYPTION_KEY: required by the Workers build",
        "FIUU_MERCHANT_ID: required by the Workers build",
        "FIUU_VERIFY_KEY: required by the Workers build",
        "FIUU_SECRET_KEY: required by the Workers build",
        "WEBHOOK_SECRET: required by the Workers build",
      ]);
    }
  });
});
