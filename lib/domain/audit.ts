import type { Principal } from "./deps.js";
import { sql, type SQL } from "drizzle-orm";
import { executeSql, queryRows, type Database } from "../adapters/db/client.js";

export interface AuditEntry {
  actor: string;
  action: string;
  entityType: "payment" | "refund" | "event";
  entityId: string;
  requestId?: string;
  data?: Record<string, unknown>;
}

type Tx = Pick<Database, "execute">;

const auditColumns = sql.raw("actor, action, entity_type, entity_id, request_id, data");

/** The insert of one audit row, for executeAll with a caller's other writes (appendAudit runs it alone). */
export function auditInsert(entry: AuditEntry): SQL {
  return sql`insert into audit_log (${auditColumns})
    values (${entry.actor}, ${entry.action}, ${entry.entityType}, ${entry.entityId}, ${entry.requestId ?? null},
      ${JSON.stringify(entry.data ?? {})}::jsonb)`;
}

/**
 * The insert of an audit row for each row of `source` (a CTE of the same statement, with its `id`
 * as the entity id): for a statement that inserts the entity and its audit row together.
 */
export function auditInsertFrom(source: string, entry: Omit<AuditEntry, "entityId">): SQL {
  return sql`insert into audit_log (${auditColumns})
    select ${entry.actor}, ${entry.action}, ${entry.entityType}, id, ${entry.requestId ?? null}, ${JSON.stringify(entry.data ?? {})}::jsonb
    from ${sql.raw(source)}`;
}

/**
 * Appends one audit row inside the caller's transaction. It is inserted unsealed; sealAuditLog
 * links it into the hash chain shortly after it commits.
 */
export async function appendAudit(tx: Tx, entry: AuditEntry): Promise<void> {
  await executeSql(tx, auditInsert(entry));
}

/** How a principal is named in the audit log: `service:<sub>`, `admin:<sub>`, or `checkout:<payment>`. */
export function actorOf(principal: Principal, paymentId?: string): string {
  return principal.kind === "token" ? `${principal.role}:${principal.sub}` : `checkout:${paymentId ?? "unknown"}`;
}

/**
 * Links committed, unsealed audit rows into the hash chain (in the database, one batch, one
 * sealer at a time across replicas). Returns how many rows it sealed.
 */
export async function sealAuditLog(db: Database, maxRows = 1000): Promise<number> {
  const [row] = await queryRows<{ sealed: number }>(db, sql`select audit_log_seal(${maxRows}) as sealed`);
  return Number(row?.sealed ?? 0);
}
