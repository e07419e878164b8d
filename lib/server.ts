import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { createHealthApp } from "../handlers/health.js";
import { createMetricsApp } from "../handlers/metrics.js";
import { createApp, usesLocalSandbox } from "./app.js";
import { sealAuditLog } from "./audit.js";
import { sweepExpiredPayments } from "./fiuu/jobs.js";
import { signToken } from "./auth/tokens.js";
import type { Config } from "./config.js";
import { buildDeps, type OwnedDeps } from "./deps.js";
import { withDevSecrets } from "./dev-secrets.js";
import { startJobLoop } from "./jobs/loop.js";
import { jobRunners } from "./jobs/runners.js";
import { startDeliveryLoop } from "./webhooks/loop.js";

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
  const deps = await buildDeps(config, usesLocalSandbox(config) ? { fiuuFetch: async (request) => app!.fetch(request) } : {});
  app = createApp(deps);
  const main = await listen(app.fetch, config.port);
  const health = await listen(createHealthApp(deps).fetch, config.health.port);
  const metrics = config.metrics.enabled ? await listen(createMetricsApp(deps).fetch, config.metrics.port) : undefined;
  const port = (server: ServerType) => (server.address() as AddressInfo).port;
  // This process works the durable job rows itself; replicas share them through SKIP LOCKED.
  const jobLoop = startJobLoop(deps, jobRunners());
  // Webhook deliveries are rows of their own (event_deliveries), worked by a loop of their own.
  const deliveryLoop = startDeliveryLoop(deps);
  // The expiry sweep only enqueues (deduplicated) jobs, so every replica may run it.
  const sweep = setInterval(() => {
    sweepExpiredPayments(deps).catch((error: unknown) => deps.logger.warn({ err: error }, "expiry sweep failed"));
  }, 30_000);
  sweep.unref();
  // Audit rows are inserted unsealed so writers never wait on each other; this links them into
  // the hash chain about a second after they commit (one sealer at a time across replicas).
  const seal = setInterval(() => {
    sealAuditLog(deps.database.db).catch((error: unknown) => deps.logger.warn({ err: error }, "audit sealing failed"));
  }, 1_000);
  seal.unref();

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      deps.logger.info("shutting down: no new connections, finishing in-flight requests");
      clearInterval(sweep);
      clearInterval(seal);
      const servers = [main, health, metrics].filter((s): s is ServerType => s !== undefined);
      // The loops finish their batch in flight (releasing work not started) before the pools close.
      await Promise.all([...servers.map((s) => close(s, config.shutdownTimeoutMs)), jobLoop.stop(), deliveryLoop.stop()]);
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
