import { sql } from "drizzle-orm";
import type { AppDeps } from "../deps.js";
import { queryRows } from "../../adapters/db/client.js";
import { ApiError } from "../../core/errors.js";
import { emailHasherFor } from "./email-hash.js";
import { erasePersonalData, finalPaymentStatuses } from "./erase.js";
import { backfillEmailHashes } from "./job.js";

/**
 * Erases one customer's personal data on their request, from every payment found by the keyed hash
 * of their email. All or nothing: when one of them is still open (created, pending, conflicted, or
 * a refund pending) nothing is erased and the answer is 409 naming the open payments, to be asked
 * again once they are final — the data is still needed to finish them. Returns the ids erased.
 */
export async function eraseCustomerByEmail(deps: AppDeps, email: string, audit: { actor: string; requestId?: string }): Promise<string[]> {
  // Rows older than the hash column get theirs first, so the request finds every payment.
  while ((await backfillEmailHashes(deps)) > 0);
  const hashes = emailHasherFor(deps.config).candidates(email);
  const final = new Set<string>(finalPaymentStatuses);
  return deps.database.db.transaction(async (tx) => {
    const rows = await queryRows<{ id: string; status: string; refund_pending: boolean }>(
      tx,
      sql`select p.id, p.status, exists (select 1 from refunds r where r.payment_id = p.id and r.status = 'pending') as refund_pending
          from payments p
          where p.customer_email_hash in (${sql.join(
            hashes.map((h) => sql`${h}`),
            sql`, `,
          )}) and p.erased_at is null
          order by p.id
          for update of p`,
    );
    const open = rows.filter((row) => !final.has(row.status) || row.refund_pending).map((row) => row.id);
    if (open.length > 0) {
      throw new ApiError("invalid_state", `The customer has payments not yet final: ${open.join(", ")}. Ask again once they are.`, {
        fields: { open_payment_ids: open },
      });
    }
    return erasePersonalData(
      tx,
      rows.map((row) => row.id),
      { actor: audit.actor, reason: "request", requestId: audit.requestId, now: deps.now() },
    );
  });
}
