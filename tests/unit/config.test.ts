import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseDuration } from "../../lib/config.js";

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

const productionEnv = {
  ENVIRONMENT: "production",
  DATABASE_URL: "postgres://app@db:5432/payments",
  REDIS_HOST: "redis",
  JWT_SECRET: "x".repeat(48),
  ENCRYPTION_KEY: "ab".repeat(32),
  FIUU_MERCHANT_ID: "shop",
  FIUU_VERIFY_KEY: "verify",
  FIUU_SECRET_KEY: "secret",
  WEBHOOK_SECRET: "whsec_c2VjcmV0",
  PUBLIC_URL: "https://pay.shop.example",
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

  it.each(Object.keys(productionEnv).filter((k) => k !== "ENVIRONMENT"))(
    "refuses production without %s and names it",
    (missing) => {
      const env = { ...productionEnv, [missing]: "" };
      expect(problemsOf(env).join("\n")).toContain(missing);
    },
  );

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
