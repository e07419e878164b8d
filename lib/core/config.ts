import { isIP } from "node:net";
import { z } from "zod";

/** Parses "500ms", "30s", "5m", "1h", "1d" (or a bare number of seconds) into milliseconds. */
export function parseDuration(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!match) return undefined;
  const unit = match[2] ?? "s";
  const factor = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit]!;
  return Math.round(Number(match[1]) * factor);
}

const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === undefined) {
        ctx.addIssue({ code: "custom", message: `"${text}" is not a duration such as 500ms, 30s, 5m or 1h` });
        return z.NEVER;
      }
      return ms;
    });

const bool = (fallback: boolean) =>
  z
    .enum(["true", "false", "1", "0", "yes", "no"])
    .default(fallback ? "true" : "false")
    .transform((v) => v === "true" || v === "1" || v === "yes");

const int = (fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max).default(fallback);

// 0 asks the OS for any free port (tests run several servers at once).
const port = (fallback: number) => int(fallback, 0, 65_535);
const optionalText = z.string().min(1).optional();
const list = z
  .string()
  .default("")
  .transform((v) =>
    v
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );
const isNone = (value: string) => value.toLowerCase() === "none";

/**
 * Every variable of the deployment guide plus the additions of DESIGN.md, by its environment name.
 * Empty strings count as unset, so `FOO=` in a manifest behaves like leaving FOO out.
 */
