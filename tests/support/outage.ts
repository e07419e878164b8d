import { randomBytes } from "node:crypto";
import { createHealthApp } from "../../handlers/health.js";
import { createMetricsApp } from "../../handlers/metrics.js";
import { localFiuuSandbox } from "../../lib/adapters/fiuu/sandbox/mount.js";
import { createApp } from "../../lib/app/app.js";
import { signToken } from "../../lib/http/auth/tokens.js";
import { openPostgres, type DatabaseHandle } from "../../lib/adapters/db/client.js";
import { assembleDeps, type OwnedDeps } from "../../lib/app/deps.js";
import { nodeOpeners } from "../../lib/app/node-openers.js";
import { formPostOver } from "../../lib/adapters/fiuu/form-post.js";
import { createLogger } from "../../lib/core/logger.js";
import { openRedis, type RedisHandle } from "../../lib/adapters/redis/index.js";
import { createTestRedis, LogCapture, testConfig } from "./app.js";
import { createTestDatabase, type TestDatabase } from "./databases.js";
import { startTcpProxy } from "./tcp-proxy.js";

// The service with a dependency behind a TCP proxy the test can cut, so PostgreSQL or Redis can
// "go away" for this app while the shared servers keep running for everyone else.

export type Proxy = Awaited<ReturnType<typeof startTcpProxy>>;

export interface OutageContext {
  app: ReturnType<typeof createApp>;
  health: ReturnType<typeof createHealthApp>;
  metrics: ReturnType<typeof createMetricsApp>;
  deps: OwnedDeps;
  /** The test database, reached directly (never through the proxy), for checks. */
  database: TestDatabase;
  logs: LogCapture;
  /** The proxy in front of the dependency named in `through`. */
  proxy: Proxy;
  bearer(sub?: string): Promise<Record<string, string>>;
  close(): Promise<void>;
}

/** A complete app on a fresh database and the test Redis, with `through` reached through a proxy. */
export async function createOutageApp(through: "postgres" | "redis", env: Record<string, string> = {}): Promise<OutageContext> {
  const config = testConfig({ LOG_LEVEL: "warn", ...env });
  const logs = new LogCapture();
  const database = await createTestDatabase();
  let proxy: Proxy;
  let db: DatabaseHandle = database.handle;
  let redis: RedisHandle;
  if (through === "postgres") {
    const target = new URL(database.url!);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    target.host = `127.0.0.1:${proxy.port}`;
    db = await openPostgres(target.toString(), { ssl: "disable", max: 10 });
    redis = await createTestRedis();
  } else {
    proxy = await startTcpProxy({ host: process.env.TEST_REDIS_HOST!, port: Number(process.env.TEST_REDIS_PORT ?? 6379) });
    redis = await openRedis({ kind: "tcp", host: "127.0.0.1", port: proxy.port, db: 0, maxConnections: 1 });
  }
  let app: ReturnType<typeof createApp> | undefined;
  const deps = await assembleDeps(
    config,
    nodeOpeners({
      logger: await createLogger(config.log, logs),
      database: db,
      redis,
      migrate: false,
      fiuuTransport: formPostOver(async (request) => app!.fetch(request)),
    }),
  );
  app = createApp(deps, { fiuuSandbox: localFiuuSandbox(config) });
  const defaultSub = `shop-${randomBytes(4).toString("hex")}`;
  return {
    app,
    health: createHealthApp(deps),
    metrics: createMetricsApp(deps),
    deps,
    database,
    logs,
    proxy,
    bearer: async (sub = defaultSub) => ({
      Authorization: `Bearer ${await signToken(config.jwtSecret, { sub, role: "service", ttlSeconds: 600 })}`,
    }),
    close: async () => {
      proxy.restore();
      await deps.close();
      await proxy.close();
      await database.drop();
    },
  };
}

export interface Sample {
  op: string;
  startedAt: number;
  finishedAt: number;
  ms: number;
  status: number;
  code?: string;
  retryAfter: string | null;
  /** Set when the request did not produce an answer at all. */
  error?: string;
}

/**
 * Sends requests from `workers` concurrent loops until stop() (bounded by maxRequests and
 * maxMs), each loop cycling through `ops`, and records every answer. hold(ops) lets the requests
 * of those ops in flight finish and starts no new ones until release(); the others go on.
 */
export function startTraffic(
  ops: Record<string, () => Response | Promise<Response>>,
  options: { workers?: number; maxRequests?: number; maxMs?: number; pauseMs?: number } = {},
) {
  const { workers = 4, maxRequests = 5_000, maxMs = 60_000, pauseMs = 5 } = options;
  const samples: Sample[] = [];
  const names = Object.keys(ops);
  const started = Date.now();
  const inFlight = new Map<string, number>();
  let held = new Set<string>();
  let stopped = false;
  let sent = 0;
  const running = () => !stopped && sent < maxRequests && Date.now() - started < maxMs;
  const loop = async (offset: number) => {
    for (let i = offset; running(); i++) {
      const op = names[i % names.length]!;
      if (held.has(op)) {
        await new Promise((r) => setTimeout(r, pauseMs));
        continue;
      }
      sent++;
      inFlight.set(op, (inFlight.get(op) ?? 0) + 1);
      const startedAt = Date.now();
      let sample: Sample;
      try {
        const res = await ops[op]!();
        const text = await res.text();
        let code: string | undefined;
        if (res.headers.get("content-type")?.includes("json")) code = (JSON.parse(text) as { code?: string }).code;
        sample = {
          op,
          startedAt,
          finishedAt: Date.now(),
          ms: Date.now() - startedAt,
          status: res.status,
          code,
          retryAfter: res.headers.get("retry-after"),
        };
      } catch (error) {
        sample = { op, startedAt, finishedAt: Date.now(), ms: Date.now() - startedAt, status: 0, retryAfter: null, error: String(error) };
      } finally {
        inFlight.set(op, inFlight.get(op)! - 1);
      }
      samples.push(sample);
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  };
  const loops = Promise.all(Array.from({ length: workers }, (_, i) => loop(i)));
  return {
    samples,
    /** Starts no more requests of these ops and resolves once none of them is in flight (bounded). */
    async hold(opsToHold: string[], timeoutMs = 10_000) {
      held = new Set(opsToHold);
      const deadline = Date.now() + timeoutMs;
      while (opsToHold.some((op) => (inFlight.get(op) ?? 0) > 0)) {
        if (Date.now() > deadline) throw new Error(`requests of ${opsToHold.join(", ")} still in flight after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 2));
      }
    },
    release() {
      held = new Set();
    },
    async stop() {
      stopped = true;
      await loops;
      return samples;
    },
  };
}
