import { mkdirSync } from "node:fs";
import path from "node:path";
import type { SQL } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import * as schema from "../../drizzle/schema.js";
import type { Config } from "../config.js";

export type Schema = typeof schema;
/** The Drizzle database, whichever driver is behind it (postgres.js or PGlite). */
export type Database = PgDatabase<PgQueryResultHKT, Schema>;

export interface DatabaseHandle {
  db: Database;
  kind: "postgres" | "embedded";
  /** The connection URL (Postgres only), for work that needs a connection of its own. */
  url?: string;
  /** Runs a multi-statement SQL text without parameters (migrations, seed). */
  exec(text: string): Promise<void>;
  close(): Promise<void>;
}

/** Rows of a raw query, whichever driver answered it. */
export async function queryRows<T>(db: Database, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown;
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}

/** Opens the configured database: a postgres.js pool, or PGlite in DATA_DIR (or in memory). */
export async function openDatabase(config: Config["database"]): Promise<DatabaseHandle> {
  if (config.kind === "postgres") return openPostgres(config.url, config);
  return openEmbedded(config.dataDir);
}

type PostgresOptions = Extract<Config["database"], { kind: "postgres" }>;

export async function openPostgres(
  url: string,
  options: Partial<Omit<PostgresOptions, "kind" | "url">> = {},
): Promise<DatabaseHandle> {
  const { default: postgres } = await import("postgres");
  const { drizzle } = await import("drizzle-orm/postgres-js");
  const client = postgres(url, {
    max: options.max ?? 10,
    // postgres.js has no idle-count knob: with DB_MAX_IDLE_CONNECTIONS=0 idle connections close
    // at once, otherwise after 60 s idle, so a quiet replica shrinks back toward nothing.
    idle_timeout: options.idle === 0 ? 1 : 60,
    max_lifetime: Math.max(1, Math.round((options.lifetimeMs ?? 300_000) / 1000)),
    connect_timeout: 5,
    // postgres.js waits up to 20 s between reconnects once the database is gone, and queued
    // queries wait with it; capped at 2 s so an outage answers 503 within seconds, not 20.
    backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, 2),
    ssl: sslOption(options.ssl ?? "prefer"),
    onnotice: () => {},
    connection: { application_name: "payment-service" },
  });
  const db = drizzle(client, { schema }) as unknown as Database;
  return {
    db,
    kind: "postgres",
    url,
    exec: async (text) => {
      await client.unsafe(text);
    },
    close: () => client.end({ timeout: 5 }),
  };
}

function sslOption(mode: PostgresOptions["ssl"]) {
  switch (mode) {
    case "disable":
      return false;
    case "verify-ca":
      // Verify the chain but not the host name, as libpq's verify-ca does.
      return { rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case "verify-full":
      return "verify-full" as const;
    default:
      return mode;
  }
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
