import type { AsyncLocalStorage } from "node:async_hooks";
import type { JobGroup } from "../ops/jobs/table.js";
import type { App } from "../app/app.js";
import type { Config } from "../core/config.js";
import type { AppDeps } from "../domain/deps.js";
import type { DatabaseHandle } from "../adapters/db/client.js";
import type { Logger } from "../core/logger.js";
import type { Metrics } from "../core/metrics.js";

// The Cloudflare Workers (workerd) entry: the same app and job runners as the Node server,
// configured from the Worker's bindings. Built by infra/functions/build.mjs into
// dist/functions/worker.js; deployed with infra/functions/wrangler.toml.
//
// Everything but types is imported dynamically, so the bundler defers its module code to the
// first event: workerd refuses some work at global scope (cockatiel creates AbortControllers at
// import), and an isolate should not pay for the app before it serves anything.

/** The service's modules, loaded on an isolate's first event. */
const loadModules = async () => {
  const [app, config, dbClient, dbTls, depsCore, jobs, logger, asyncHooks, upstash] = await Promise.all([
    import("../app/app.js"),
    import("../core/config.js"),
    import("../adapters/db/client.js"),
    import("../adapters/db/tls.js"),
    import("../app/deps-core.js"),
    import("../ops/jobs/table.js"),
    import("../core/logger.js"),
    import("node:async_hooks"),
    import("@upstash/redis/cloudflare"),
  ]);
  return {
    createApp: app.createApp,
    loadConfig: config.loadConfig,
    ConfigError: config.ConfigError,
    openPostgres: dbClient.openPostgres,
    postgresTls: dbTls.postgresTls,
    assembleDeps: depsCore.assembleDeps,
    jobGroupNames: jobs.jobGroupNames,
    cronGroups: jobs.cronGroups,
    runJobGroup: jobs.runJobGroup,
    sensitiveKeys: logger.sensitiveKeys,
    AsyncLocalStorage: asyncHooks.AsyncLocalStorage,
    Redis: upstash.Redis,
  };
};
type Modules = Awaited<ReturnType<typeof loadModules>>;

/** The Worker's bindings: plain-text vars and secrets, read like environment variables. */
export type WorkerEnv = Record<string, unknown>;

interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
  passThroughOnException?(): void;
}
interface ScheduledController {
  readonly cron: string;
  readonly scheduledTime: number;
}

/**
 * What an isolate keeps between events: the loaded modules, configuration, the dependency set
 * (logger, metrics, the Redis REST client, the Fiuu client whose circuit breaker should outlive
 * one request) and the app. The database pool is not among them: workerd refuses to let one
 * request use a socket another request opened, so each request and each scheduled run opens its
 * own small postgres.js pool (connecting on first query) and closes it when done; the app's
 * `deps.database` stands for the pool of the event in progress.
 */
interface Isolate {
  modules: Modules;
  config: Config;
  deps: AppDeps;
  app: App;
  databases: AsyncLocalStorage<DatabaseHandle>;
}

// A Worker reuses its isolate for many events; this cache lives here, in the entry, and nowhere else.
let isolate: { env: WorkerEnv; ready: Promise<Isolate> } | undefined;

function isolateFor(env: WorkerEnv): Promise<Isolate> {
  if (isolate?.env !== env) {
    const ready = buildIsolate(env);
    isolate = { env, ready };
    // A failed start-up (a bad binding) is retried on the next event rather than cached.
    ready.catch(() => {
      if (isolate?.ready === ready) isolate = undefined;
    });
  }
  return isolate.ready;
}

/** Parses the bindings and composes the app, as lib/app/server.ts does for Node. */
async function buildIsolate(env: WorkerEnv): Promise<Isolate> {
  const modules = await loadModules();
  const config = modules.loadConfig(bindingsAsEnvironment(env));
  const problems = [
    config.database.kind !== "postgres" && "DATABASE_URL: required by the Workers build (or DB_HOST)",
    config.redis.kind !== "rest" && "UPSTASH_REDIS_REST_URL: required by the Workers build (Redis over REST; TCP Redis is not reachable from a Worker)",
    !config.jwtSecret && "JWT_SECRET: required by the Workers build",
    !config.encryptionKey && "ENCRYPTION_KEY: required by the Workers build",
    config.fiuu.localSandbox && "FIUU_LOCAL_SANDBOX: the Workers build has no local Fiuu sandbox; set FIUU_MERCHANT_ID and Fiuu's keys",
  ].filter((p): p is string => typeof p === "string");
  if (problems.length > 0) throw new modules.ConfigError(problems);
  const tlsProblems = workerTlsProblems(config.database as Extract<Config["database"], { kind: "postgres" }>, modules.postgresTls);
  if (tlsProblems.length > 0) throw new modules.ConfigError(tlsProblems);
  const redisConfig = config.redis as Extract<Config["redis"], { kind: "rest" }>;

  const databases = new modules.AsyncLocalStorage<DatabaseHandle>();
  // The same options as lib/adapters/redis's REST transport: replies answered unparsed, as on every transport.
  const redis = new modules.Redis({
    url: redisConfig.url,
    token: redisConfig.token,
    enableTelemetry: false,
    retry: { retries: 1 },
    automaticDeserialization: false,
  });
  let app: App | undefined;
  const deps = modules.assembleDeps(config, {
    database: requestDatabase(databases),
    // The Cloudflare build of the same client (no Node-only fetch options); the API is identical.
    redis: redis as unknown as AppDeps["redis"],
    logger: createConsoleLogger(config.log.level, modules.sensitiveKeys),
    metrics: createNoopMetrics(),
  });
  app = modules.createApp(deps);
  deps.logger.info({ environment: config.environment }, "worker isolate ready");
  return { modules, config, deps, app, databases };
}