const envSchema = z.object({
  ENVIRONMENT: z.enum(["development", "test", "staging", "production"]).default("development"),
  PORT: port(8086),
  /**
   * The address all three listeners bind to. Loopback by default, so a developer's `npm start` (with
   * the sandbox's unauthenticated control routes and the demo) is not reachable from the network;
   * the image and the manifests set 0.0.0.0.
   */
  HOST: z.string().min(1).default("127.0.0.1"),
  PUBLIC_URL: z.url().optional(),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  LOG_FORMAT: z.enum(["json", "text"]).default("json"),
  ALLOWED_ORIGINS: list,

  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL")
    .optional(),
  /** The migrations' own connection (the owner role, drizzle/roles.sql); else DATABASE_URL / DB_*. */
  MIGRATION_DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL")
    .optional(),
  DB_HOST: optionalText,
  DB_PORT: port(5432),
  DB_NAME: z.string().min(1).default("payments"),
  DB_USER: z.string().min(1).default("payment_app"),
  DB_PASSWORD: z.string().optional(),
  DB_SSL_MODE: z.enum(["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]).default("prefer"),
  /** The CA certificate (PEM) that verify-ca / verify-full check the server against; DB_SSL_CA_FILE names a file. */
  DB_SSL_CA: optionalText,
  DB_MAX_CONNECTIONS: int(8, 1, 1000),
  DB_MAX_IDLE_CONNECTIONS: int(5, 0, 1000),
  DB_CONNECTION_LIFETIME: duration("5m"),
  DATA_DIR: z.string().min(1).default(".data"),

  REDIS_HOST: optionalText,
  REDIS_PORT: port(6379),
  REDIS_PASSWORD: z.string().optional(),
  REDIS_DB: int(0, 0, 15),
  REDIS_MAX_CONNECTIONS: int(10, 1, 1000),
  UPSTASH_REDIS_REST_URL: z.url().optional(),
  UPSTASH_REDIS_REST_TOKEN: optionalText,

  FIUU_MERCHANT_ID: optionalText,
  FIUU_VERIFY_KEY: optionalText,
  FIUU_SECRET_KEY: optionalText,
  FIUU_SANDBOX: bool(true),
  FIUU_PAYMENT_URL: z.url().optional(),
  FIUU_API_URL: z.url().optional(),
  FIUU_EXTENDED_VCODE: bool(false),
  FIUU_TIMEOUT: duration("30s"),
  FIUU_RETRY_ATTEMPTS: int(3, 0, 10),
  FIUU_RETRY_DELAY: duration("1s"),
  /** Fiuu blocks a merchant that queries more than once per 5 s; shared by all replicas through Redis. */
  FIUU_QUERY_INTERVAL: duration("5s"),
  FIUU_BREAKER_THRESHOLD: int(5, 1, 1000),
  FIUU_BREAKER_RESET: duration("30s"),
  /**
   * The local Fiuu sandbox plays Fiuu, mounted at /sandbox/fiuu (development and test only).
   * Default: on exactly when no FIUU_MERCHANT_ID is set outside production.
   */
  FIUU_LOCAL_SANDBOX: z
    .enum(["true", "false", "1", "0"])
    .transform((v) => v === "true" || v === "1")
    .optional(),

  ENCRYPTION_KEY: optionalText,
  /** Earlier keys, comma-separated, still accepted for decryption while values are re-encrypted. */
  ENCRYPTION_KEY_PREVIOUS: list,
  JWT_SECRET: z.string().min(32, "must be at least 32 characters").optional(),

  METRICS_ENABLED: bool(true),
  METRICS_PORT: port(9090),
  HEALTH_CHECK_PORT: port(8087),
  HEALTH_CHECK_INTERVAL: duration("30s"),
  HEALTH_CHECK_TIMEOUT: duration("5s"),

  WEBHOOK_SECRET: optionalText,
  /** Comma-separated receivers, or `none`: production must say which (a shop never told of a payment is a bug). */
  WEBHOOK_URLS: list.refine((urls) => urls.length <= 1 || !urls.some(isNone), "`none` stands alone: either none or a list of URLs"),
  WEBHOOK_TIMEOUT: duration("10s"),
  WEBHOOK_RETRY_ATTEMPTS: int(5, 0, 50),
  WEBHOOK_RETRY_DELAY: duration("30s"),

  PAYMENT_TTL: duration("30m"),
  /** How long customer details (and refund beneficiaries) are kept after a payment is final and its refunds settled. */
  RETENTION_PERSONAL_DATA: duration("400d"),
  /** How long Fiuu's raw message fields are kept; outcome, ids and timestamps stay. */
  RETENTION_GATEWAY_MESSAGES: duration("180d"),
  /** How long a delivered webhook event's body is kept; the event and delivery records stay. */
  RETENTION_WEBHOOK_BODIES: duration("90d"),
  RATE_LIMIT_PAYMENTS_PER_MINUTE: int(600, 1, 10_000_000),
  /** Requests per client address per minute to the pages reachable without a token (/pay/:id, its result page, Fiuu's return URL). */
  RATE_LIMIT_PAGES_PER_MINUTE: int(120, 1, 10_000_000),
  /**
   * Which proxies in front of the service write X-Forwarded-For: none (default: the socket's peer
   * is the client), a hop count, a comma-separated list of IP addresses and CIDR networks, or
   * `cloudflare` (CF-Connecting-IP). Read by lib/http/client-address.ts.
   */
  TRUSTED_PROXIES: z
    .string()
    .default("")
    .transform((text, ctx) => {
      const parsed = parseTrustedProxies(text);
      if (typeof parsed === "string") {
        ctx.addIssue({ code: "custom", message: parsed });
        return z.NEVER;
      }
      return parsed;
    }),
  SHUTDOWN_TIMEOUT: duration("25s"),
  /** After SIGTERM: /ready answers 503 and the API keeps serving this long, so load balancers stop sending first. */
  SHUTDOWN_DRAIN: duration("5s"),
  // Slow and idle clients (lib/app/listener.ts): each holds a file descriptor while it is connected.
  HTTP_HEADERS_TIMEOUT: duration("10s"),
  HTTP_REQUEST_TIMEOUT: duration("30s"),
  HTTP_KEEP_ALIVE_TIMEOUT: duration("5s"),
  HTTP_MAX_CONNECTIONS: int(4096, 1, 1_000_000),
  HEALTH_CHECK_MAX_CONNECTIONS: int(64, 1, 10_000),
  METRICS_MAX_CONNECTIONS: int(32, 1, 10_000),
});

export type Env = z.infer<typeof envSchema>;

/** What production must be given explicitly: nothing here may fall back to an embedded or generated value. */
const requiredInProduction = [
  "JWT_SECRET",
  "ENCRYPTION_KEY",
  "FIUU_MERCHANT_ID",
  "FIUU_VERIFY_KEY",
  "FIUU_SECRET_KEY",
  "WEBHOOK_SECRET",
  "PUBLIC_URL",
] as const;

/**
 * The configuration every layer receives: every secret present (given, or a development secret
 * outside production), so no code past resolveSecrets asks whether one is set.
 */
export interface Config {
  environment: Env["ENVIRONMENT"];
  isProduction: boolean;
  port: number;
  publicUrl: string;
  log: { level: Env["LOG_LEVEL"]; format: Env["LOG_FORMAT"] };
  allowedOrigins: string[];
  database:
    | {
        kind: "postgres";
        url: string;
        /** DB_SSL_MODE; an sslmode in the URL wins over it (lib/adapters/db/tls.ts). */
        ssl: Env["DB_SSL_MODE"];
        /** DB_SSL_CA: the PEM certificate verify-ca / verify-full trust. */
        ca?: string;
        /** The variable the URL came from, for messages. */
        urlVariable?: "DATABASE_URL" | "DB_HOST" | "MIGRATION_DATABASE_URL";
        max: number;
        idle: number;
        lifetimeMs: number;
      }
    | { kind: "embedded"; dataDir: string };
  redis:
    | { kind: "tcp"; host: string; port: number; password?: string; db: number; maxConnections: number }
    | { kind: "rest"; url: string; token: string }
    | { kind: "memory" };
  fiuu: {
    merchantId: string;
    verifyKey: string;
    secretKey: string;
    sandbox: boolean;
    /** The local sandbox (lib/adapters/fiuu/sandbox) plays Fiuu on this service's port; never in production. */
    localSandbox: boolean;
    paymentUrl: string;
    apiUrl: string;
    extendedVcode: boolean;
    timeoutMs: number;
    retryAttempts: number;
    retryDelayMs: number;
    queryIntervalMs: number;
    /** Consecutive failures that open the circuit breaker, and how long it stays open before a trial. */
    breaker: { threshold: number; resetMs: number };
  };
  encryptionKey: Buffer;
  previousEncryptionKeys: Buffer[];
  jwtSecret: string;
  metrics: { enabled: boolean; port: number };
  health: { port: number; intervalMs: number; timeoutMs: number };
  webhooks: { secret: string; urls: string[]; timeoutMs: number; retryAttempts: number; retryDelayMs: number };
  dataDir: string;
  paymentTtlMs: number;
  /** Data retention (lib/domain/retention): how long each kind of data is kept past its clock, in ms. */
  retention: { personalDataMs: number; gatewayMessagesMs: number; webhookBodiesMs: number };
  /** Payment creations allowed per caller (token sub) per minute. */
  paymentsPerMinute: number;
  /** Requests per client address per minute to the public pages (lib/http/rate-limit.ts, publicPageLimit). */
  pagesPerMinute: number;
  /** Whose X-Forwarded-For hops are believed when taking a request's client address. */
  trustedProxies: TrustedProxies;
  /** The longest SIGTERM waits for requests in flight, the drain included. */
  shutdownTimeoutMs: number;
  /** How long after SIGTERM the API keeps serving while /ready answers 503. */
  shutdownDrainMs: number;
  /** The Node listeners' address, timeouts and connection caps (per listener). */
  http: {
    host: string;
    headersTimeoutMs: number;
    requestTimeoutMs: number;
    keepAliveTimeoutMs: number;
    maxConnections: { api: number; health: number; metrics: number };
  };
}

/** Config as the environment gives it: the secrets may be missing until resolveSecrets. */
export type RawConfig = Omit<Config, "jwtSecret" | "encryptionKey" | "fiuu" | "webhooks"> & {
  jwtSecret?: string;
  encryptionKey?: Buffer;
  fiuu: Omit<Config["fiuu"], "merchantId" | "verifyKey" | "secretKey"> & Partial<Pick<Config["fiuu"], "merchantId" | "verifyKey" | "secretKey">>;
  webhooks: Omit<Config["webhooks"], "secret"> & { secret?: string };
};

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Decodes ENCRYPTION_KEY from 64 hex characters, base64 of 32 bytes, or 32 raw characters. */
export function decodeEncryptionKey(text: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, "hex");
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) {
    const bytes = Buffer.from(text, "base64");
    if (bytes.length === 32) return bytes;
  }
  const raw = Buffer.from(text, "utf8");
  return raw.length === 32 ? raw : undefined;
}

