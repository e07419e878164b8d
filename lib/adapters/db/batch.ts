import { sql, type SQL } from "drizzle-orm";
import { executeSql, type Database } from "./client.js";

type Tx = Pick<Database, "execute">;

/**
 * Collects writes (inserts and updates without a WITH clause of their own) for `executeAll`,
 * through the same `execute` the write helpers call on a transaction.
 */
export class StatementBatch implements Tx {
  readonly statements: SQL[] = [];

  execute = (async (query: SQL) => {
    this.statements.push(query);
    return [];
  }) as unknown as Tx["execute"];
}

/**
 * Runs writes as one statement, `with s0 as (…), s1 as (…) select 1`: Postgres runs each exactly
 * once, in the caller's transaction, and checks foreign keys at the statement's end, so one may
 * reference a row another inserts. One round trip and one socket write, where separate statements
 * each cost a write (postgres.js sends a statement of 1 KB or more at once). The statements see
 * the database as it was before the statement, not each other's changes. Into a StatementBatch
 * they are added instead, to be run with the batch's others.
 */
export async function executeAll(tx: Tx, statements: readonly SQL[]): Promise<void> {
  if (tx instanceof StatementBatch) {
    tx.statements.push(...statements);
  } else if (statements.length === 1) {
    await executeSql(tx, statements[0]!);
  } else if (statements.length > 1) {
    const parts = statements.map((statement, i) => sql`${sql.raw(`s${i}`)} as (${statement})`);
    await executeSql(tx, sql`with ${sql.join(parts, sql`, `)} select 1`);
  }
}
