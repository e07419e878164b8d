import { readFileSync } from "node:fs";
import { ConfigError, loadConfig, resolveFileVariables } from "../config.js";
import { startNodeServer, startupBanner } from "../server.js";

let config;
try {
  config = loadConfig(resolveFileVariables(process.env, (path) => readFileSync(path, "utf8")));
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(78); // EX_CONFIG
}

const server = await startNodeServer(config);
server.deps.logger.info({ ports: server.ports, environment: config.environment }, "payment service listening");
if (config.environment === "development") process.stderr.write(`${await startupBanner(server)}\n`);

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    server.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        server.deps.logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  });
}