// --- Secrets production refuses -------------------------------------------------------------

/** Variables that hold secrets (or credentials inside a URL): none may keep a template's text. */
const secretVariables = [
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
] as const;

/**
 * Why a value looks like a template's text rather than a real secret, or undefined. Covers the
 * placeholders of infra/k8s/secret.example.yaml (`<…>`), an unexpanded command pasted from the
 * Swarm stack, the README or wrangler.toml (`$(openssl rand -hex 32)`, `openssl rand …`), the
 * README's elided `…`, and the usual stand-in words.
 */
export function placeholderProblem(value: string): string | undefined {
  if (/[<>]/.test(value)) return "holds a template placeholder (it contains < or >)";
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the message names the ${…} it found
  if (/\$\(|\$\{|`/.test(value)) return "holds an unexpanded shell command or variable ($(…), ${…} or a backtick)";
  if (/\b(openssl|docker secret|kubectl|wrangler)\b/i.test(value)) return "holds the command that makes a secret, not its output";
  if (value.includes("…")) return "holds an elided example value (…)";
  if (/^(.)\1*$/su.test(value)) return "is one character repeated, not a secret";
  if (/(^|[_\W])your[_\W]/i.test(value)) return 'holds a template placeholder ("your …")';
  if (/^(change[_-]?me|replace[_-]?me|todo|fixme|tbd|placeholder|example|secret|password)$/i.test(value)) {
    return "holds a stand-in word, not a secret";
  }
  return undefined;
}

/** Why a `whsec_` WEBHOOK_SECRET carries no key (lib/domain/webhooks/sign.ts decodes only strict base64), or undefined. */
function webhookKeyProblem(secret: string): string | undefined {
  if (!secret.startsWith("whsec_")) return undefined;
  const encoded = secret.slice("whsec_".length);
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(encoded) || encoded === "") {
    return "starts with whsec_ but the rest is not base64 (Standard Webhooks: whsec_ followed by the base64 key)";
  }
  return undefined;
}

/** Bytes of HMAC key a WEBHOOK_SECRET carries: a `whsec_` value base64-decoded, any other as UTF-8. */
function webhookKeyLength(secret: string): number {
  return secret.startsWith("whsec_") ? Buffer.from(secret.slice(6), "base64").length : Buffer.byteLength(secret, "utf8");
}

/** Minimum key material in production. */
const minimumWebhookKeyBytes = 24;
const minimumJwtSecretLength = 32;
const minimumFiuuKeyLength = 16;

/**
 * What ENVIRONMENT=production refuses beyond a missing value: template placeholders in any secret,
 * weak keys, FIUU_SANDBOX left to its default, and no webhook receiver without an explicit `none`.
 * Messages name the variable, never its value.
 */
function productionSecretProblems(present: Record<string, string>, encryptionKey: Buffer | undefined): string[] {
  const problems: string[] = [];
  const placeholders = new Set<string>();
  for (const key of secretVariables) {
    const value = present[key];
    if (value === undefined) continue;
    const values = key === "ENCRYPTION_KEY_PREVIOUS" ? value.split(",") : [value];
    const problem = values.map((v) => placeholderProblem(v.trim())).find(Boolean);
    if (problem) {
      problems.push(`${key}: ${problem}; set the real value when ENVIRONMENT=production`);
      placeholders.add(key);
    }
  }
  const weak = (key: string, test: (value: string) => string | undefined) => {
    const value = present[key];
    if (value === undefined || placeholders.has(key)) return;
    const problem = test(value);
    if (problem) problems.push(`${key}: ${problem} when ENVIRONMENT=production`);
  };
  // One repeated character (refused above for every secret) is the weak JWT_SECRET of the issue.
  weak("JWT_SECRET", (v) => (v.length < minimumJwtSecretLength ? `must be at least ${minimumJwtSecretLength} characters` : undefined));
  weak("WEBHOOK_SECRET", (v) =>
    webhookKeyProblem(v) === undefined && webhookKeyLength(v) < minimumWebhookKeyBytes
      ? `must carry at least ${minimumWebhookKeyBytes} bytes of key material (whsec_ followed by base64 of ${minimumWebhookKeyBytes} or more random bytes: whsec_$(openssl rand -base64 32))`
      : undefined,
  );
  for (const key of ["FIUU_VERIFY_KEY", "FIUU_SECRET_KEY"]) {
    weak(key, (v) =>
      v.length < minimumFiuuKeyLength
        ? `must be at least ${minimumFiuuKeyLength} characters, the key exactly as Fiuu's merchant portal shows it`
        : undefined,
    );
  }
  if (encryptionKey && !placeholders.has("ENCRYPTION_KEY") && encryptionKey.every((byte) => byte === encryptionKey[0])) {
    problems.push("ENCRYPTION_KEY: is one byte repeated; use a random key (openssl rand -hex 32) when ENVIRONMENT=production");
  }
  if (present.FIUU_SANDBOX === undefined) {
    problems.push("FIUU_SANDBOX: must be set when ENVIRONMENT=production: false for Fiuu's live hosts, true for its sandbox");
  }
  if (present.WEBHOOK_URLS === undefined) {
    problems.push("WEBHOOK_URLS: required when ENVIRONMENT=production: the shop's receivers, or none to send no webhooks");
  }
  return problems;
}

/**
 * Parses the environment into a typed RawConfig, or throws ConfigError naming every bad variable.
 * Its secrets may still be missing outside production: resolveSecrets makes it the app's Config.
 */
export function loadConfig(source: Record<string, string | undefined> = process.env): RawConfig {
  const present: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const value = source[key];
    if (value !== undefined && value.trim() !== "") present[key] = value.trim();
  }
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`));
  }
  const env = parsed.data;
  const problems: string[] = [];
  const isProduction = env.ENVIRONMENT === "production";

  let encryptionKey: Buffer | undefined;
  if (env.ENCRYPTION_KEY !== undefined) {
    encryptionKey = decodeEncryptionKey(env.ENCRYPTION_KEY);
    if (!encryptionKey) problems.push("ENCRYPTION_KEY: must be exactly 32 bytes (64 hex characters, base64, or 32 characters)");
  }
  const previousEncryptionKeys: Buffer[] = [];
  for (const text of env.ENCRYPTION_KEY_PREVIOUS) {
    const key = decodeEncryptionKey(text);
    if (key) previousEncryptionKeys.push(key);
    else problems.push("ENCRYPTION_KEY_PREVIOUS: every key must be exactly 32 bytes");
  }
  if (isProduction) {
    for (const key of requiredInProduction) {
      if (env[key] === undefined) problems.push(`${key}: required when ENVIRONMENT=production`);
    }
    if (!env.DATABASE_URL && !env.DB_HOST) problems.push("DATABASE_URL: required when ENVIRONMENT=production (or DB_HOST)");
    if (!env.REDIS_HOST && !env.UPSTASH_REDIS_REST_URL) {
      problems.push("REDIS_HOST: required when ENVIRONMENT=production (or UPSTASH_REDIS_REST_URL)");
    }
    problems.push(...productionSecretProblems(present, encryptionKey));
  }
  if (env.WEBHOOK_SECRET !== undefined) {
    const problem = webhookKeyProblem(env.WEBHOOK_SECRET);
    if (problem) problems.push(`WEBHOOK_SECRET: ${problem}`);
  }
  const localSandbox = env.FIUU_LOCAL_SANDBOX ?? (!isProduction && !env.FIUU_MERCHANT_ID);
  if (localSandbox && isProduction) problems.push("FIUU_LOCAL_SANDBOX: the local Fiuu sandbox is never used when ENVIRONMENT=production");
  if (env.UPSTASH_REDIS_REST_URL && !env.UPSTASH_REDIS_REST_TOKEN) {
    problems.push("UPSTASH_REDIS_REST_TOKEN: required with UPSTASH_REDIS_REST_URL");
  }
  problems.push(...listenerProblems(env));
  if (problems.length > 0) throw new ConfigError(problems);

  const database = databaseOf(env);

  const redis: Config["redis"] = env.UPSTASH_REDIS_REST_URL
    ? { kind: "rest", url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN! }
    : env.REDIS_HOST
      ? {
          kind: "tcp",
          host: env.REDIS_HOST,
          port: env.REDIS_PORT,
          password: env.REDIS_PASSWORD,
          db: env.REDIS_DB,
          maxConnections: env.REDIS_MAX_CONNECTIONS,
        }
      : { kind: "memory" };

  const publicUrl = (env.PUBLIC_URL ?? `http://localhost:${env.PORT}`).replace(/\/+$/, "");
  return {
    environment: env.ENVIRONMENT,
    isProduction,
    port: env.PORT,
    publicUrl,
    log: { level: env.LOG_LEVEL, format: env.LOG_FORMAT },
    allowedOrigins: env.ALLOWED_ORIGINS,
    database,
    redis,
    fiuu: {
      merchantId: env.FIUU_MERCHANT_ID,
      verifyKey: env.FIUU_VERIFY_KEY,
      secretKey: env.FIUU_SECRET_KEY,
      sandbox: env.FIUU_SANDBOX,
      localSandbox,
      // The local sandbox answers on this service's own port; otherwise the hosts follow FIUU_SANDBOX.
      paymentUrl: trimSlash(
        env.FIUU_PAYMENT_URL ?? (localSandbox ? `${publicUrl}/sandbox/fiuu` : fiuuHosts[env.FIUU_SANDBOX ? "sandbox" : "production"].payment),
      ),
      apiUrl: trimSlash(
        env.FIUU_API_URL ?? (localSandbox ? `${publicUrl}/sandbox/fiuu` : fiuuHosts[env.FIUU_SANDBOX ? "sandbox" : "production"].api),
      ),
      extendedVcode: env.FIUU_EXTENDED_VCODE,
      timeoutMs: env.FIUU_TIMEOUT,
      retryAttempts: env.FIUU_RETRY_ATTEMPTS,
      retryDelayMs: env.FIUU_RETRY_DELAY,
      queryIntervalMs: env.FIUU_QUERY_INTERVAL,
      breaker: { threshold: env.FIUU_BREAKER_THRESHOLD, resetMs: env.FIUU_BREAKER_RESET },
    },
    encryptionKey,
    previousEncryptionKeys,
    jwtSecret: env.JWT_SECRET,
    metrics: { enabled: env.METRICS_ENABLED, port: env.METRICS_PORT },
    health: { port: env.HEALTH_CHECK_PORT, intervalMs: env.HEALTH_CHECK_INTERVAL, timeoutMs: env.HEALTH_CHECK_TIMEOUT },
    webhooks: {
      secret: env.WEBHOOK_SECRET,
      urls: env.WEBHOOK_URLS.filter((url) => !isNone(url)),
      timeoutMs: env.WEBHOOK_TIMEOUT,
      retryAttempts: env.WEBHOOK_RETRY_ATTEMPTS,
      retryDelayMs: env.WEBHOOK_RETRY_DELAY,
    },
    dataDir: env.DATA_DIR,
    paymentTtlMs: env.PAYMENT_TTL,
    retention: {
      personalDataMs: env.RETENTION_PERSONAL_DATA,
      gatewayMessagesMs: env.RETENTION_GATEWAY_MESSAGES,
      webhookBodiesMs: env.RETENTION_WEBHOOK_BODIES,
    },
    paymentsPerMinute: env.RATE_LIMIT_PAYMENTS_PER_MINUTE,
    pagesPerMinute: env.RATE_LIMIT_PAGES_PER_MINUTE,
    trustedProxies: env.TRUSTED_PROXIES,
    shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT,
    shutdownDrainMs: env.SHUTDOWN_DRAIN,
    http: {
      host: env.HOST,
      headersTimeoutMs: env.HTTP_HEADERS_TIMEOUT,
      requestTimeoutMs: env.HTTP_REQUEST_TIMEOUT,
      keepAliveTimeoutMs: env.HTTP_KEEP_ALIVE_TIMEOUT,
      maxConnections: { api: env.HTTP_MAX_CONNECTIONS, health: env.HEALTH_CHECK_MAX_CONNECTIONS, metrics: env.METRICS_MAX_CONNECTIONS },
    },
  };
}

