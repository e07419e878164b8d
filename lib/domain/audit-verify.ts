import { sql } from "drizzle-orm";
import { queryRows, type Database } from "../adapters/db/client.js";

/** Why a link of the audit chain does not hold. */
export type AuditBreak = "hash mismatch" | "prev_hash mismatch" | "gap";

export type AuditChainResult =
  | { intact: true; rows: number; unsealed: number }
  | { intact: false; rows: number; unsealed: number; seq: number; reason: AuditBreak };

interface ChainRow {
  seq_text: string;
  prev_hash: string | null;
  hash: string | null;
  recomputed: string | null;
}

/**
 * Walks the sealed audit log by seq and checks every link: seq continues the one before without a
 * gap (starting at 1), prev_hash is the previous row's hash ("" for the first), and hash is what
 * the database's own `audit_log_row_hash(...)` gives for the row as stored, so the formula lives in
 * one place. Stops at the first broken link. Read-only: rows not sealed yet are counted, not
 * judged. A chain cut off at its end cannot be told from a shorter one; compare `rows` with a
 * count recorded elsewhere for that.
 */
export async function verifyAuditChain(db: Database, options: { batchSize?: number } = {}): Promise<AuditChainResult> {
  const batchSize = options.batchSize ?? 1000;
  const [{ unsealed }] = (await queryRows<{ unsealed: number }>(db, sql`select count(*)::int as unsealed from audit_log where seq is null`)) as [
    { unsealed: number },
  ];

  let expectedSeq = 1;
  let previousHash = "";
  let rows = 0;
  let lastSeq: number | undefined;
  for (;;) {
    // Ordered by the bigint column, not by the text the row is read as: "10" sorts before "2".
    const batch = await queryRows<ChainRow>(
      db,
      sql`select a.seq::text as seq_text, a.prev_hash, a.hash,
                 audit_log_row_hash(a.prev_hash, a.seq, a.at, a.actor, a.action, a.entity_type, a.entity_id, a.request_id, a.data) as recomputed
          from audit_log a where a.seq is not null ${lastSeq === undefined ? sql`` : sql`and a.seq > ${lastSeq}`}
          order by a.seq limit ${batchSize}`,
    );
    for (const row of batch) {
      const seq = Number(row.seq_text);
      const broken = (reason: AuditBreak, at: number): AuditChainResult => ({ intact: false, rows, unsealed, seq: at, reason });
      // A missing seq is named by the first number absent from the chain.
      if (seq !== expectedSeq) return broken("gap", expectedSeq);
      if (row.prev_hash !== previousHash) return broken("prev_hash mismatch", seq);
      if (row.hash === null || row.hash !== row.recomputed) return broken("hash mismatch", seq);
      previousHash = row.hash;
      expectedSeq = seq + 1;
      lastSeq = seq;
      rows++;
    }
    if (batch.length < batchSize) return { intact: true, rows, unsealed };
  }
}

/** The one-line verdict the CLI prints. */
export function describeAuditChain(result: AuditChainResult): string {
  const pending = result.unsealed > 0 ? ` (${result.unsealed} not sealed yet)` : "";
  return result.intact ? `audit chain intact: ${result.rows} rows${pending}` : `audit chain broken at seq ${result.seq}: ${result.reason}`;
}
