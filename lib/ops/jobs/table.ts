import type { AppDeps } from "../../domain/deps.js";
import { sealAuditLog } from "../../domain/audit.js";
import { runExpire, runIpnEcho, runRequery, sweepExpiredPayments } from "../../domain/payments/reconcile.js";
import { runRefundPoll } from "../../domain/refunds/jobs.js";
import { retentionBacklog, runRetentionBatch } from "../../domain/retention/job.js";
import { runDeliveryBatch } from "../../domain/webhooks/deliver.js";
import { startBackgroundLoop } from "./background.js";
import { runJobBatch, startJobLoop, type BatchResult, type JobRunners } from "./loop.js";

// Background work, declared once: what each job group runs, how the Node server repeats it in its
// own loops, and when a Workers cron trigger runs it. The routes (handlers/jobs.ts), the Node
// server, and the Workers, Lambda and Vercel entries are all derived from this table.

/** A step of a group that is not a batch of job rows, and how the Node server repeats it. */
interface Step<R> {
  /** Names the Node server's loop for this step in log lines, e.g. "expiry sweep". */
  loop: string;
  /** Most rows one round takes; a round that takes them all leaves a backlog, and the loop goes again at once. */
  batchSize: number;
  /** The Node loop's pause after a round without a backlog (default 1 s). */
  intervalMs?: number;
  run(deps: AppDeps, batchSize: number, signal?: AbortSignal): Promise<R>;
}

export interface JobGroupSpec {
  /** The `POST /jobs/<group>` summary in the OpenAPI document. */
  summary: string;
  /** The schedule a functions platform runs the group on: Workers cron triggers (wrangler.toml), Vercel crons, EventBridge. */
  cron: string;
  /** Kinds of job rows the group runs, with their runners; the Node server runs all groups' kinds in one job loop. */
  kinds?: JobRunners;
  /** Done before the group's job batch by a scheduler; in the Node server, a loop of its own. Answers the rows it took. */
  before?: Step<number>;
  /** The group's batch when its work is not job rows (it answers the counts itself); in the Node server, a loop of its own. */
  batch?: Step<{ counts: BatchResult; backlog: boolean }>;
}

/** The Node server's one loop over the job kinds of every group, and the batch size of every job batch. */
const jobLoop = { loop: "job batch", batchSize: 64, intervalMs: 1000 };

const table = {
  reconcile: {
    summary: "Run one batch of due requeries, IPN echoes and refund polls",
    cron: "* * * * *",
    kinds: {
      ipn_echo: runIpnEcho,
      // Requeries and expiries share the merchant's one query slot (FIUU.md §3: one query per 5 s):
      // they run one at a time, oldest due first, so the oldest waiting job takes the next slot; and a
      // batch claims only two requeries, as it can use one slot at most (the rest wait in line).
      requery: { run: runRequery, perBatch: 2, serial: true },
      refund_poll: runRefundPoll,
    },
    // The audit sealer links committed rows into the hash chain, so that writers never wait on each
    // other (one sealer at a time across replicas): in the Node server about a second after commit;
    // schedulers that run the jobs outside the pods seal with the reconcile batch.
    before: { loop: "audit sealing", batchSize: 1000, run: (deps, batchSize) => sealAuditLog(deps.database.db, batchSize) },
  },
  expire: {
    summary: "Run one batch of due payment expiries",
    cron: "*/5 * * * *",
    kinds: { expire: { run: runExpire, serial: true } },
    // The sweep only enqueues deduplicated expiry jobs for payments past their time.
    before: { loop: "expiry sweep", batchSize: 200, intervalMs: 30_000, run: (deps, batchSize) => sweepExpiredPayments(deps, batchSize) },
  },
  deliver: {
    summary: "Run one batch of due webhook deliveries",
    cron: "* * * * *",
    // Webhook deliveries are rows of their own table (event_deliveries), not jobs; replicas share them through SKIP LOCKED.
    batch: {
      loop: "webhook batch",
      batchSize: 20,
      run: async (deps, limit, signal) => {
        const { claimed, delivered, retried, failed } = await runDeliveryBatch(deps, { limit, signal });
        return { counts: { claimed, done: delivered, retried, failed }, backlog: claimed >= limit };
      },
    },
  },
  retention: {
    summary: "Run one batch of data retention: erase personal data, raw Fiuu fields and webhook bodies past their RETENTION_* period",
    cron: "*/5 * * * *",
    // Data retention works on the rows it erases (SKIP LOCKED on payments, gateway_messages, events), not on jobs:
    // each replica's loop runs once a minute, sooner under a backlog.
    batch: {
      loop: "data retention",
      batchSize: 200,
      intervalMs: 60_000,
      run: async (deps, limit) => {
        const result = await runRetentionBatch(deps, { limit });
        const done = result.backfilled + result.payments + result.gatewayMessages + result.events;
        return { counts: { claimed: done, done, retried: 0, failed: 0 }, backlog: retentionBacklog(result, limit) };
      },
    },
  },
} satisfies Record<string, JobGroupSpec>;