/**
 * The TLS settings a Worker can honour, by the same rule as every connection (lib/adapters/db/tls.ts), or
 * why not. In workerd the runtime's socket does the TLS handshake (postgres.js's cloudflare:sockets
 * build): it cannot go back to plain text on the connection that asked for TLS, so prefer (the
 * default) and allow would stall against a server without TLS; and it takes no CA certificate of
 * ours, so DB_SSL_CA and verify-ca (chain without host name) cannot mean what they say there.
 */
export function workerTlsProblems(
  database: Extract<Config["database"], { kind: "postgres" }>,
  postgresTls: typeof import("../adapters/db/tls.js").postgresTls,
): string[] {
  const tls = postgresTls(database.url, { mode: database.ssl, ca: database.ca }, database.urlVariable);
  const problems: string[] = [];
  if (tls.mode === "prefer" || tls.mode === "allow") {
    problems.push(
      `DB_SSL_MODE: ${tls.modeFrom} cannot work in the Workers build: prefer (the default) and allow fall back between TLS and plain text, which workerd's sockets cannot; set DB_SSL_MODE=require (or verify-full with sslrootcert=system) for a server with TLS, disable for one without`,
    );
  }
  if (tls.mode === "verify-ca") problems.push(`DB_SSL_MODE: ${tls.modeFrom} cannot work in the Workers build (the runtime checks the host name with the chain); use verify-full`);
  if (database.ca !== undefined) {
    problems.push("DB_SSL_CA: the Workers build cannot use a CA certificate of its own (the runtime does the TLS handshake); use verify-full with sslrootcert=system and a certificate from a public CA, or Hyperdrive");
  }
  return problems;
}

/** A database handle that stands for the pool of the event in progress. */
function requestDatabase(databases: AsyncLocalStorage<DatabaseHandle>): DatabaseHandle {
  const current = () => {
    const handle = databases.getStore();
    if (!handle) throw new Error("no database outside a request or scheduled run");
    return handle;
  };
  return {
    kind: "postgres",
    get db() {
      return current().db;
    },
    get url() {
      return current().url;
    },
    exec: (text) => current().exec(text),
    // Each event's pool is closed by withDatabase.
    close: async () => {},
  };
}

/** Runs an event's work with a database pool of its own, closed after the work (without delaying the answer). */
async function withDatabase<T>(current: Isolate, ctx: ExecutionContext, work: () => Promise<T>): Promise<T> {
  const database = current.config.database as Extract<Config["database"], { kind: "postgres" }>;
  // A few connections: a transaction may hold one while the same request reads with another.
  // Workers allow six open connections per event, fetches to Redis and Fiuu included.
  const handle = await current.modules.openPostgres(database.url, { ...database, max: Math.min(database.max, 4), idle: 0 });
  try {
    return await current.databases.run(handle, work);
  } finally {
    ctx.waitUntil(handle.close().catch(() => {}));
  }
}

/** Bindings as the string record loadConfig reads: strings kept, other bindings (KV, services) left out. */
function bindingsAsEnvironment(env: WorkerEnv): Record<string, string | undefined> {
  const source: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries(env)) if (typeof value === "string") source[key] = value;
  return source;
}

/** A 503 problem document for a Worker whose bindings do not parse; the details go to the log. */
function misconfigured(error: Error): Response {
  console.error(JSON.stringify({ level: "fatal", time: new Date().toISOString(), service: "payment-service", msg: error.message }));
  const body = { type: "about:blank", title: "Service Unavailable", status: 503, detail: "The service is not configured.", code: "unavailable" };
  return new Response(JSON.stringify(body), { status: 503, headers: { "content-type": "application/problem+json", "retry-after": "60" } });
}

