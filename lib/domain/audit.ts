import type { Principal } from "./deps.js";
import { sql } from "drizzle-orm";
import { queryRows, type Database } from "../adapters/db/client.js";

export interface AuditEntry {
  actor: string;
  action: string;
  entityType: "payment" | "refund" | "event";
  entityId: string;
  requestId?: string;
  data?: Record<string, unknown>;
}

type Tx = Pick<Database, "execute">;

/**
 * Appends one audit row inside the caller's transaction. It is inserted unsealed; sealAuditLog
 * links it into the hash chain shortly after it commits.
 */
export async function appendAudit(tx: Tx, entry: AuditEntry): Promise<void> {
  await tx.execute(sql`insert into audit_log (actor, action, entity_type, entity_id, request_id, data)
    values (${entry.actor}, ${entry.action}, ${entry.entityType}, ${entry.entityId}, ${entry.requestId ?? null},
      ${JSON.stringify(entry.data ?? {})}::jsonb)`);
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
