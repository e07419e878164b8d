import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";
import type postgres from "postgres";
import { signToken, type Role } from "../../lib/http/auth/tokens.js";
import { loadConfig, resolveSecrets, type Config } from "../../lib/core/config.js";

// Replicas of the service as Kubernetes runs them: separate Node processes (`node --import tsx
// lib/entry/node.ts`) on one database and one Redis, each on free ports, each with the local Fiuu
// sandbox mounted on itself (PUBLIC_URL=http://payments.test, so no replica ever needs to reach
// itself or another over the network).

const entry = path.resolve("lib/entry/node.ts");

export interface Ports {
  main: number;
  health: number;
  metrics: number;
}

export interface Replica {
  name: string;
  child: ChildProcess;
  ports: Ports;
  /** http://127.0.0.1:<main port> */
  url: string;
  /** Every stdout line (JSON log lines), parsed where possible. */
  logs: Record<string, unknown>[];
  stderr(): string;
  /** Resolves with the exit code (or null when killed by a signal) and the signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The environment every replica of one deployment shares: one database, one Redis, the same keys. */
export function deploymentEnv(options: { databaseUrl: string; webhookUrls?: string[]; extra?: Record<string, string> }): Record<string, string> {
  return {
    ENVIRONMENT: "test",
    LOG_LEVEL: "info",
    PORT: "0",
    HEALTH_CHECK_PORT: "0",
    METRICS_PORT: "0",
    DATABASE_URL: options.databaseUrl,
    DB_SSL_MODE: "disable",
    DB_MAX_CONNECTIONS: "8",
    REDIS_HOST: process.env.TEST_REDIS_HOST ?? "127.0.0.1",
    REDIS_PORT: process.env.TEST_REDIS_PORT ?? "6379",
    JWT_SECRET: randomBytes(32).toString("hex"),
    ENCRYPTION_KEY: randomBytes(32).toString("hex"),
    WEBHOOK_SECRET: `whsec_${randomBytes(24).toString("base64")}`,
    WEBHOOK_URLS: (options.webhookUrls ?? []).join(","),
    FIUU_MERCHANT_ID: `SB_replicas${randomBytes(4).toString("hex")}`,
    FIUU_VERIFY_KEY: randomBytes(16).toString("hex"),
    FIUU_SECRET_KEY: randomBytes(16).toString("hex"),
    FIUU_QUERY_INTERVAL: "1ms",
    FIUU_RETRY_DELAY: "5ms",
    FIUU_BREAKER_RESET: "100ms",
    PUBLIC_URL: "http://payments.test",
    FIUU_LOCAL_SANDBOX: "true",
    ...options.extra,
  };
}

/** The configuration a replica parses from this environment (for its keys and secrets). */
export const configOf = (env: Record<string, string>): Config => resolveSecrets(loadConfig(env), { requiredBy: "the replicas test" });

/** Starts one replica and resolves once it logs "payment service listening" (bounded by timeoutMs). */
export async function startReplica(name: string, env: Record<string, string>, timeoutMs = 60_000): Promise<Replica> {
  const child = spawn(process.execPath, ["--import", "tsx", entry], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const ports = await new Promise<Ports>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`replica ${name} did not start within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        parsed = { raw: line };
      }
      logs.push(parsed);
      if (parsed.msg === "payment service listening") {
        clearTimeout(timer);
        resolve(parsed.ports as Ports);
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`replica ${name} exited (${code ?? signal}) before listening: ${stderr}`));
    });
  });
  return { name, child, ports, url: `http://127.0.0.1:${ports.main}`, logs, stderr: () => stderr, exited };
}

/** Starts `count` replicas of one deployment at once. */
export function startReplicas(count: number, env: Record<string, string>): Promise<Replica[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => startReplica(`replica-${i + 1}`, env)));
}

/** SIGKILLs whatever is still running (test teardown). */
export async function killAll(replicas: readonly Replica[]) {
  await Promise.all(
    replicas.map(async (r) => {
      if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL");
      await r.exited;
    }),
  );
}

/** A bearer header for the deployment's JWT_SECRET. */
export async function bearerFor(env: Record<string, string>, sub: string, role: Role = "service") {
  return { Authorization: `Bearer ${await signToken(env.JWT_SECRET!, { sub, role, ttlSeconds: 600 })}` };
}

/** A webhook receiver on 127.0.0.1 that answers 200 and counts what it got. */
export async function startReceiver() {
  const received: { path: string; id: string | undefined }[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      received.push({ path: req.url ?? "", id: req.headers["webhook-id"] as string | undefined });
      res.writeHead(200).end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    urls: [`http://127.0.0.1:${port}/shop-a`, `http://127.0.0.1:${port}/shop-b`],
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * Backends of the replicas (application_name payment-service) waiting on a lock in `database`,
 * read from pg_stat_activity through an admin connection.
 */
/**
 * Holds an order as a create in flight would: an uncommitted open payment for it, whose entry in
 * the unique index a create for the same order must wait on. Resolves once held; `release()`
 * rolls it back, leaving the order free.
 */
export async function holdOrder(sql: postgres.Sql, orderId: string): Promise<{ release(): Promise<void> }> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let held!: () => void;
  const holding = new Promise<void>((resolve) => (held = resolve));
  const id = `payhold${randomBytes(6).toString("hex")}`;
  const done = sql
    .begin(async (tx) => {
      await tx`insert into payments (id, order_id, amount, currency, description, customer_name, customer_email,
        client_secret_hash, gateway_order_id, created_by, expires_at)
        values (${id}, ${orderId}, 100, 'MYR', 'Held', 'x', 'x', 'x', ${id}, 'test', now() + interval '1 hour')`;
      held();
      await released;
      throw new Error("roll back");
    })
    .catch(() => undefined);
  await Promise.race([holding, done]);
  return {
    release: async () => {
      release();
      await done;
    },
  };
}

export async function lockWaiters(sql: postgres.Sql, database: string): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from pg_stat_activity
    where datname = ${database} and application_name = 'payment-service' and wait_event_type = 'Lock'`;
  return row!.n;
}
