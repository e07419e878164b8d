import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { signToken } from "../http/auth/tokens.js";
import { ConfigError, loadConfig, resolveFileVariables, type RawConfig } from "../core/config.js";
import { ListenError, startNodeServer, startupBanner, type RunningServer } from "../app/server.js";

let config: RawConfig;
try {
  config = loadConfig(resolveFileVariables(process.env, (path) => readFileSync(path, "utf8")));
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(78); // EX_CONFIG
}

let server: RunningServer;
try {
  server = await startNodeServer(config);
} catch (error) {
  // A port already taken is the usual mistake: say which variable chose it, not a stack trace.
  if (!(error instanceof ListenError)) throw error;
  process.stderr.write(`Cannot start: ${error.message}\n`);
  process.exit(78); // EX_CONFIG
}
server.deps.logger.info({ host: server.host, ports: server.ports, environment: config.environment }, "payment service listening");
if (config.environment === "development") {
  // One service token (role service, 30 days), shown in the banner and kept where a shell can pick
  // it up without copying: TOKEN=$(cat .data/service-token)
  const token = await signToken(server.deps.config.jwtSecret, { sub: "demo-shop", role: "service", ttlSeconds: 30 * 86_400 });
  process.stderr.write(`${startupBanner(server, token)}\n`);
  mkdirSync(server.deps.config.dataDir, { recursive: true });
  writeFileSync(path.join(server.deps.config.dataDir, "service-token"), `${token}\n`, { mode: 0o600 });
}

// SIGTERM is the orchestrator's (Kubernetes, Swarm, docker stop): drain first, so load balancers
// stop sending before the API stops accepting. SIGINT is a developer's Ctrl-C: no one to wait for.
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    // Shutdown is bounded by SHUTDOWN_TIMEOUT; should closing the pools hang past it, exit anyway.
    setTimeout(() => {
      server.deps.logger.error("shutdown did not finish within SHUTDOWN_TIMEOUT");
      process.exit(1);
    }, config.shutdownTimeoutMs + 5_000).unref();
    server.stop({ drainMs: signal === "SIGTERM" ? config.shutdownDrainMs : 0 }).then(
      () => process.exit(0),
      (error: unknown) => {
        server.deps.logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  });
}