export type JobGroup = keyof typeof table;
/** The job groups a scheduler can trigger, in the order of their routes. */
export const jobGroups: Readonly<Record<JobGroup, JobGroupSpec>> = table;
export const jobGroupNames = Object.keys(table) as [JobGroup, ...JobGroup[]];

/** Whether `name` is a job group. */
export const isJobGroup = (name: string): name is JobGroup => Object.hasOwn(table, name);

/** Runners of every group's job kinds, by kind. */
export function jobRunners(): JobRunners {
  return Object.assign({}, ...jobGroupNames.map((group) => jobGroups[group].kinds ?? {})) as JobRunners;
}

/**
 * Which job groups each cron trigger runs. Cloudflare tells a scheduled event only by its cron
 * text, and two triggers with the same text are one trigger, so groups that share a schedule
 * share an entry.
 */
export const cronGroups: Readonly<Record<string, readonly JobGroup[]>> = groupsByCron();

function groupsByCron(): Record<string, JobGroup[]> {
  const groups: Record<string, JobGroup[]> = {};
  for (const group of jobGroupNames) {
    const cron = jobGroups[group].cron;
    groups[cron] = [...(groups[cron] ?? []), group];
  }
  return groups;
}

/** What one batch of a group did: the answer of `POST /jobs/<group>`. */
export interface JobBatchResult extends BatchResult {
  job: JobGroup;
}

/**
 * Runs one batch of a job group now, as a scheduler asks: the group's before-step, then its batch
 * (job rows of its kinds, or its own work). `runners` replaces the registered ones (tests).
 */
export async function runJobGroup(deps: AppDeps, group: JobGroup, options: { runners?: JobRunners } = {}): Promise<JobBatchResult> {
  const spec = jobGroups[group];
  if (spec.before) await spec.before.run(deps, spec.before.batchSize);
  if (spec.batch) return { job: group, ...(await spec.batch.run(deps, spec.batch.batchSize)).counts };
  const kinds = Object.keys(spec.kinds ?? {});
  return { job: group, ...(await runJobBatch(deps, options.runners ?? jobRunners(), { kinds, limit: jobLoop.batchSize })) };
}

/**
 * Starts the Node server's background work, shared with the other replicas through the database:
 * one loop over every group's job kinds, and a loop for each group's other step. stop() stops
 * them all: each finishes its round in flight and hands back work it has not started.
 * `only` (loop names) and `intervalMs` are for tests.
 */
export function startBackgroundWork(deps: AppDeps, options: { only?: readonly string[]; intervalMs?: number } = {}): { stop(): Promise<void> } {
  const wanted = (loop: string) => !options.only || options.only.includes(loop);
  const every = (intervalMs: number | undefined) => options.intervalMs ?? intervalMs;
  const loops: { stop(): Promise<void> }[] = [];
  if (wanted(jobLoop.loop)) {
    loops.push(startJobLoop(deps, jobRunners(), { limit: jobLoop.batchSize, intervalMs: every(jobLoop.intervalMs) }));
  }
  for (const group of jobGroupNames) {
    const { before, batch } = jobGroups[group];
    if (before && wanted(before.loop)) {
      const round = async () => ({ backlog: (await before.run(deps, before.batchSize)) >= before.batchSize });
      loops.push(startBackgroundLoop(deps, round, { name: before.loop, intervalMs: every(before.intervalMs) }));
    }
    if (batch && wanted(batch.loop)) {
      const round = async (signal: AbortSignal) => ({ backlog: (await batch.run(deps, batch.batchSize, signal)).backlog });
      loops.push(startBackgroundLoop(deps, round, { name: batch.loop, intervalMs: every(batch.intervalMs) }));
    }
  }
  return { stop: async () => void (await Promise.all(loops.map((loop) => loop.stop()))) };
}
