import { readdirSync, readFileSync } from "node:fs";
import { createHealthApp } from "../../handlers/health.js";
import { createMetricsApp } from "../../handlers/metrics.js";
import { createApp, usesLocalSandbox } from "./app.js";
import type { RawConfig } from "../core/config.js";
import { assembleDeps, type OwnedDeps } from "./deps.js";
import { nodeOpeners } from "./node-openers.js";
import { withDevSecrets } from "../core/dev-secrets.js";
import { startBackgroundWork } from "../ops/jobs/table.js";
import { formPostOver } from "../adapters/fiuu/form-post.js";
import { createNodeFormPost } from "../adapters/fiuu/node-form-post.js";
import { connectionCaps, parseOpenFileLimit, startListener, type Listener } from "./listener.js";

export interface RunningServer {
  deps: OwnedDeps;
  /** The address the three listeners are bound to (HOST). */
  host: string;
  ports: { main: number; health: number; metrics?: number };
  /**
   * Shuts down without dropping a request: /ready answers 503 at once and the background loops stop
   * claiming work; the API keeps serving for `drainMs` (SHUTDOWN_DRAIN on SIGTERM, so load balancers
   * stop sending first), every answer from now on with `Connection: close`; then it stops accepting,
   * answers what it has received and closes each connection after its last answer; the health and
   * metrics listeners close last, then the pools. Everything is bounded by SHUTDOWN_TIMEOUT.
   */
  stop(options?: { drainMs?: number }): Promise<void>;
}

/** Descriptors kept free beyond those open at start and the pools: calls to Fiuu and receivers, files. */
const spareDescriptors = 128;

function readOpenFileLimit(): number | undefined {
  try {
    return parseOpenFileLimit(readFileSync("/proc/self/limits", "utf8"));
  } catch {
    return undefined; // not Linux: the configured caps stand
  }
}

/** Descriptors open now (stdio, the event loop, an embedded database's files), or 0 where unknown. */
function countOpenDescriptors(): number {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return 0;
  }
}

/** Starts the three listeners of the Node deployment: API, health, metrics. */
export async function startNodeServer(rawConfig: RawConfig): Promise<RunningServer> {
  const config = withDevSecrets(rawConfig);
  // With the local sandbox playing Fiuu, its server APIs are reached in-process, as the sandbox
  // reaches the service's webhooks: nothing depends on PUBLIC_URL resolving to this process.
  let app: ReturnType<typeof createApp> | undefined;
  const fiuuTransport = usesLocalSandbox(config) ? formPostOver(async (request) => app!.fetch(request)) : createNodeFormPost();
  const deps = await assembleDeps(config, nodeOpeners({ fiuuTransport }));
  // Loaded only when it plays Fiuu (development and test), so the production image leaves it out.
  const fiuuSandbox = usesLocalSandbox(config) ? (await import("../adapters/fiuu/sandbox/mount.js")).localFiuuSandbox(config) : undefined;
  app = createApp(deps, { fiuuSandbox });

  const { http } = config;
  const openFileLimit = readOpenFileLimit();
  const pools = (config.database.kind === "postgres" ? config.database.max : 0) + (config.redis.kind === "tcp" ? config.redis.maxConnections : 0);
  const caps = connectionCaps(http.maxConnections, openFileLimit, countOpenDescriptors() + spareDescriptors + pools);
  if (caps.lowered) {
    deps.logger.warn(
      { configured: http.maxConnections.api, max_connections: caps.api, open_file_limit: openFileLimit },
      "HTTP_MAX_CONNECTIONS lowered to stay below the open-files limit",
    );
  }
  let shuttingDown = false;
  const listener = (name: string, fetch: Parameters<typeof startListener>[0], port: number, maxConnections: number, variable: string) =>
    startListener(fetch, {
      name,
      host: http.host,
      port,
      headersTimeoutMs: http.headersTimeoutMs,
      requestTimeoutMs: http.requestTimeoutMs,
      keepAliveTimeoutMs: http.keepAliveTimeoutMs,
      maxConnections,
      logger: deps.logger,
    }).catch((error: unknown) => {
      throw listenError(error, variable, http.host, port);
    });
  const main = await listener("api", app.fetch, config.port, caps.api, "PORT");
  const health = await listener(
    "health",
    createHealthApp(deps, { shuttingDown: () => shuttingDown }).fetch,
    config.health.port,
    caps.health,
    "HEALTH_CHECK_PORT",
  );
  const metrics = config.metrics.enabled
    ? await listener("metrics", createMetricsApp(deps).fetch, config.metrics.port, caps.metrics, "METRICS_PORT")
    : undefined;
  // Background work (lib/ops/jobs/table.ts): job rows, webhook deliveries, the expiry sweep, audit
  // sealing and data retention, each in a loop of its own, shared with the other replicas through the database.
  const background = startBackgroundWork(deps);

  let stopping: Promise<void> | undefined;
  const stop = ({ drainMs = 0 }: { drainMs?: number } = {}) =>
    (stopping ??= (async () => {
      const deadline = Date.now() + config.shutdownTimeoutMs;
      shuttingDown = true;
      main.closeAfterEachResponse();
      // The loops finish their batch in flight and hand back work not started; another replica
      // claims it. Their pools stay open until the end.
      const loopsStopped = background.stop();
      const drain = Math.max(0, Math.min(drainMs, deadline - Date.now()));
      deps.logger.info({ drain_ms: drain }, "shutting down: /ready answers 503, the API serves the drain period");
      if (drain > 0) await sleep(drain);
      deps.logger.info({ in_flight: main.inFlight() }, "shutting down: no new connections, answering the requests received");
      const api = await main.close(deadline);
      const loopsInTime = await Promise.race([loopsStopped.then(() => true), sleep(Math.max(0, deadline - Date.now())).then(() => false)]);
      if (!loopsInTime) deps.logger.warn("background work still running at SHUTDOWN_TIMEOUT; its jobs are claimed again when their lock expires");
      const others = await Promise.all([health, metrics].filter((l): l is Listener => l !== undefined).map((l) => l.close(deadline)));
      const forced = [api, ...others].reduce((sum, r) => sum + r.forced, 0);
      if (forced > 0) deps.logger.warn({ connections: forced }, "connections still open at SHUTDOWN_TIMEOUT were closed");
      await deps.close();
      deps.logger.info("stopped");
    })());

  return { deps, host: http.host, ports: { main: main.port, health: health.port, metrics: metrics?.port }, stop };
}