/** The secrets development generates for itself (lib/core/dev-secrets.ts), as text. */
export interface DevSecrets {
  jwtSecret: string;
  /** 64 hex characters. */
  encryptionKey: string;
  webhookSecret: string;
  fiuuMerchantId: string;
  fiuuVerifyKey: string;
  fiuuSecretKey: string;
}

/** Where the secrets a RawConfig lacks come from: development's own, or nowhere (then they are required). */
export type SecretSource = { devSecrets: (dataDir: string) => DevSecrets } | { requiredBy: string };

/**
 * Makes a RawConfig the Config every layer uses, in one step. Outside production a missing secret
 * is taken from `devSecrets` (generated once per DATA_DIR); in production, or where there is no
 * such source (the functions builds), every missing secret is named in one ConfigError.
 */
export function resolveSecrets(raw: RawConfig, source: SecretSource): Config {
  const { jwtSecret, encryptionKey } = raw;
  const { merchantId, verifyKey, secretKey } = raw.fiuu;
  const webhookSecret = raw.webhooks.secret;
  if (jwtSecret && encryptionKey && webhookSecret && merchantId && verifyKey && secretKey) {
    return {
      ...raw,
      jwtSecret,
      encryptionKey,
      fiuu: { ...raw.fiuu, merchantId, verifyKey, secretKey },
      webhooks: { ...raw.webhooks, secret: webhookSecret },
    };
  }
  const fill = "devSecrets" in source && !raw.isProduction ? source.devSecrets : undefined;
  if (!fill) {
    const requiredBy = "requiredBy" in source && !raw.isProduction ? `by ${source.requiredBy}` : "when ENVIRONMENT=production";
    const missing = Object.entries({
      JWT_SECRET: jwtSecret,
      ENCRYPTION_KEY: encryptionKey,
      FIUU_MERCHANT_ID: merchantId,
      FIUU_VERIFY_KEY: verifyKey,
      FIUU_SECRET_KEY: secretKey,
      WEBHOOK_SECRET: webhookSecret,
    }).filter(([, value]) => !value);
    throw new ConfigError(missing.map(([name]) => `${name}: required ${requiredBy}`));
  }
  const dev = fill(raw.dataDir);
  return {
    ...raw,
    jwtSecret: jwtSecret ?? dev.jwtSecret,
    encryptionKey: encryptionKey ?? Buffer.from(dev.encryptionKey, "hex"),
    webhooks: {
      ...raw.webhooks,
      secret: webhookSecret ?? dev.webhookSecret,
      // The demo shop receives the webhooks when no receiver is configured (development only).
      urls: raw.webhooks.urls.length > 0 || raw.environment !== "development" ? raw.webhooks.urls : [`${raw.publicUrl}/demo/webhooks`],
    },
    fiuu: {
      ...raw.fiuu,
      merchantId: merchantId ?? dev.fiuuMerchantId,
      verifyKey: verifyKey ?? dev.fiuuVerifyKey,
      secretKey: secretKey ?? dev.fiuuSecretKey,
    },
  };
}

