import { and, asc, eq, inArray, isNull, lte, or, sql, type SQL } from "drizzle-orm";
import { jobs } from "../../drizzle/schema.js";
import { executeSql, queryRows, type Database } from "../adapters/db/client.js";
import type { AppDeps } from "./deps.js";

/**
 * What a runner reports: finished; try again at a time of its choosing (the attempt counts, and
 * the job goes back in line at that time); wait; or give up for good.
 *
 * `waitUntil`: the job could not run now for a reason that is not its own (the merchant's query
 * slot is taken, Fiuu asked for a pause) and is handed back as if never claimed — its run_at (its
 * place in line, oldest due first) and its attempt count unchanged — to be claimed again once
 * `waitUntil` has passed.
 */
export type JobResult = { done: true } | { retryAt: Date; error: string } | { waitUntil: Date } | { failed: string };

/**
 * Does one attempt of one job. Runners must be idempotent: a job runs at least once, and again
 * when a worker dies after doing the work but before recording it.
 */
export type JobRunner = (deps: AppDeps, job: Job) => Promise<JobResult>;

/** A job kind: ipn_echo, requery, expire, refund_poll, deliver, … — whatever a runner is registered for. */
export type JobKind = string;

/** A claimed job, as a runner sees it. */
export interface Job {
  id: number;
  kind: JobKind;
  payload: Record<string, unknown>;
  /** Attempts so far, this one included (claiming counts as an attempt). */
  attempts: number;
  maxAttempts: number;
  runAt: Date;
  /**
   * The lock this claim holds. It doubles as a fencing token: completing, retrying or releasing
   * with it changes the row only if no other worker has claimed the job since (after the lock ran out).
   */
  lockedUntil: Date;
}

/** What a finished attempt may guard itself with and stamp the row with. */
export interface JobUpdateOptions {
  /** The claim's lockedUntil: when given, the row changes only if it is still this claim's. */
  lockedUntil?: Date;
  now?: Date;
}

/** Longest last_error kept: enough to diagnose, never a whole response body. */
const maxErrorLength = 1000;

/** A job to add: its kind and payload, and when, how often and under which key it may run. */
export interface NewJob {
  kind: JobKind;
  payload: Record<string, unknown>;
  runAt?: Date;
  dedupeKey?: string;
  maxAttempts?: number;
  /** With a dedupeKey: a pending job holding the key is brought forward to this runAt if later. */
  sooner?: boolean;
}

/**
 * The insert that adds a job, for executeAll with a caller's other writes (enqueueJob runs it
 * alone). With a dedupeKey, a pending job holding the same key means this one is dropped (the
 * partial unique index `jobs_pending_dedupe_key` decides, so two transactions racing still end
 * with one job); once that job is done or failed the key is free again.
 */
export function jobInsert(job: NewJob): SQL {
  const insert = sql`insert into jobs (kind, payload, dedupe_key, run_at, max_attempts)
    values (${job.kind}, ${JSON.stringify(job.payload)}::jsonb, ${job.dedupeKey ?? null},
      ${job.runAt ? sql`${job.runAt.toISOString()}::timestamptz` : sql`default`}, ${job.maxAttempts === undefined ? sql`default` : job.maxAttempts})`;
  // The conflict target must repeat the partial index's predicate for Postgres to infer that index.
  if (job.dedupeKey === undefined) return insert;
  if (job.sooner) return sql`${insert} on conflict (dedupe_key) where status = 'pending' do update set run_at = least(jobs.run_at, excluded.run_at)`;
  return sql`${insert} on conflict (dedupe_key) where status = 'pending' do nothing`;
}

/**
 * Adds a job inside the caller's transaction, so the job exists exactly when the change that asked
 * for it does (deduplicated by its dedupeKey as jobInsert says).
 */
export async function enqueueJob(tx: Pick<Database, "execute">, job: NewJob): Promise<void> {
  await executeSql(tx, jobInsert(job));
}

/**
 * Claims up to `limit` due, unlocked pending jobs of the given kinds in one statement: locks them
 * until now + lockMs and counts the attempt. SKIP LOCKED lets concurrent claimers (workers,
 * replicas) pass over each other's rows, and Postgres re-checks the lock condition on a row that
 * changed under a claimer, so no two claims get the same job. A claim whose worker died comes back
 * once its lock runs out.
 */
