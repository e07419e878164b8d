import type { AppDeps } from "../../domain/deps.js";
import { startBackgroundLoop } from "./background.js";
import { runPool } from "../../core/pool.js";
import { errorName } from "../../core/errors.js";
import {
  claimDueJobs,
  completeJobs,
  countPendingJobs,
  deferJob,
  failJob,
  nextAttemptDelay,
  releaseJob,
  retryJob,
  type Job,
  type JobKind,
  type JobResult,
  type JobRunner,
} from "../../domain/job-queue.js";

/** A runner with how its kind is claimed and run. */
export interface JobRunnerSpec {
  run: JobRunner;
  /**
   * Most jobs of this kind one batch claims (default: they share the batch's limit). For kinds
   * that wait for a shared slot, where a batch can use only one: the rest stay unclaimed, in line.
   */
  perBatch?: number;
  /**
   * Run this kind's jobs one at a time, in claim order (oldest due first), together with every
   * other serial kind of the batch — so that of jobs competing for one slot, the oldest takes it.
   */
  serial?: boolean;
}
export type JobRunners = Record<JobKind, JobRunner | JobRunnerSpec>;

const specOf = (runner: JobRunner | JobRunnerSpec): JobRunnerSpec => (typeof runner === "function" ? { run: runner } : runner);

export interface BatchResult {
  claimed: number;
  done: number;
  retried: number;
  failed: number;
}

export interface BatchOptions {
  /** Kinds to claim; default every kind in `runners`. Kinds without a runner are never claimed. */
  kinds?: readonly JobKind[];
  /** Most jobs claimed in one batch (default 64). */
  limit?: number;
  /** How long a claim holds a job; must outlast the slowest runner (default 2 min). */
  lockMs?: number;
  /** Jobs run at once within the batch (default 16): jobs mostly wait on Fiuu, not on this process. */
  concurrency?: number;
  /** Backoff for runners that throw: exponential from baseMs (default 5 s) up to maxMs (default 15 min). */
  backoff?: { baseMs: number; maxMs: number };
  /** When aborted, jobs claimed but not yet started are released instead of run. */
  signal?: AbortSignal;
}

const defaults = { limit: 64, lockMs: 120_000, concurrency: 16, backoff: { baseMs: 5_000, maxMs: 15 * 60_000 } };

/**
 * Claims the due jobs of the given kinds, runs each with its runner and records the outcome (the
 * finished ones together, in one statement, once the batch has run). A
 * runner that throws is retried with backoff (its message is stored, the stack is not); after the
 * batch the jobs_pending gauge is refreshed (under a backlog, every few seconds). A failure to record an outcome is thrown once every
 * started job has finished (the job's lock then runs out and it is tried again).
 */
export async function runJobBatch(deps: AppDeps, runners: JobRunners, options: BatchOptions = {}): Promise<BatchResult> {
  const db = deps.database.db;
  const kinds = (options.kinds ?? Object.keys(runners)).filter((kind) => Object.hasOwn(runners, kind));
  const backoff = options.backoff ?? defaults.backoff;
  if (options.signal?.aborted) return { claimed: 0, done: 0, retried: 0, failed: 0 };
  const limit = options.limit ?? defaults.limit;
  const specs = new Map(kinds.map((kind) => [kind, specOf(runners[kind]!)]));
  const perKind = Object.fromEntries([...specs].filter(([, spec]) => spec.perBatch !== undefined).map(([kind, spec]) => [kind, spec.perBatch!]));
  const claimedJobs = await claimDueJobs(db, {
    kinds,
    limit,
    lockMs: options.lockMs ?? defaults.lockMs,
    now: deps.now(),
    perKind,
  });
  const result: BatchResult = { claimed: claimedJobs.length, done: 0, retried: 0, failed: 0 };
  const recordErrors: unknown[] = [];

  const runOne = async (job: Job) => {
    const log = { job_id: job.id, kind: job.kind, attempt: job.attempts };
    let outcome: JobResult;
    try {
      outcome = await specs.get(job.kind)!.run(deps, job);
      if (!isJobResult(outcome)) throw new Error("The runner returned no result");
    } catch (error) {
      const delay = nextAttemptDelay(job.attempts, backoff.baseMs, backoff.maxMs);
      outcome = { retryAt: new Date(deps.now().getTime() + delay), error: errorMessage(error) };
      // Id and kind only: payloads and error texts may carry Fiuu fields; the message is in last_error.
      deps.logger.warn({ ...log, error: errorName(error), retry_in_ms: delay }, "job runner threw; retrying");
    }
    const fence = { lockedUntil: job.lockedUntil, now: deps.now() };
    try {
      if ("done" in outcome) {
        finished.push(job); // recorded with the batch's others, in one statement
      } else if ("waitUntil" in outcome) {
        deps.logger.debug({ ...log, wait_until: outcome.waitUntil.toISOString() }, "job deferred, keeping its place");
        if (await deferJob(db, job.id, { until: outcome.waitUntil, ...fence })) result.retried++;
        else lostClaim(deps, log);
      } else if ("failed" in outcome) {
        if (await failJob(db, job.id, { error: outcome.failed, ...fence })) {
          result.failed++;
          deps.logger.warn(log, "job failed");
        } else lostClaim(deps, log);
      } else {
        deps.logger.debug({ ...log, retry_at: outcome.retryAt.toISOString() }, "job retry scheduled");
        const status = await retryJob(db, job.id, { error: outcome.error, runAt: outcome.retryAt, ...fence });
        if (status === "pending") result.retried++;
        else if (status === "failed") {
          result.failed++;
          deps.logger.warn({ ...log, max_attempts: job.maxAttempts }, "job failed: attempts exhausted");
        } else lostClaim(deps, log);
      }
    } catch (error) {
      recordErrors.push(error);
    }
  };

  const finished: Job[] = [];
  // Serial kinds' jobs form one lane, run in claim order (oldest due first) and started where its
  // oldest job stands; every other job runs on its own, up to `concurrency` at a time.
  const lane: Job[] = [];
  const tasks: Job[][] = [];
  for (const job of claimedJobs) {
    if (!specs.get(job.kind)!.serial) tasks.push([job]);
    else if (lane.push(job) === 1) tasks.push(lane);
  }
  const unstarted: Job[] = [];
  const runTask = async (task: Job[]) => {
    for (const [index, job] of task.entries()) {
      if (options.signal?.aborted) {
        unstarted.push(...task.slice(index));
        return;
      }
      await runOne(job);
    }
  };
  const queue = [...(await runPool(tasks, options.concurrency ?? defaults.concurrency, runTask, options.signal)).flat(), ...unstarted];

  if (finished.length > 0) {
    try {
      const marked = await completeJobs(db, finished, deps.now());
      result.done += marked.size;
      for (const job of finished) if (!marked.has(job.id)) lostClaim(deps, { job_id: job.id, kind: job.kind });
    } catch (error) {
      recordErrors.push(error);
    }
  }

  // Stopped before these started: hand them back so another worker or replica takes them now
  // rather than after their lock runs out.
  for (const job of queue) {
    try {
      await releaseJob(db, job.id, { lockedUntil: job.lockedUntil, now: deps.now() });
    } catch (error) {
      recordErrors.push(error);
    }
  }
  if (queue.length > 0) deps.logger.info({ released: queue.length }, "released claimed jobs on stop");

  // Under a backlog (a full batch) the count is taken every few seconds, not after every batch.
  if (claimedJobs.length < limit || gaugeIsStale(deps)) await refreshPendingGauge(deps, Object.keys(runners));
  if (recordErrors.length > 0) throw recordErrors[0];
  return result;
}

