import { sql } from "drizzle-orm";
import type { Logger } from "../../core/logger.js";
import { queryRows, type DatabaseHandle } from "./client.js";
import { connectionName, describeDatabaseError } from "./errors.js";

/**
 * Connects once at start-up and logs as whom and how (TLS in use, what of the certificate was
 * checked), or why it could not: authentication, TLS refused or required, an untrusted
 * certificate or one for another host, the host, the database, a privilege. The service starts
 * either way (/ready reports the same cause until it is fixed); no secret is logged.
 */
export async function logDatabaseAtStart(handle: DatabaseHandle, logger: Logger, timeoutMs: number): Promise<void> {
  const database = connectionName(handle.url);
  const tls = handle.tlsResolved;
  const settings = tls ? { sslmode: tls.mode, sslmode_from: tls.modeFrom, certificate_checked: tls.verify } : {};
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    const [row] = await Promise.race([
      queryRows<{ role: string; tls: boolean }>(
        handle.db,
        sql`select current_user as role, coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false) as tls`,
      ),
      timeout,
    ]);
    logger.info({ database, role: row?.role, tls: Boolean(row?.tls), ...settings }, "database connected");
  } catch (error) {
    const problem = describeDatabaseError(error);
    logger.error(
      { database, cause: problem.cause, ...(problem.code ? { code: problem.code } : {}), ...settings },
      `database not reachable at start-up: ${problem.message}`,
    );
  } finally {
    clearTimeout(timer);
  }
}