export async function claimDueJobs(
  db: Database,
  options: {
    kinds: readonly JobKind[];
    limit: number;
    lockMs: number;
    now: Date;
    /**
     * Kinds claimed up to their own cap instead of sharing `limit` (e.g. requeries, of which a
     * batch can run only one per query slot: claiming more would only hold them back).
     */
    perKind?: Readonly<Partial<Record<JobKind, number>>>;
  },
): Promise<Job[]> {
  if (options.kinds.length === 0 || options.limit <= 0) return [];
  const { now } = options;
  const lockedUntil = new Date(now.getTime() + options.lockMs);
  const due = (kinds: readonly JobKind[], limit: number) =>
    db
      .select({ id: jobs.id })
      .from(jobs)
      .where(
        and(
          eq(jobs.status, "pending"),
          inArray(jobs.kind, [...kinds]),
          lte(jobs.runAt, now),
          or(isNull(jobs.lockedUntil), lte(jobs.lockedUntil, now)),
        ),
      )
      .orderBy(asc(jobs.runAt), asc(jobs.id))
      .limit(limit)
      .for("update", { skipLocked: true });
  const capped = options.kinds.filter((kind) => options.perKind?.[kind] !== undefined);
  const shared = options.kinds.filter((kind) => options.perKind?.[kind] === undefined);
  // One statement whatever the caps: each capped kind and the shared rest are picked by their own
  // sub-select, each oldest due first (run_at, id).
  const picks = [
    ...(shared.length > 0 ? [inArray(jobs.id, due(shared, options.limit))] : []),
    ...capped
      .filter((kind) => options.perKind![kind]! > 0)
      .map((kind) => inArray(jobs.id, due([kind], Math.min(options.perKind![kind]!, options.limit)))),
  ];
  if (picks.length === 0) return [];
  const rows = await db
    .update(jobs)
    .set({ lockedUntil, attempts: sql`${jobs.attempts} + 1`, updatedAt: now })
    .where(picks.length === 1 ? picks[0] : or(...picks))
    .returning();
  return rows
    .map((row) => ({
      id: row.id,
      kind: row.kind,
      payload: row.payload,
      attempts: row.attempts,
      maxAttempts: row.maxAttempts,
      runAt: row.runAt,
      lockedUntil: row.lockedUntil ?? lockedUntil,
    }))
    .sort((a, b) => a.runAt.getTime() - b.runAt.getTime() || a.id - b.id);
}

/** The row a finished attempt may change: still pending and, when fenced, still this claim's. */
function claimed(id: number, lockedUntil: Date | undefined) {
  return and(eq(jobs.id, id), eq(jobs.status, "pending"), lockedUntil ? eq(jobs.lockedUntil, lockedUntil) : undefined);
}

/** Marks a claimed job done. Returns false when the row was no longer this claim's to finish. */
export async function completeJob(db: Database, id: number, options: JobUpdateOptions = {}): Promise<boolean> {
  const rows = await db
    .update(jobs)
    .set({ status: "done", lockedUntil: null, updatedAt: options.now ?? new Date() })
    .where(claimed(id, options.lockedUntil))
    .returning({ id: jobs.id });
  return rows.length > 0;
}

/**
 * Marks many claimed jobs done in one statement per claim (a batch's jobs share theirs). Returns
 * the ids it marked; a job missing from them was no longer this claim's to finish.
 */
export async function completeJobs(db: Database, finished: readonly Pick<Job, "id" | "lockedUntil">[], now: Date): Promise<Set<number>> {
  const byClaim = new Map<number, number[]>();
  for (const job of finished) {
    const claim = job.lockedUntil.getTime();
    if (!byClaim.has(claim)) byClaim.set(claim, []);
    byClaim.get(claim)!.push(job.id);
  }
  const marked = new Set<number>();
  for (const [lockedUntil, ids] of byClaim) {
    const rows = await queryRows<{ id: number | string }>(
      db,
      sql`update jobs set status = 'done', locked_until = null, updated_at = ${now.toISOString()}::timestamptz
        where id in (${sql.join(
          ids.map((id) => sql`${id}`),
          sql`, `,
        )}) and status = 'pending'
          and locked_until = ${new Date(lockedUntil).toISOString()}::timestamptz
        returning id`,
    );
    for (const row of rows) marked.add(Number(row.id));
  }
  return marked;
}

