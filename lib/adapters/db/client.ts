import { mkdirSync } from "node:fs";
import path from "node:path";
import type { SQL } from "drizzle-orm";
import type postgres from "postgres";
import type { Sql } from "postgres";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import * as schema from "../../../drizzle/schema.js";
import { driverQueryOf, flattenSql } from "./flat.js";
import { postgresTls, type PostgresTls, type TlsSettings } from "./tls.js";
import type { Config } from "../../core/config.js";

export type Schema = typeof schema;
/** The Drizzle database, whichever driver is behind it (postgres.js or PGlite). */
export type Database = PgDatabase<PgQueryResultHKT, Schema>;

export interface DatabaseHandle {
  db: Database;
  kind: "postgres" | "embedded";
  /** The connection URL (Postgres only), for work that needs a connection of its own. */
  url?: string;
  /** The TLS settings the URL is opened with (Postgres only): a connection of its own takes the same. */
  tls?: TlsSettings & { urlVariable?: string };
  /** The connection's TLS as postgresTls resolved it (Postgres only), for logs and messages. */
  tlsResolved?: PostgresTls;
  /** Runs a multi-statement SQL text without parameters (migrations, seed). */
  exec(text: string): Promise<void>;
  close(): Promise<void>;
}

/** Rows of a raw query, whichever driver answered it. */
export async function queryRows<T>(db: Pick<Database, "execute">, query: SQL): Promise<T[]> {
  const result = (await executeSql(db, query)) as unknown;
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}

/**
 * `db.execute(query)` (on the database or a transaction), with the statement's text built by
 * flattenSql where it can be and sent on the transaction's own connection as Drizzle would send it
 * (postgres.js: prepared, with the same type parsers; PGlite: with the same query options), for
 * PostgreSQL and PGlite alike. Statements flattenSql leaves go through Drizzle.
 */
export async function executeSql(db: Pick<Database, "execute">, query: SQL): Promise<unknown> {
  const send = driverQueryOf(db);
  const flat = send && flattenSql(query);
  return flat ? send(flat.sql, flat.params) : db.execute(query);
}

/**
 * Whether a query failed on the named unique constraint: postgres.js and PGlite both report
 * SQLSTATE 23505, under `constraint_name` and `constraint` respectively, and Drizzle wraps either
 * as the `cause` of its own error.
 */
export function isUniqueViolation(error: unknown, constraint: string): boolean {
  for (let e = error as { code?: string; constraint_name?: string; constraint?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === "23505") return (e.constraint_name ?? e.constraint) === constraint;
  }
  return false;
}

/** Opens the configured database: a postgres.js pool, or PGlite in DATA_DIR (or in memory). */
export async function openDatabase(config: Config["database"]): Promise<DatabaseHandle> {
  if (config.kind === "postgres") return openPostgres(config.url, config);
  return openEmbedded(config.dataDir);
}

type PostgresOptions = Extract<Config["database"], { kind: "postgres" }>;

/**
 * A postgres.js client for `url` with the TLS options postgresTls gives for it (throws ConfigError
 * for a TLS setting that cannot mean what it says). Every PostgreSQL connection of the service is
 * opened here: the pool, the migration lock, the CLIs, the Workers build.
 */
export async function createPostgresClient(
  url: string,
  tls: TlsSettings & { urlVariable?: string },
  options: Omit<postgres.Options<Record<string, postgres.PostgresType>>, "ssl" | "socket"> = {},
): Promise<{ client: Sql; tls: PostgresTls }> {
  const resolved = postgresTls(url, tls, tls.urlVariable);
  const { default: postgres } = await import("postgres");
  const socket = resolved.plaintextFirst ? (await import("./allow-socket.js")).allowSocket : undefined;
  const client = postgres(resolved.url, { ...options, ssl: resolved.ssl, ...(socket ? { socket: socket as never } : {}) });
  return { client, tls: resolved };
}

export async function openPostgres(
  url: string,
  options: Partial<Omit<PostgresOptions, "kind" | "url">> & { urlVariable?: string } = {},
): Promise<DatabaseHandle> {
  const { drizzle } = await import("drizzle-orm/postgres-js");
  const tls: TlsSettings & { urlVariable?: string } = { mode: options.ssl ?? "prefer", ca: options.ca, urlVariable: options.urlVariable };
  const { client, tls: resolved } = await createPostgresClient(url, tls, {
    max: options.max ?? 10,
    // postgres.js has no idle-count knob: with DB_MAX_IDLE_CONNECTIONS=0 idle connections close
    // at once, otherwise after 60 s idle, so a quiet replica shrinks back toward nothing.
    idle_timeout: options.idle === 0 ? 1 : 60,
    max_lifetime: Math.max(1, Math.round((options.lifetimeMs ?? 300_000) / 1000)),
    connect_timeout: 5,
    // postgres.js waits up to 20 s between reconnects once the database is gone, and queued
    // queries wait with it; capped at 2 s so an outage answers 503 within seconds, not 20.
    backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, 2),
    onnotice: () => {},
    connection: {
      application_name: "payment-service",
      // A statement whose client has gone (a replica killed, a connection cut) is cancelled and
      // rolled back within a second, rather than left to finish, and commit, for nobody.
      client_connection_check_interval: 1000,
    },
  });
  const db = drizzle(preparedStatements(client), { schema }) as unknown as Database;
  return {
    db,
    kind: "postgres",
    url,
    tls,
    tlsResolved: resolved,
    exec: async (text) => {
      await client.unsafe(text);
    },
    close: () => client.end({ timeout: 5 }),
  };
}

/**
 * postgres.js prepares its tagged-template queries (a named statement per connection, parsed and
 * planned once) but not `unsafe()` ones, which is how Drizzle sends every query: each would be
 * parsed and planned again on every execution. This view of the client prepares them too,
 * inside transactions and savepoints as well. Drizzle's SQL text is stable per query shape, so
 * the statements per connection stay few, and a connection's are dropped with it (max_lifetime).
 */
function preparedStatements<T extends Sql>(client: T): T {
  return new Proxy(client, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      switch (property) {
        case "unsafe":
          return (query: string, params?: unknown[], options?: object) => target.unsafe(query, params as never, { ...options, prepare: true });
        case "begin":
        case "savepoint":
          return (...args: unknown[]) => {
            const body = args.pop() as (tx: Sql) => unknown;
            return (value as (...a: unknown[]) => unknown).apply(target, [...args, (tx: Sql) => body(preparedStatements(tx))]);
          };
        default:
          return value;
      }
    },
  });
}

/** PGlite in `dataDir`, or in memory when dataDir is "memory://". */
export async function openEmbedded(dataDir: string): Promise<DatabaseHandle> {
  const { PGlite } = await import("@electric-sql/pglite");
  const { drizzle } = await import("drizzle-orm/pglite");
  let location: string | undefined;
  if (dataDir !== "memory://") {
    location = path.resolve(dataDir, "pglite");
    mkdirSync(location, { recursive: true });
  }
  const client = location ? new PGlite(location) : new PGlite();
  await client.waitReady;
  const db = drizzle(client, { schema }) as unknown as Database;
  return {
    db,
    kind: "embedded",
    exec: async (text) => {
      await client.exec(text);
    },
    close: () => client.close(),
  };
}
