import { readFileSync } from "node:fs";
import { ConfigError, databaseEnvironment, loadDatabaseConfig, resolveFileVariables } from "../core/config.js";
import { openDatabase, type DatabaseHandle } from "../adapters/db/client.js";
import { connectionName, describeDatabaseError } from "../adapters/db/errors.js";
import { appliedMigrationCount, migrateDatabase, migrationRole } from "../adapters/db/migrate.js";

/**
 * `migrate up`: applies pending migrations, the channel seed and drizzle/privileges.sql, as
 * MIGRATION_DATABASE_URL's role (the owner of drizzle/roles.sql), else DATABASE_URL / DB_*'s.
 * Reads only the database settings, so the migration Job needs no other secret. A failure names
 * its cause (authentication, TLS, certificate, host, database, privilege) and exits 1.
 */
async function main(command: string | undefined) {
  if (command !== "up") {
    process.stderr.write("usage: migrate up\n");
    return 64;
  }
  const { migrationDatabase } = loadDatabaseConfig(resolveFileVariables(databaseEnvironment(process.env), (path) => readFileSync(path, "utf8")));
  let database: DatabaseHandle | undefined;
  const target = connectionName(migrationDatabase.kind === "postgres" ? migrationDatabase.url : undefined);
  try {
    database = await openDatabase(migrationDatabase);
    await migrateDatabase(database);
    const applied = await appliedMigrationCount(database);
    const tls = database.tlsResolved;
    const over = tls ? `, sslmode ${tls.mode}, certificate checked: ${tls.verify}` : "";
    if (database.kind === "postgres") {
      const { role, superuser, ownerExists } = await migrationRole(database);
      process.stdout.write(`migrations applied: ${applied} (as ${role} on ${target}${over})\n`);
      if (superuser && ownerExists) {
        process.stderr.write(
          `migrate: ran as the superuser ${role}: objects it created belong to ${role}, not payment_owner; run migrations with MIGRATION_DATABASE_URL naming payment_owner\n`,
        );
      }
    } else {
      process.stdout.write(`migrations applied: ${applied}\n`);
    }
    return 0;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const problem = describeDatabaseError(error);
    const hint =
      problem.cause === "permission denied"
        ? "; migrations run as the owner role (MIGRATION_DATABASE_URL naming payment_owner, drizzle/roles.sql)"
        : "";
    process.stderr.write(`migrate: ${target}: ${problem.message}${hint}\n`);
    return 1;
  } finally {
    await database?.close();
  }
}

try {
  process.exitCode = await main(process.argv[2]);
} catch (error) {
  process.stderr.write(`${error instanceof ConfigError ? error.message : (error as Error).stack}\n`);
  process.exitCode = 1;
}