/** A listener that could not bind its port, named by the variable that chose it (PORT, HEALTH_CHECK_PORT, METRICS_PORT). */
export class ListenError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
    this.name = "ListenError";
  }
}

function listenError(error: unknown, variable: string, host: string, port: number): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "EADDRINUSE") {
    return new ListenError(
      variable,
      `${variable}=${port}: port ${port} on ${host} is already in use (another payment service still running?); stop that process or set ${variable} to a free port`,
    );
  }
  if (code === "EACCES")
    return new ListenError(variable, `${variable}=${port}: not allowed to listen on port ${port} on ${host}; set ${variable} to a port above 1023`);
  if (code === "EADDRNOTAVAIL") return new ListenError("HOST", `HOST=${host}: no such address on this machine to listen on`);
  return error;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The start-up banner of the embedded default: where everything is, and the service token to try the API with. */
export function startupBanner(server: RunningServer, token: string): string {
  const { config } = server.deps;
  const bound = server.host;
  const everywhere = bound === "0.0.0.0" || bound === "::";
  const local = everywhere ? "localhost" : bound.includes(":") ? `[${bound}]` : bound;
  const host = (port: number | undefined) => (port ? `http://${local}:${port}` : "disabled");
  const where = everywhere
    ? `every interface (HOST=${bound}): the demo and the sandbox's control routes are reachable from the network`
    : bound === "127.0.0.1" || bound === "::1" || bound === "localhost"
      ? `${bound} only (this machine); HOST=0.0.0.0 accepts connections from the network`
      : bound;
  return [
    "",
    "  Payment service is up",
    `    Listening  ${where}`,
    `    Ports      API ${server.ports.main}, health ${server.ports.health}, metrics ${server.ports.metrics ?? "disabled"}`,
    `    API        ${config.publicUrl}`,
    `    Docs       ${config.publicUrl}/docs`,
    `    Demo       ${config.publicUrl}/demo`,
    `    Health     ${host(server.ports.health)}/ready`,
    `    Metrics    ${host(server.ports.metrics)}/metrics`,
    `    Database   ${config.database.kind === "embedded" ? `embedded PGlite in ${config.database.dataDir}` : "PostgreSQL"}`,
    `    Redis      ${config.redis.kind === "memory" ? "in-process stand-in" : config.redis.kind}`,
    `    Fiuu       ${config.fiuu.paymentUrl}`,
    "",
    "  Service token (role service, 30 days):",
    `    ${token}`,
    "",
    `  curl -H "Authorization: Bearer $TOKEN" ${config.publicUrl}/v1/payment-methods`,
    "",
  ].join("\n");
}
