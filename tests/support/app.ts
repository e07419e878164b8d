import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { createApp } from "../../lib/app/app.js";
import { localFiuuSandbox } from "../../lib/adapters/fiuu/sandbox/mount.js";
import { signToken, type Role } from "../../lib/http/auth/tokens.js";
import { loadConfig, resolveSecrets, type Config } from "../../lib/core/config.js";
import type { AppDeps } from "../../lib/domain/deps.js";
import { assembleDeps, type OwnedDeps } from "../../lib/app/deps.js";
import { nodeOpeners } from "../../lib/app/node-openers.js";
import { formPostOver } from "../../lib/adapters/fiuu/form-post.js";
import { createLogger } from "../../lib/core/logger.js";
import { openRedis, type RedisHandle } from "../../lib/adapters/redis/index.js";
import { createTestDatabase, type TestDatabase } from "./databases.js";

/** Redis for tests: the real server when TEST_REDIS_HOST is set, else the in-process stand-in. */
export async function createTestRedis(): Promise<RedisHandle> {
  const host = process.env.TEST_REDIS_HOST;
  if (!host) return openRedis({ kind: "memory" });
  return openRedis({ kind: "tcp", host, port: Number(process.env.TEST_REDIS_PORT ?? 6379), db: 0, maxConnections: 1 });
}

/** The configuration tests run with: ENVIRONMENT=test, fresh secrets, overridable per test. */
export function testConfig(env: Record<string, string> = {}): Config {
  return resolveSecrets(loadConfig(testEnvironment(env)), { requiredBy: "the tests" });
}

/** The environment testConfig parses. */
function testEnvironment(env: Record<string, string>): Record<string, string> {
  return {
    ENVIRONMENT: "test",
    LOG_LEVEL: "info",
    JWT_SECRET: randomBytes(32).toString("hex"),
    FIUU_QUERY_INTERVAL: "1ms",
    FIUU_RETRY_DELAY: "5ms",
    FIUU_BREAKER_RESET: "100ms",
    ENCRYPTION_KEY: randomBytes(32).toString("hex"),
    WEBHOOK_SECRET: `whsec_${randomBytes(24).toString("base64")}`,
    // One merchant per app: Fiuu's query slot and Q99 pause are per merchant in Redis, which the
    // test files share when they run against the real server.
    FIUU_MERCHANT_ID: `SB_test${randomBytes(4).toString("hex")}`,
    FIUU_VERIFY_KEY: randomBytes(16).toString("hex"),
    FIUU_SECRET_KEY: randomBytes(16).toString("hex"),
    // The local sandbox, mounted on the app under test, plays Fiuu.
    FIUU_LOCAL_SANDBOX: "true",
    PUBLIC_URL: "http://payments.test",
    ...env,
  };
}

/** Log lines a test caused, parsed, for checks on their shape and on what they must never contain. */
export class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void) {
    for (const line of chunk.toString("utf8").split("\n").filter(Boolean)) {
      this.raw.push(line);
      this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  }
}

export interface TestContext {
  app: ReturnType<typeof createApp>;
  deps: OwnedDeps;
  database: TestDatabase;
  logs: LogCapture;
  close(): Promise<void>;
}

/** A complete app on its own database and the test Redis, with logs captured. */
export async function createTestApp(
  options: {
    env?: Record<string, string>;
    now?: () => Date;
    /** Where the service's Fiuu client goes; default the sandbox mounted on the app under test. */
    fiuuFetch?: (request: Request) => Promise<Response>;
  } = {},
): Promise<TestContext> {
  const config = testConfig(options.env);
  const logs = new LogCapture();
  const database = await createTestDatabase();
  const redis = await createTestRedis();
  let app: ReturnType<typeof createApp> | undefined;
  const deps = await assembleDeps(
    config,
    nodeOpeners({
      logger: await createLogger(config.log, logs),
      database: database.handle,
      redis,
      migrate: false,
      fiuuTransport: formPostOver(options.fiuuFetch ?? (async (request) => app!.fetch(request))),
    }),
  );
  if (options.now) (deps as AppDeps).now = options.now;
  app = createApp(deps, { fiuuSandbox: localFiuuSandbox(config) });
  return {
    app,
    deps,
    database,
    logs,
    close: async () => {
      deps.webhookConnections.close();
      await redis.close();
      await database.drop();
    },
  };
}

/** A bearer header for a token of this app's secret. */
export async function bearer(t: TestContext, role: Role = "service", sub = "shop-1", ttlSeconds = 600) {
  return { Authorization: `Bearer ${await signToken(t.deps.config.jwtSecret, { sub, role, ttlSeconds, now: t.deps.now() })}` };
}

let keyCounter = 0;
/** A fresh Idempotency-Key. */
export const newKey = () => `key-${process.pid}-${Date.now()}-${++keyCounter}`;

/** A JSON request's init, with optional headers. */
export function jsonRequest(method: string, body: unknown, headers: Record<string, string> = {}): RequestInit {
  return { method, body: JSON.stringify(body), headers: { "content-type": "application/json", ...headers } };
}