const gaugeRefreshMs = 5_000;
const gaugeRefreshedAt = new WeakMap<AppDeps["metrics"]["jobsPending"], number>();
const gaugeIsStale = (deps: AppDeps) => Date.now() - (gaugeRefreshedAt.get(deps.metrics.jobsPending) ?? 0) >= gaugeRefreshMs;

/** Sets jobs_pending{kind} from the table; kinds with runners but no pending jobs read 0. */
async function refreshPendingGauge(deps: AppDeps, kinds: readonly JobKind[]) {
  gaugeRefreshedAt.set(deps.metrics.jobsPending, Date.now());
  try {
    const pending = await countPendingJobs(deps.database.db);
    const gauge = deps.metrics.jobsPending;
    gauge.reset();
    for (const kind of kinds) gauge.set({ kind }, 0);
    for (const [kind, count] of Object.entries(pending)) gauge.set({ kind }, count);
  } catch (error) {
    deps.logger.warn({ error: errorName(error) }, "could not count pending jobs");
  }
}

export interface JobLoopOptions extends Omit<BatchOptions, "signal"> {
  /** Pause between batches when the last one did not fill up (default 1000 ms). */
  intervalMs?: number;
  /** Longest pause after failing batches; the pause doubles with each failure from intervalMs (default 30 s). */
  maxErrorBackoffMs?: number;
}

/**
 * Runs job batches in the background of the Node server: one at a time, the next right away when
 * the last one filled up (a backlog), else after intervalMs. A failing batch (database down) is
 * logged and the loop carries on after a growing pause. stop() ends the ticking, waits for the
 * batch in flight, and releases the jobs that batch claimed but had not started.
 */
export function startJobLoop(deps: AppDeps, runners: JobRunners, options: JobLoopOptions = {}): { stop(): Promise<void> } {
  const { intervalMs, maxErrorBackoffMs, ...batchOptions } = options;
  const limit = batchOptions.limit ?? defaults.limit;
  return startBackgroundLoop(
    deps,
    async (signal) => ({ backlog: (await runJobBatch(deps, runners, { ...batchOptions, signal })).claimed >= limit }),
    { name: "job batch", intervalMs, maxErrorBackoffMs },
  );
}

function isJobResult(value: unknown): value is JobResult {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    v.done === true ||
    typeof v.failed === "string" ||
    (v.waitUntil instanceof Date && !Number.isNaN(v.waitUntil.getTime())) ||
    (v.retryAt instanceof Date && !Number.isNaN(v.retryAt.getTime()) && typeof v.error === "string")
  );
}

function errorMessage(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

function lostClaim(deps: AppDeps, log: { job_id: number; kind: string }) {
  // Its lock ran out mid-run and another worker claimed it (or it was finished elsewhere).
  deps.logger.warn(log, "job outcome not recorded: the claim was lost");
}
