import { describeAuditChain, verifyAuditChain } from "../audit-verify.js";
import { ConfigError, loadConfig } from "../config.js";
import { openDatabase } from "../db/client.js";

/**
 * `audit:verify`: walks the audit log of DATABASE_URL / DB_* (or the embedded database in
 * DATA_DIR) and checks its hash chain. Exit 0 and `audit chain intact: N rows`, or exit 1 naming
 * the first broken link. Only reads, so the read-only analytics role may run it.
 */
async function main() {
  const config = loadConfig();
  const database = await openDatabase(config.database);
  try {
    const result = await verifyAuditChain(database.db);
    const line = `${describeAuditChain(result)}\n`;
    if (result.intact) process.stdout.write(line);
    else process.stderr.write(line);
    return result.intact ? 0 : 1;
  } finally {
    await database.close();
  }
}

try {
  process.exitCode = await main();
} catch (error) {
  // Exit 2, not 1: the chain could not be checked, which is not the same as finding it broken.
  const cause = (error as { cause?: { message?: string } }).cause?.message;
  const reason = error instanceof ConfigError ? error.message : `audit:verify could not run: ${cause ?? (error as Error).message}`;
  process.stderr.write(`${reason}\n`);
  process.exitCode = 2;
}