/**
 * Schedules another attempt at `runAt` and records the error, or marks the job `failed` when it
 * has used all its attempts. Returns the job's new status, or undefined when the row was no
 * longer this claim's.
 */
export async function retryJob(
  db: Database,
  id: number,
  retry: { error: string; runAt: Date } & JobUpdateOptions,
): Promise<"pending" | "failed" | undefined> {
  const [row] = await db
    .update(jobs)
    .set({
      status: sql`case when ${jobs.attempts} >= ${jobs.maxAttempts} then 'failed' else 'pending' end`,
      runAt: retry.runAt,
      lockedUntil: null,
      lastError: truncateError(retry.error),
      updatedAt: retry.now ?? new Date(),
    })
    .where(claimed(id, retry.lockedUntil))
    .returning({ status: jobs.status });
  return row?.status as "pending" | "failed" | undefined;
}

/** Marks a claimed job failed for good (the runner knows another attempt cannot help). */
export async function failJob(db: Database, id: number, failure: { error: string } & JobUpdateOptions): Promise<boolean> {
  const rows = await db
    .update(jobs)
    .set({ status: "failed", lockedUntil: null, lastError: truncateError(failure.error), updatedAt: failure.now ?? new Date() })
    .where(claimed(id, failure.lockedUntil))
    .returning({ id: jobs.id });
  return rows.length > 0;
}

/**
 * Gives a claimed job back untouched — unlocked and its attempt uncounted — so another worker or
 * replica takes it at once (used at shutdown for jobs claimed but not started).
 */
export async function releaseJob(db: Database, id: number, options: JobUpdateOptions = {}): Promise<boolean> {
  const rows = await db
    .update(jobs)
    .set({ lockedUntil: null, attempts: sql`greatest(${jobs.attempts} - 1, 0)`, updatedAt: options.now ?? new Date() })
    .where(claimed(id, options.lockedUntil))
    .returning({ id: jobs.id });
  return rows.length > 0;
}

/**
 * Puts a claimed job back to wait until `until` without moving its run_at and without counting the
 * attempt its claim counted (as releaseJob does): it keeps its place in line, oldest due first, and
 * is claimable again once `until` has passed. For a job that must wait for a shared resource (the
 * merchant's query slot): waiting is neither a failure nor a reason to go to the back of the queue.
 * Returns false when the row was no longer this claim's.
 */
export async function deferJob(db: Database, id: number, options: { until: Date } & JobUpdateOptions): Promise<boolean> {
  const rows = await db
    .update(jobs)
    .set({ lockedUntil: options.until, attempts: sql`greatest(${jobs.attempts} - 1, 0)`, updatedAt: options.now ?? new Date() })
    .where(claimed(id, options.lockedUntil))
    .returning({ id: jobs.id });
  return rows.length > 0;
}

/** Pending jobs by kind (due or not, locked or not), for the jobs_pending gauge. */
export async function countPendingJobs(db: Database): Promise<Record<JobKind, number>> {
  const rows = await db
    .select({ kind: jobs.kind, count: sql<number>`count(*)::int` })
    .from(jobs)
    .where(eq(jobs.status, "pending"))
    .groupBy(jobs.kind);
  return Object.fromEntries(rows.map((r) => [r.kind, Number(r.count)]));
}

/**
 * The delay before attempt `attempts + 1`: exponential from baseMs, capped at maxMs, with full
 * jitter (uniform in [0, cap]) so jobs that failed together do not retry together.
 */
export function nextAttemptDelay(attempts: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attempts - 1, 0), 30);
  const cap = Math.min(maxMs, baseMs * 2 ** exponent);
  return Math.floor(random() * cap);
}

function truncateError(error: string): string {
  return error.length > maxErrorLength ? `${error.slice(0, maxErrorLength - 1)}…` : error;
}