export default {
  async fetch(request: Request, env: WorkerEnv, ctx: ExecutionContext): Promise<Response> {
    let current: Isolate;
    try {
      current = await isolateFor(env);
    } catch (error) {
      if (error instanceof Error && error.name === "ConfigError") return misconfigured(error);
      throw error;
    }
    return withDatabase(current, ctx, async () => current.app.fetch(request, env, ctx as never));
  },

  async scheduled(controller: ScheduledController, env: WorkerEnv, ctx: ExecutionContext): Promise<void> {
    const current = await isolateFor(env);
    const log = current.deps.logger;
    // The groups of the trigger's schedule (cronGroups, lib/ops/jobs/table.ts; wrangler.toml lists the same crons). A cron not
    // there runs every group: each batch only claims what is due, so an extra run costs a few queries, never a double payment.
    const listed = current.modules.cronGroups[controller.cron];
    if (!listed) log.warn({ cron: controller.cron }, "cron trigger not in cronGroups; running every job group");
    const groups: readonly JobGroup[] = listed ?? current.modules.jobGroupNames;
    const failures: unknown[] = [];
    await withDatabase(current, ctx, async () => {
      // One group failing (e.g. Fiuu down) does not keep the others from running.
      for (const group of groups) {
        try {
          log.info({ cron: controller.cron, ...(await current.modules.runJobGroup(current.deps, group)) }, "scheduled job batch");
        } catch (error) {
          failures.push(error);
          log.error({ cron: controller.cron, job: group, err: error }, "scheduled job batch failed");
        }
      }
    });
    // Thrown, so the Cloudflare dashboard shows the run as failed.
    if (failures.length > 0) throw failures[0];
  },
};

// ---------------------------------------------------------------------------------------------
// Logging and metrics for workerd. pino's Node build needs worker threads and prom-client needs
// node:cluster and node:v8, neither of which workerd has; a Worker has no /metrics port anyway.

const levelValues = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Number.POSITIVE_INFINITY } as const;
type LevelName = keyof typeof levelValues;

/** Blanks the values of sensitive keys at any depth (pino's redact paths reach two levels). */
function redact(value: unknown, sensitive: ReadonlySet<string>, depth = 0): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return {
      type: value.name,
      message: value.message,
      ...(typeof code === "string" ? { code } : {}),
      ...(value.cause !== undefined && depth < 4 ? { cause: redact(value.cause, sensitive, depth + 1) } : {}),
    };
  }
  if (value === null || typeof value !== "object" || depth > 6) return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, sensitive, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = sensitive.has(key.toLowerCase()) ? "[redacted]" : redact(v, sensitive, depth + 1);
  return out;
}

/**
 * A logger with the calls the service makes on pino's (info/warn/error/debug/trace/fatal with an
 * optional object first, and child), writing one JSON line per entry to the console, which
 * Workers Logs and `wrangler tail` collect. Values under lib/core/logger.ts's sensitive keys (and the
 * client-secret and idempotency-key headers) are blanked as pino's redaction blanks them.
 */
export function createConsoleLogger(level: LevelName, sensitiveKeys: readonly string[]): Logger {
  const sensitive = new Set([...sensitiveKeys, "x-client-secret", "idempotency-key"].map((k) => k.toLowerCase()));
  const make = (bindings: Record<string, unknown>): Logger => {
    const threshold = levelValues[level];
    const write = (name: Exclude<LevelName, "silent">) => (first?: unknown, ...rest: unknown[]) => {
      if (levelValues[name] < threshold) return;
      const fields = typeof first === "object" && first !== null ? (redact(first, sensitive) as Record<string, unknown>) : {};
      const message = typeof first === "string" ? first : typeof rest[0] === "string" ? rest[0] : undefined;
      const line = JSON.stringify({ level: name, time: new Date().toISOString(), ...bindings, ...fields, ...(message ? { msg: message } : {}) });
      if (levelValues[name] >= levelValues.error) console.error(line);
      else if (name === "warn") console.warn(line);
      else console.log(line);
    };
    const logger = {
      level,
      trace: write("trace"),
      debug: write("debug"),
      info: write("info"),
      warn: write("warn"),
      error: write("error"),
      fatal: write("fatal"),
      silent: () => {},
      isLevelEnabled: (name: LevelName) => levelValues[name] >= threshold,
      child: (more: Record<string, unknown>) => make({ ...bindings, ...(redact(more, sensitive) as Record<string, unknown>) }),
    };
    return logger as unknown as Logger;
  };
  return make({ service: "payment-service" });
}

/** A metric that records nothing but answers every call prom-client's metrics answer. */
const noopMetric = {
  inc() {},
  dec() {},
  set() {},
  observe() {},
  reset() {},
  remove() {},
  startTimer: () => () => 0,
  labels: () => noopMetric,
  get: async () => ({ values: [] }),
};

/** The service's metrics object with every metric a no-op (a Worker has nothing to scrape). */
export function createNoopMetrics(): Metrics {
  return new Proxy({} as Metrics, {
    get: (_target, property) => (property === "registry" ? { metrics: async () => "", contentType: "text/plain" } : noopMetric),
  });
}
