import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { createHealthApp } from "../handlers/health.js";
import { createMetricsApp } from "../handlers/metrics.js";
import { createApp, usesLocalSandbox } from "./app.js";
import { sealAuditLog } from "./audit.js";
import { sweepExpiredPayments } from "./payments/reconcile.js";
import { signToken } from "./auth/tokens.js";
import type { Config } from "./config.js";
import { buildDeps, type OwnedDeps } from "./deps.js";
import { withDevSecrets } from "./dev-secrets.js";
import { startBackgroundLoop } from "./jobs/background.js";
import { startJobLoop } from "./jobs/loop.js";
import { jobRunners } from "./jobs/runners.js";
import { startDeliveryLoop } from "./webhooks/loop.js";
import { nodeFormPost } from "./http/node-form-post.js";

export interface RunningServer {
  deps: OwnedDeps;
  ports: { main: number; health: number; metrics?: number };
  /** Stops accepting, lets in-flight requests finish (up to SHUTDOWN_TIMEOUT), closes pools. */
  stop(): Promise<void>;
}

function listen(fetch: (request: Request) => Response | Promise<Response>, port: number): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch, port, hostname: "0.0.0.0" }, () => resolve(server));
    server.once("error", reject);
  });
}

function close(server: ServerType, deadline: number): Promise<void> {
  return new Promise((resolve) => {
    const http = server as import("node:http").Server;
    const timer = setTimeout(() => {
      http.closeAllConnections?.();
      resolve();
    }, deadline);
    http.close(() => {
      clearTimeout(timer);
      resolve();
    });
    // Keep-alive connections with no request in flight would hold close() open until they time out.
    http.closeIdleConnections?.();
  });
}

/** Starts the three listeners of the Node deployment: API, health, metrics. */
export async function startNodeServer(rawConfig: Config): Promise<RunningServer> {
  const config = withDevSecrets(rawConfig);
  // With the local sandbox playing Fiuu, its server APIs are reached in-process, as the sandbox
  // reaches the service's webhooks: nothing depends on PUBLIC_URL resolving to this process.
  let app: ReturnType<typeof createApp> | undefined;
  const deps = await buildDeps(config, usesLocalSandbox(config) ? { fiuuFetch: async (request) => app!.fetch(request) } : { fiuuPost: nodeFormPost });
  // Loaded only when it plays Fiuu (development and test), so the production image leaves it out.
  const fiuuSandbox = usesLocalSandbox(config) ? (await import("./fiuu/sandbox/mount.js")).localFiuuSandbox(config) : undefined;
  app = createApp(deps, { fiuuSandbox });
  const main = await listen(app.fetch, config.port);
  const health = await listen(createHealthApp(deps).fetch, config.health.port);
  const metrics = config.metrics.enabled ? await listen(createMetricsApp(deps).fetch, config.metrics.port) : undefined;
  const port = (server: ServerType) => (server.address() as AddressInfo).port;
  // Background work, shared with the other replicas through the database: durable job rows and
  // webhook deliveries (SKIP LOCKED), the expiry sweep (it only enqueues deduplicated jobs), and
  // the audit sealer, which links committed rows into the hash chain about a second after commit
  // so that writers never wait on each other (one sealer at a time across replicas).
  const loops = [
    startJobLoop(deps, jobRunners()),
    startDeliveryLoop(deps),
    startBackgroundLoop(deps, async () => ({ backlog: (await sweepExpiredPayments(deps)) >= 200 }), { name: "expiry sweep", intervalMs: 30_000 }),
    startBackgroundLoop(deps, async () => ({ backlog: (await sealAuditLog(deps.database.db)) >= 1000 }), { name: "audit sealing" }),
  ];

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      deps.logger.info("shutting down: no new connections, finishing in-flight requests");
      const servers = [main, health, metrics].filter((s): s is ServerType => s !== undefined);
      // The loops finish their batch in flight (releasing work not started) before the pools close.
      await Promise.all([...servers.map((s) => close(s, config.shutdownTimeoutMs)), ...loops.map((loop) => loop.stop())]);
      await deps.close();
      deps.logger.info("stopped");
    })());

  return { deps, ports: { main: port(main), health: port(health), metrics: metrics && port(metrics) }, stop };
}

/** The start-up banner of the embedded default: where everything is, and a token to try the API with. */
export async function startupBanner(server: RunningServer): Promise<string> {
  const { config } = server.deps;
  const token = await signToken(config.jwtSecret!, { sub: "demo-shop", role: "service", ttlSeconds: 30 * 86_400 });
  const host = (port: number | undefined) => (port ? `http://localhost:${port}` : "disabled");
  return [
    "",
    "  Payment service is up",
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
