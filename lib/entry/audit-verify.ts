import { readFileSync } from "node:fs";
import { describeAuditChain, verifyAuditChain } from "../domain/audit-verify.js";
import { ConfigError, databaseEnvironment, loadDatabaseConfig, resolveFileVariables } from "../core/config.js";
import { openDatabase, type DatabaseHandle } from "../adapters/db/client.js";
import { connectionName, describeDatabaseError } from "../adapters/db/errors.js";

/**
 * `audit:verify` (in the image: `audit-verify`): walks the audit log of DATABASE_URL / DB_* (or the
 * embedded database in DATA_DIR) and checks its hash chain. Exit 0 and `audit chain intact: N
 * rows`, or exit 1 naming the first broken link; exit 2 when it cannot check (the cause named).
 * Only reads, so the read-only payment_analytics role may run it.
 */
async function main() {
  const { database: settings } = loadDatabaseConfig(resolveFileVariables(databaseEnvironment(process.env), (path) => readFileSync(path, "utf8")));
  let database: DatabaseHandle | undefined;
  try {
    database = await openDatabase(settings);
    const result = await verifyAuditChain(database.db);
    const line = `${describeAuditChain(result)}\n`;
    if (result.intact) process.stdout.write(line);
    else process.stderr.write(line);
    return result.intact ? 0 : 1;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    // Exit 2, not 1: the chain could not be checked, which is not the same as finding it broken.
    const target = connectionName(settings.kind === "postgres" ? settings.url : undefined);
    process.stderr.write(`audit:verify could not run: ${target}: ${describeDatabaseError(error).message}\n`);
    return 2;
  } finally {
    await database?.close();
  }
}

try {
  process.exitCode = await main();
} catch (error) {
  process.stderr.write(`${error instanceof ConfigError ? error.message : `audit:verify could not run: ${(error as Error).message}`}\n`);
  process.exitCode = 2;
}
