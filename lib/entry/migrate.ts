import { readFileSync } from "node:fs";
import { ConfigError, loadConfig, resolveFileVariables } from "../config.js";
import { openDatabase } from "../db/client.js";
import { appliedMigrationCount, migrateDatabase } from "../db/migrate.js";

/** `migrate up`: applies pending migrations and the channel seed to DATABASE_URL / DB_*. */
async function main(command: string | undefined) {
  if (command !== "up") {
    process.stderr.write("usage: migrate up\n");
    return 64;
  }
  const config = loadConfig(resolveFileVariables(process.env, (path) => readFileSync(path, "utf8")));
  const database = await openDatabase(config.database);
  try {
    await migrateDatabase(database);
    process.stdout.write(`migrations applied: ${await appliedMigrationCount(database)}\n`);
    return 0;
  } finally {
    await database.close();
  }
}

try {
  process.exitCode = await main(process.argv[2]);
} catch (error) {
  process.stderr.write(`${error instanceof ConfigError ? error.message : (error as Error).stack}\n`);
  process.exitCode = 1;
}
