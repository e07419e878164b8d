import { and, asc, eq, inArray, isNull, lte, or, sql } from "drizzle-orm";
import { eventDeliveries } from "../../../drizzle/schema.js";
import type { Database } from "../../adapters/db/client.js";

/** A delivery claimed by one worker. */
export interface ClaimedDelivery {
  id: number;
  eventId: string;
  receiver: string;
  /** Attempts so far, this one included (claiming counts the attempt). */
  attempts: number;
  /**
   * The claim's lock, also its fencing token: the outcome is recorded only while the row still
   * carries it, so a worker whose lock ran out cannot overwrite the claim of the worker after it.
   */
  lockedUntil: Date;
}

/** What an attempt leaves on the row. */
export type DeliveryUpdate =
  | { status: "delivered"; statusCode: number }
  | { status: "pending"; statusCode: number | null; error: string; nextAttemptAt: Date }
  | { status: "failed"; statusCode: number | null; error: string };

/** Longest last_error kept: a diagnosis, never a whole answer. */
const maxErrorLength = 500;

/**
 * Claims up to `limit` due deliveries in one statement: pending, due, and not locked by a live
 * claim. `FOR UPDATE SKIP LOCKED` lets any number of workers and replicas claim at once without
 * waiting on each other or taking the same row; the claim counts an attempt and locks the row
 * until `now + lockMs`, after which another worker may take it again (a worker that died mid-send).
 */
export async function claimDueDeliveries(db: Database, options: { limit: number; lockMs: number; now: Date }): Promise<ClaimedDelivery[]> {
  if (options.limit <= 0) return [];
  const { now } = options;
  const lockedUntil = new Date(now.getTime() + options.lockMs);
  const due = db
    .select({ id: eventDeliveries.id })
    .from(eventDeliveries)
    .where(
      and(
        eq(eventDeliveries.status, "pending"),
        lte(eventDeliveries.nextAttemptAt, now),
        or(isNull(eventDeliveries.lockedUntil), lte(eventDeliveries.lockedUntil, now)),
      ),
    )
    .orderBy(asc(eventDeliveries.nextAttemptAt), asc(eventDeliveries.id))
    .limit(options.limit)
    .for("update", { skipLocked: true });
  const rows = await db
    .update(eventDeliveries)
    .set({ lockedUntil, attempts: sql`${eventDeliveries.attempts} + 1`, updatedAt: now })
    .where(inArray(eventDeliveries.id, due))
    .returning({
      id: eventDeliveries.id,
      eventId: eventDeliveries.eventId,
      receiver: eventDeliveries.receiver,
      attempts: eventDeliveries.attempts,
      nextAttemptAt: eventDeliveries.nextAttemptAt,
    });
  return rows
    .sort((a, b) => a.nextAttemptAt.getTime() - b.nextAttemptAt.getTime() || a.id - b.id)
    .map(({ nextAttemptAt: _, ...row }) => ({ ...row, lockedUntil }));
}

/** The row an attempt may change: still pending and still this claim's. */
function stillClaimed(claim: ClaimedDelivery) {
  return and(eq(eventDeliveries.id, claim.id), eq(eventDeliveries.status, "pending"), eq(eventDeliveries.lockedUntil, claim.lockedUntil));
}

/** Records an attempt's outcome. Returns false when the claim was lost (lock ran out, or redelivered meanwhile). */
export async function recordDelivery(db: Database, claim: ClaimedDelivery, update: DeliveryUpdate, now: Date): Promise<boolean> {
  const common = { lockedUntil: null, lastStatusCode: update.statusCode, updatedAt: now };
  const set =
    update.status === "delivered"
      ? { ...common, status: "delivered" as const, lastError: null, deliveredAt: now }
      : update.status === "pending"
        ? { ...common, status: "pending" as const, lastError: truncate(update.error), nextAttemptAt: update.nextAttemptAt }
        : { ...common, status: "failed" as const, lastError: truncate(update.error) };
  const rows = await db.update(eventDeliveries).set(set).where(stillClaimed(claim)).returning({ id: eventDeliveries.id });
  return rows.length > 0;
}

/** Hands a claimed delivery back untouched — unlocked, its attempt uncounted — for a claim not started (shutdown). */
export async function releaseDelivery(db: Database, claim: ClaimedDelivery, now: Date): Promise<boolean> {
  const rows = await db
    .update(eventDeliveries)
    .set({ lockedUntil: null, attempts: sql`greatest(${eventDeliveries.attempts} - 1, 0)`, updatedAt: now })
    .where(stillClaimed(claim))
    .returning({ id: eventDeliveries.id });
  return rows.length > 0;
}

function truncate(text: string): string {
  return text.length > maxErrorLength ? `${text.slice(0, maxErrorLength - 1)}…` : text;
}
