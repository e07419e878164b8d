import { sql, type SQL } from "drizzle-orm";
import { executeSql, type Database } from "./client.js";

/**
 * Runs writes as one statement, `with s0 as (…), s1 as (…) select 1`: Postgres runs each exactly
 * once, in the caller's transaction, and checks foreign keys at the statement's end, so one may
 * reference a row another inserts. One round trip and one socket write, where separate statements
 * each cost a write (postgres.js sends a statement of 1 KB or more at once). The statements see
 * the database as it was before the statement, not each other's changes, and must be inserts,
 * updates or deletes without a WITH clause of their own: the statement builders beside each table
 * (e.g. auditInsert, eventInserts, jobInsert) return such statements for a caller to collect.
 */
export async function executeAll(tx: Pick<Database, "execute">, statements: readonly SQL[]): Promise<void> {
  if (statements.length === 1) {
    await executeSql(tx, statements[0]!);
  } else if (statements.length > 1) {
    await executeSql(tx, combinedWrites(statements));
  }
}

/** The one statement executeAll sends for several writes. */
export function combinedWrites(statements: readonly SQL[]): SQL {
  const parts = statements.map((statement, i) => sql`${sql.raw(`s${i}`)} as (${statement})`);
  return sql`with ${sql.join(parts, sql`, `)} select 1`;
}