/**
 * TRUSTED_PROXIES, parsed: `none` (or empty, or 0) trusts no proxy; a number N trusts the N proxies
 * nearest the service (the socket's peer is the first); a list of addresses and CIDR networks trusts
 * every hop inside them; `cloudflare` takes CF-Connecting-IP, which Cloudflare's edge sets.
 */
export type TrustedProxies =
  | { kind: "none" }
  | { kind: "hops"; count: number }
  | { kind: "networks"; networks: { address: string; prefix: number; family: 4 | 6 }[] }
  | { kind: "cloudflare" };

/** Parses a TRUSTED_PROXIES value, or answers what is wrong with it. */
export function parseTrustedProxies(text: string): TrustedProxies | string {
  const value = text.trim().toLowerCase();
  if (value === "" || value === "none" || value === "0") return { kind: "none" };
  if (value === "cloudflare") return { kind: "cloudflare" };
  if (/^\d+$/.test(value)) {
    const count = Number(value);
    return count <= 16 ? { kind: "hops", count } : "a hop count is at most 16";
  }
  const networks: { address: string; prefix: number; family: 4 | 6 }[] = [];
  for (const entry of value
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean)) {
    const [address = "", prefixText, extra] = entry.split("/");
    const family = isIP(address);
    if (family === 0 || extra !== undefined) return `"${entry}" is not a hop count, an IP address or a CIDR network`;
    const max = family === 4 ? 32 : 128;
    const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : -1;
    if (prefix < 0 || prefix > max) return `"${entry}": the prefix length must be 0 to ${max}`;
    networks.push({ address, prefix, family: family === 4 ? 4 : 6 });
  }
  return { kind: "networks", networks };
}

