import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { openEmbedded, openPostgres, type DatabaseHandle } from "../../lib/adapters/db/client.js";
import { migrateDatabase } from "../../lib/adapters/db/migrate.js";

/** Tests run on the real Postgres when TEST_DATABASE_URL names one (an admin URL), else on PGlite. */
export const realPostgresUrl = process.env.TEST_DATABASE_URL;

export function templateDatabaseName() {
  return `payments_test_template`;
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export interface TestDatabase {
  handle: DatabaseHandle;
  /** A postgres:// URL of this database (real Postgres only). */
  url?: string;
  drop(): Promise<void>;
}

/** A fresh, migrated database of its own: a copy of the template on Postgres, or an in-memory PGlite. */
export async function createTestDatabase(options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const migrated = options.migrated ?? true;
  if (!realPostgresUrl) {
    const handle = await openEmbedded("memory://");
    if (migrated) await migrateDatabase(handle);
    return { handle, drop: () => handle.close() };
  }
  const name = `payments_test_${randomBytes(6).toString("hex")}`;
  const admin = postgres(realPostgresUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(migrated ? `create database "${name}" template "${templateDatabaseName()}"` : `create database "${name}"`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(realPostgresUrl, name);
  const handle = await openPostgres(url, { max: 10, ssl: "disable" });
  return {
    handle,
    url,
    drop: async () => {
      await handle.close();
      const cleanup = postgres(realPostgresUrl, { max: 1, onnotice: () => {} });
      try {
        await cleanup.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await cleanup.end();
      }
    },
  };
}
