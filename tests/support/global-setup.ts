import postgres from "postgres";
import { openPostgres } from "../../lib/adapters/db/client.js";
import { migrateDatabase } from "../../lib/adapters/db/migrate.js";
import { templateDatabaseName, withDatabase } from "./databases.js";

/**
 * Against a real Postgres (TEST_DATABASE_URL), migrate one template database once per run; each
 * test file then gets its own copy of it (CREATE DATABASE … TEMPLATE), so files cannot leak into
 * each other and none pays for migrations.
 */
export default async function setup() {
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) return;
  const template = templateDatabaseName();
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists "${template}" with (force)`);
    await admin.unsafe(`create database "${template}"`);
  } finally {
    await admin.end();
  }
  const handle = await openPostgres(withDatabase(adminUrl, template), { max: 1 });
  try {
    await migrateDatabase(handle);
  } finally {
    await handle.close();
  }
}