const fiuuHosts = {
  production: { payment: "https://pay.fiuu.com", api: "https://api.fiuu.com" },
  sandbox: { payment: "https://sandbox-payment.fiuu.com", api: "https://sandbox-payment.fiuu.com" },
};

/** What Node's HTTP server would refuse or silently disable, and a drain that leaves no time to finish. */
function listenerProblems(env: Env): string[] {
  const problems: string[] = [];
  // Node reads 0 as "no timeout": exactly what a slow client needs.
  for (const key of ["HTTP_HEADERS_TIMEOUT", "HTTP_REQUEST_TIMEOUT", "HTTP_KEEP_ALIVE_TIMEOUT"] as const) {
    if (env[key] <= 0) problems.push(`${key}: must be above 0 (0 would let a client hold a connection forever)`);
  }
  if (env.HTTP_HEADERS_TIMEOUT > env.HTTP_REQUEST_TIMEOUT) problems.push("HTTP_HEADERS_TIMEOUT: must not exceed HTTP_REQUEST_TIMEOUT");
  if (env.SHUTDOWN_DRAIN >= env.SHUTDOWN_TIMEOUT) problems.push("SHUTDOWN_DRAIN: must be shorter than SHUTDOWN_TIMEOUT, which includes it");
  return problems;
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

/** The app's database: DATABASE_URL, else one composed of DB_*, else the embedded one in DATA_DIR. */
function databaseOf(env: DatabaseEnv): Config["database"] {
  if (env.DATABASE_URL) return postgresDatabase(env, env.DATABASE_URL, "DATABASE_URL");
  if (env.DB_HOST) return postgresDatabase(env, composeDatabaseUrl(env), "DB_HOST");
  return { kind: "embedded", dataDir: env.DATA_DIR };
}

function postgresDatabase(env: DatabaseEnv, url: string, urlVariable: "DATABASE_URL" | "DB_HOST" | "MIGRATION_DATABASE_URL"): Config["database"] {
  return {
    kind: "postgres",
    url,
    ssl: env.DB_SSL_MODE,
    ...(env.DB_SSL_CA !== undefined ? { ca: env.DB_SSL_CA } : {}),
    urlVariable,
    max: env.DB_MAX_CONNECTIONS,
    idle: env.DB_MAX_IDLE_CONNECTIONS,
    lifetimeMs: env.DB_CONNECTION_LIFETIME,
  };
}

const databaseSchema = envSchema.pick({
  ENVIRONMENT: true,
  DATABASE_URL: true,
  MIGRATION_DATABASE_URL: true,
  DB_HOST: true,
  DB_PORT: true,
  DB_NAME: true,
  DB_USER: true,
  DB_PASSWORD: true,
  DB_SSL_MODE: true,
  DB_SSL_CA: true,
  DB_MAX_CONNECTIONS: true,
  DB_MAX_IDLE_CONNECTIONS: true,
  DB_CONNECTION_LIFETIME: true,
  DATA_DIR: true,
});
type DatabaseEnv = z.infer<typeof databaseSchema>;

/** The variables loadDatabaseConfig reads (each also as NAME_FILE). */
export const databaseVariables = Object.keys(databaseSchema.shape);

/** Only the database variables of an environment (and their NAME_FILE), so a CLI reads no other secret file. */
export function databaseEnvironment(source: Record<string, string | undefined>): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(source).filter(([key]) => databaseVariables.includes(key.replace(/_FILE$/, ""))));
}

