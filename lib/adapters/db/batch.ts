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

/** The SQLSTATE row_unchanged() raises (drizzle/migrations/0008_row_unchanged_guard.sql). */
const rowChanged = "PY409";

/**
 * Runs `guard` and `statements` as one statement, or none of it: the guard (an update or a
 * `for update` select of one row, each conditioned on the row version its caller read) runs
 * first, taking the row's lock, and when it matches no row (the row changed since it was read)
 * the statement aborts with every write in it. Answers whether it was applied. One round trip and
 * no transaction around it, where a locked read and the writes take four (begin, select, write,
 * commit); the caller decides again under the lock when it answers false.
 */
export async function executeIfUnchanged(db: Pick<Database, "execute">, guard: SQL, statements: readonly SQL[]): Promise<boolean> {
  try {
    await executeSql(db, guardedWrites(guard, statements));
    return true;
  } catch (error) {
    for (let e = error as { code?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) if (e.code === rowChanged) return false;
    throw error;
  }
}

/**
 * The one statement executeIfUnchanged sends. The main query reads the guard, so the guard runs
 * before the other parts, which Postgres runs to completion afterwards: the row is locked first,
 * as under a locked read, and an unmatched guard aborts the statement before anything else runs.
 */
export function guardedWrites(guard: SQL, statements: readonly SQL[]): SQL {
  const parts = statements.map((statement, i) => sql`, ${sql.raw(`s${i}`)} as (${statement})`);
  return sql`with guard as (${guard})${sql.join(parts)} select row_unchanged((select count(*) from guard))`;
}
