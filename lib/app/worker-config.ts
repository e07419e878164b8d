import { ConfigError, loadConfig, resolveSecrets, type Config } from "../core/config.js";
import { postgresTls as resolveTls } from "../adapters/db/tls.js";

type PostgresSettings = Extract<Config["database"], { kind: "postgres" }>;
type RestRedis = Extract<Config["redis"], { kind: "rest" }>;

/** The Worker's configuration: a Postgres and Redis over REST it can reach, every secret given, TLS it can honour. */
export type WorkerConfig = Config & { database: PostgresSettings; redis: RestRedis };

/**
 * Parses the Worker's bindings (as environment variables) into its Config, or throws one
 * ConfigError naming everything the Workers build cannot run with: no Postgres, Redis not over
 * REST, the local sandbox, a missing secret (there are no development secrets there), TLS
 * settings its sockets cannot honour.
 */
export function workerConfig(source: Record<string, string | undefined>): WorkerConfig {
  const raw = loadConfig(source);
  const problems = [
    raw.database.kind !== "postgres" && "DATABASE_URL: required by the Workers build (or DB_HOST)",
    raw.redis.kind !== "rest" && "UPSTASH_REDIS_REST_URL: required by the Workers build (Redis over REST; TCP Redis is not reachable from a Worker)",
    raw.fiuu.localSandbox && "FIUU_LOCAL_SANDBOX: the Workers build has no local Fiuu sandbox; set FIUU_MERCHANT_ID and Fiuu's keys",
  ].filter((p): p is string => typeof p === "string");
  let config: Config | undefined;
  try {
    config = resolveSecrets(raw, { requiredBy: "the Workers build" });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(...error.problems);
  }
  if (raw.database.kind === "postgres") problems.push(...workerTlsProblems(raw.database));
  if (problems.length > 0 || !config) throw new ConfigError(problems);
  return config as WorkerConfig;
}

/**
 * The TLS settings a Worker can honour, by the same rule as every connection (lib/adapters/db/tls.ts), or
 * why not. In workerd the runtime's socket does the TLS handshake (postgres.js's cloudflare:sockets
 * build): it cannot go back to plain text on the connection that asked for TLS, so prefer (the
 * default) and allow would stall against a server without TLS; and it takes no CA certificate of
 * ours, so DB_SSL_CA and verify-ca (chain without host name) cannot mean what they say there.
 */
export function workerTlsProblems(database: PostgresSettings, postgresTls: typeof resolveTls = resolveTls): string[] {
  const tls = postgresTls(database.url, { mode: database.ssl, ca: database.ca }, database.urlVariable);
  const problems: string[] = [];
  if (tls.mode === "prefer" || tls.mode === "allow") {
    problems.push(
      `DB_SSL_MODE: ${tls.modeFrom} cannot work in the Workers build: prefer (the default) and allow fall back between TLS and plain text, which workerd's sockets cannot; set DB_SSL_MODE=require (or verify-full with sslrootcert=system) for a server with TLS, disable for one without`,
    );
  }
  if (tls.mode === "verify-ca")
    problems.push(`DB_SSL_MODE: ${tls.modeFrom} cannot work in the Workers build (the runtime checks the host name with the chain); use verify-full`);
  if (database.ca !== undefined) {
    problems.push(
      "DB_SSL_CA: the Workers build cannot use a CA certificate of its own (the runtime does the TLS handshake); use verify-full with sslrootcert=system and a certificate from a public CA, or Hyperdrive",
    );
  }
  return problems;
}