/**
 * The database settings alone, for the CLIs (`migrate up`, `audit:verify`), which need no other
 * secret: the app's database and the one migrations use (MIGRATION_DATABASE_URL, else the app's).
 * Throws ConfigError naming every bad variable.
 */
export function loadDatabaseConfig(source: Record<string, string | undefined> = process.env): {
  environment: Env["ENVIRONMENT"];
  database: Config["database"];
  migrationDatabase: Config["database"];
} {
  const present: Record<string, string> = {};
  for (const key of Object.keys(databaseSchema.shape)) {
    const value = source[key];
    if (value !== undefined && value.trim() !== "") present[key] = value.trim();
  }
  const parsed = databaseSchema.safeParse(present);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`));
  const env = parsed.data;
  const problems: string[] = [];
  if (env.ENVIRONMENT === "production") {
    if (!env.DATABASE_URL && !env.DB_HOST && !env.MIGRATION_DATABASE_URL) {
      problems.push("DATABASE_URL: required when ENVIRONMENT=production (or DB_HOST, or MIGRATION_DATABASE_URL for migrations)");
    }
    for (const key of ["DATABASE_URL", "MIGRATION_DATABASE_URL", "DB_PASSWORD"] as const) {
      const problem = present[key] === undefined ? undefined : placeholderProblem(present[key]!);
      if (problem) problems.push(`${key}: ${problem}; set the real value when ENVIRONMENT=production`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const database = databaseOf(env);
  return {
    environment: env.ENVIRONMENT,
    database,
    migrationDatabase: env.MIGRATION_DATABASE_URL ? postgresDatabase(env, env.MIGRATION_DATABASE_URL, "MIGRATION_DATABASE_URL") : database,
  };
}

function composeDatabaseUrl(env: DatabaseEnv): string {
  const auth = env.DB_PASSWORD ? `${encodeURIComponent(env.DB_USER)}:${encodeURIComponent(env.DB_PASSWORD)}` : encodeURIComponent(env.DB_USER);
  return `postgres://${auth}@${env.DB_HOST}:${env.DB_PORT}/${encodeURIComponent(env.DB_NAME)}`;
}

/** The names of every configuration variable, for documentation checks. */
export const configVariables = Object.keys(envSchema.shape);

/**
 * Docker and Swarm secrets are files: `NAME_FILE` names a file holding NAME's value (one trailing
 * newline dropped). Kept apart from loadConfig so the functions build needs no file system.
 */
export function resolveFileVariables(
  source: Record<string, string | undefined>,
  readFile: (path: string) => string,
): Record<string, string | undefined> {
  const resolved = { ...source };
  const problems: string[] = [];
  for (const key of configVariables) {
    const file = source[`${key}_FILE`]?.trim();
    if (!file) continue;
    if ((source[key] ?? "").trim() !== "") {
      problems.push(`${key}_FILE: ${key} is set too; set only one`);
      continue;
    }
    try {
      resolved[key] = readFile(file).replace(/\r?\n$/, "");
    } catch (error) {
      problems.push(`${key}_FILE: cannot read ${file} (${(error as Error).message})`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return resolved;
}
