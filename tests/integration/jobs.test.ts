import { readFile } from "node:fs/promises";
import path from "node:path";
import { asc, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobs } from "../../drizzle/schema.js";
import { jobRoutes, type JobRoutesOptions } from "../../handlers/jobs.js";
import type { AppDeps } from "../../lib/domain/deps.js";
import { handleError } from "../../lib/http/problem.js";
import { runJobBatch, startJobLoop, type JobRunners } from "../../lib/ops/jobs/loop.js";
import { cronGroups, jobGroupNames, jobGroups } from "../../lib/ops/jobs/table.js";
import {
  claimDueJobs,
  completeJob,
  countPendingJobs,
  deferJob,
  enqueueJob,
  nextAttemptDelay,
  releaseJob,
  retryJob,
} from "../../lib/domain/job-queue.js";
import { createRouter } from "../../lib/http/openapi.js";
import { bearer, createTestApp, type TestContext } from "../support/app.js";
import { createPayment } from "../support/flow.js";

let t: TestContext;
let db: TestContext["database"]["handle"]["db"];
beforeAll(async () => {
  t = await createTestApp();
  db = t.database.handle.db;
});
afterAll(() => t.close());

// Each test works on kinds of its own, so tests sharing the file's database cannot see each other's jobs.
let kindCounter = 0;
const newKind = (name = "job") => `${name}_${process.pid}_${++kindCounter}`;
const ago = (ms: number) => new Date(Date.now() - ms);
const rowsOf = (kind: string) => db.select().from(jobs).where(eq(jobs.kind, kind)).orderBy(asc(jobs.id));

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("enqueueJob", () => {
  it("adds a pending job with its payload, run time and attempt limit", async () => {
    const kind = newKind();
    const runAt = new Date("2030-01-01T00:00:00Z");
    await enqueueJob(db, { kind, payload: { payment_id: "pay_1" }, runAt, maxAttempts: 5 });
    await enqueueJob(db, { kind, payload: { payment_id: "pay_1" } });
    const rows = await rowsOf(kind);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({ status: "pending", payload: { payment_id: "pay_1" }, runAt, maxAttempts: 5, attempts: 0, lockedUntil: null });
    expect(rows[1]).toMatchObject({ status: "pending", maxAttempts: 20, dedupeKey: null });
  });

  it("ignores a job whose dedupe key a pending job already holds, and takes it again once that one is done", async () => {
    const kind = newKind();
    const key = `${kind}:pay_1`;
    await enqueueJob(db, { kind, payload: { n: 1 }, dedupeKey: key });
    await enqueueJob(db, { kind, payload: { n: 2 }, dedupeKey: key });
    expect((await rowsOf(kind)).map((r) => r.payload)).toEqual([{ n: 1 }]);

    const [claimed] = await claimDueJobs(db, { kinds: [kind], limit: 10, lockMs: 60_000, now: new Date() });
    expect(await completeJob(db, claimed!.id)).toBe(true);
    await enqueueJob(db, { kind, payload: { n: 3 }, dedupeKey: key });
    expect((await rowsOf(kind)).map((r) => [r.status, r.payload])).toEqual([
      ["done", { n: 1 }],
      ["pending", { n: 3 }],
    ]);
  });

  it("is part of the caller's transaction: a rollback leaves no job", async () => {
    const kind = newKind();
    await db.transaction(async (tx) => {
      await enqueueJob(tx, { kind, payload: {}, dedupeKey: `${kind}:a` });
      await enqueueJob(tx, { kind, payload: {}, dedupeKey: `${kind}:a` });
    });
    await expect(
      db.transaction(async (tx) => {
        await enqueueJob(tx, { kind, payload: {}, dedupeKey: `${kind}:b` });
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    expect((await rowsOf(kind)).map((r) => r.dedupeKey)).toEqual([`${kind}:a`]);
  });
});

describe("claimDueJobs", () => {
  it("claims only due, unlocked, pending jobs of the asked kinds, oldest first, counting the attempt", async () => {
    const kind = newKind();
    const other = newKind();
    const now = new Date("2030-06-01T12:00:00Z");
    const at = (offsetMs: number) => new Date(now.getTime() + offsetMs);
    await enqueueJob(db, { kind, payload: { n: "later" }, runAt: at(-1_000) });
    await enqueueJob(db, { kind, payload: { n: "earlier" }, runAt: at(-5_000) });
    await enqueueJob(db, { kind, payload: { n: "exactly now" }, runAt: now });
    await enqueueJob(db, { kind, payload: { n: "future" }, runAt: at(1) });
    await enqueueJob(db, { kind: other, payload: { n: "other kind" }, runAt: at(-10_000) });

    const claimed = await claimDueJobs(db, { kinds: [kind], limit: 10, lockMs: 30_000, now });
    expect(claimed.map((j) => j.payload.n)).toEqual(["earlier", "later", "exactly now"]);
    for (const job of claimed) {
      expect(job).toMatchObject({ kind, attempts: 1, maxAttempts: 20, lockedUntil: at(30_000) });
    }
    expect(await claimDueJobs(db, { kinds: [kind], limit: 10, lockMs: 30_000, now })).toEqual([]);
    expect(await claimDueJobs(db, { kinds: [], limit: 10, lockMs: 30_000, now })).toEqual([]);
  });

  it("claims at most limit jobs", async () => {
    const kind = newKind();
    for (let i = 0; i < 5; i++) await enqueueJob(db, { kind, payload: { i }, runAt: ago(60_000) });
    const first = await claimDueJobs(db, { kinds: [kind], limit: 2, lockMs: 60_000, now: new Date() });
    const second = await claimDueJobs(db, { kinds: [kind], limit: 10, lockMs: 60_000, now: new Date() });
    expect(first.map((j) => j.payload.i)).toEqual([0, 1]);
    expect(second.map((j) => j.payload.i)).toEqual([2, 3, 4]);
  });

  it("never hands the same job to two claimers running at once", async () => {
    const kind = newKind();
    const total = 60;
    await db.insert(jobs).values(Array.from({ length: total }, (_, i) => ({ kind, payload: { i }, runAt: ago(60_000) })));
    const now = new Date();
    // On Postgres these run on separate pool connections at the same time; PGlite serialises them.
    const claims = await Promise.all(Array.from({ length: 8 }, () => claimDueJobs(db, { kinds: [kind], limit: 10, lockMs: 60_000, now })));
    const ids = claims.flat().map((j) => j.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(total);
    expect((await rowsOf(kind)).every((r) => r.attempts === 1)).toBe(true);
  });

  it("gives a claimed job back only once its lock runs out (a crashed worker's job comes back)", async () => {
    const kind = newKind();
    const now = new Date("2030-06-01T12:00:00Z");
    await enqueueJob(db, { kind, payload: {}, runAt: now });
    const [first] = await claimDueJobs(db, { kinds: [kind], limit: 1, lockMs: 60_000, now });
    expect(first).toBeDefined();
    expect(await claimDueJobs(db, { kinds: [kind], limit: 1, lockMs: 60_000, now: new Date(now.getTime() + 59_999) })).toEqual([]);
    const [again] = await claimDueJobs(db, { kinds: [kind], limit: 1, lockMs: 60_000, now: new Date(now.getTime() + 60_000) });
    expect(again).toMatchObject({ id: first!.id, attempts: 2 });

    // The first worker's late outcome must not overwrite the second claim's.
    expect(await completeJob(db, first!.id, { lockedUntil: first!.lockedUntil })).toBe(false);
    expect(await retryJob(db, first!.id, { error: "late", runAt: now, lockedUntil: first!.lockedUntil })).toBeUndefined();
    expect((await rowsOf(kind))[0]).toMatchObject({ status: "pending", lockedUntil: again!.lockedUntil, lastError: null });
    expect(await completeJob(db, again!.id, { lockedUntil: again!.lockedUntil })).toBe(true);
    expect((await rowsOf(kind))[0]).toMatchObject({ status: "done", lockedUntil: null });
  });
});

describe("retryJob, releaseJob, countPendingJobs", () => {
  it("schedules the next attempt with the error, and marks the job failed when its attempts are used up", async () => {
    const kind = newKind();
    const now = new Date("2030-06-01T12:00:00Z");
    await enqueueJob(db, { kind, payload: {}, runAt: now, maxAttempts: 3 });
    let runAt = now;
    const statuses: (string | undefined)[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const [job] = await claimDueJobs(db, { kinds: [kind], limit: 1, lockMs: 60_000, now: runAt });
      expect(job?.attempts).toBe(attempt);
      const next = new Date(runAt.getTime() + 10_000);
      statuses.push(await retryJob(db, job!.id, { error: `timeout ${attempt}`, runAt: next, lockedUntil: job!.lockedUntil }));
      const [row] = await rowsOf(kind);
      expect(row).toMatchObject({ runAt: next, lockedUntil: null, lastError: `timeout ${attempt}` });
      // Not due before its new run time.
      expect(await claimDueJobs(db, { kinds: [kind], limit: 1, lockMs: 60_000, now: runAt })).toEqual([]);
      runAt = next;
    }
    expect(statuses).toEqual(["pending", "pending", "failed"]);
    expect((await rowsOf(kind))[0]).toMatchObject({ status: "failed", attempts: 3 });
    expect(await claimDueJobs(db, { kinds: [kind], limit: 1, lockMs: 60_000, now: new Date("2031-01-01T00:00:00Z") })).toEqual([]);
  });

  it("keeps only the start of a very long error", async () => {
    const kind = newKind();
    await enqueueJob(db, { kind, payload: {}, runAt: ago(1000) });
    const [job] = await claimDueJobs(db, { kinds: [kind], limit: 1, lockMs: 60_000, now: new Date() });
    await retryJob(db, job!.id, { error: "x".repeat(50_000), runAt: new Date() });
    expect((await rowsOf(kind))[0]!.lastError!.length).toBeLessThanOrEqual(1000);
  });

  it("releases a claimed job untouched: unlocked, attempt uncounted, claimable at once", async () => {
    const kind = newKind();
    await enqueueJob(db, { kind, payload: {}, runAt: ago(1000) });
    const [job] = await claimDueJobs(db, { kinds: [kind], limit: 1, lockMs: 600_000, now: new Date() });
    expect(await releaseJob(db, job!.id, { lockedUntil: job!.lockedUntil })).toBe(true);
    expect((await rowsOf(kind))[0]).toMatchObject({ status: "pending", attempts: 0, lockedUntil: null });
    const [again] = await claimDueJobs(db, { kinds: [kind], limit: 1, lockMs: 600_000, now: new Date() });
    expect(again).toMatchObject({ id: job!.id, attempts: 1 });
  });

  it("counts pending jobs by kind, locked or not, due or not", async () => {
    const a = newKind();
    const b = newKind();
    await enqueueJob(db, { kind: a, payload: {}, runAt: ago(1000) });
    await enqueueJob(db, { kind: a, payload: {}, runAt: new Date(Date.now() + 3_600_000) });
    await enqueueJob(db, { kind: b, payload: {}, runAt: ago(1000) });
    const [claimed] = await claimDueJobs(db, { kinds: [b], limit: 1, lockMs: 60_000, now: new Date() });
    expect(await countPendingJobs(db)).toMatchObject({ [a]: 2, [b]: 1 });
    await completeJob(db, claimed!.id);
    expect((await countPendingJobs(db))[b]).toBeUndefined();
  });
});

describe("deferJob and per-kind claim caps", () => {
  it("defers a claimed job until a time, keeping its run_at and giving its attempt back", async () => {
    const kind = newKind();
    const now = new Date("2030-06-01T12:00:00Z");
    const runAt = new Date(now.getTime() - 60_000);
    await enqueueJob(db, { kind, payload: {}, runAt });
    const [job] = await claimDueJobs(db, { kinds: [kind], limit: 1, lockMs: 60_000, now });
    const until = new Date(now.getTime() + 5_000);
    expect(await deferJob(db, job!.id, { until, lockedUntil: job!.lockedUntil, now })).toBe(true);
    expect((await rowsOf(kind))[0]).toMatchObject({ status: "pending", runAt, attempts: 0, lockedUntil: until, lastError: null });
    expect(await claimDueJobs(db, { kinds: [kind], limit: 1, lockMs: 60_000, now: new Date(until.getTime() - 1) })).toEqual([]);
    const [again] = await claimDueJobs(db, { kinds: [kind], limit: 1, lockMs: 60_000, now: until });
    expect(again).toMatchObject({ id: job!.id, attempts: 1, runAt });
    // A stale claim cannot defer the job the new claim holds.
    expect(await deferJob(db, job!.id, { until: new Date(until.getTime() + 60_000), lockedUntil: job!.lockedUntil })).toBe(false);
  });

  it("claims a capped kind only up to its cap, oldest due first, beside the shared limit of the rest", async () => {
    const capped = newKind("capped");
    const free = newKind("free");
    for (let i = 0; i < 5; i++) await enqueueJob(db, { kind: capped, payload: { i }, runAt: ago(60_000 - i) });
    for (let i = 0; i < 3; i++) await enqueueJob(db, { kind: free, payload: { i }, runAt: ago(60_000 - i) });
    const claimed = await claimDueJobs(db, { kinds: [capped, free], limit: 10, lockMs: 60_000, now: new Date(), perKind: { [capped]: 2 } });
    expect(claimed.filter((j) => j.kind === capped).map((j) => j.payload.i)).toEqual([0, 1]);
    expect(claimed.filter((j) => j.kind === free).map((j) => j.payload.i)).toEqual([0, 1, 2]);
    expect((await rowsOf(capped)).map((r) => r.attempts)).toEqual([1, 1, 0, 0, 0]);
  });
});

describe("nextAttemptDelay", () => {
  it.each([
    [1, 1000],
    [2, 2000],
    [3, 4000],
    [5, 16_000],
    [8, 60_000],
    [1000, 60_000],
  ])("after attempt %i waits at most %i ms", (attempts, cap) => {
    expect(nextAttemptDelay(attempts, 1000, 60_000, () => 0.999999)).toBe(Math.floor(0.999999 * cap));
    expect(nextAttemptDelay(attempts, 1000, 60_000, () => 0)).toBe(0);
  });

  it("spreads delays over the whole window (full jitter)", () => {
    const delays = Array.from({ length: 200 }, () => nextAttemptDelay(4, 1000, 60_000));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThan(8000);
    expect(new Set(delays).size).toBeGreaterThan(100);
  });
});

describe("runJobBatch", () => {
  it("records the batch's finished jobs together, and not one whose claim another worker took meanwhile", async () => {
    const kind = newKind("batch_done");
    for (let n = 0; n < 3; n++) await enqueueJob(db, { kind, payload: { n }, runAt: ago(1000) });
    const stolen = deferred<number>();
    const runner = async (_deps: AppDeps, job: { id: number; payload: Record<string, unknown> }) => {
      if (job.payload.n === 1) {
        // Its lock runs out and another worker claims it while this one is still running.
        await db
          .update(jobs)
          .set({ lockedUntil: new Date(Date.now() + 600_000) })
          .where(eq(jobs.id, job.id));
        stolen.resolve(job.id);
      }
      return { done: true as const };
    };
    const warnings = () => t.logs.lines.filter((l) => l.msg === "job outcome not recorded: the claim was lost").length;
    const warningsBefore = warnings();
    expect(await runJobBatch(t.deps, { [kind]: runner }, { kinds: [kind] })).toMatchObject({ claimed: 3, done: 2 });
    const rows = await rowsOf(kind);
    expect(rows.map((r) => [r.payload.n, r.status])).toEqual([
      [0, "done"],
      [1, "pending"],
      [2, "done"],
    ]);
    expect(await stolen.promise).toBe(rows[1]!.id);
    expect(warnings()).toBe(warningsBefore + 1);
  });

  it("records each runner's outcome: done, retry at its time, throw as retry with backoff, failed", async () => {
    const [done, retry, thrower, failer, unrun] = ["done", "retry", "throw", "failed", "norunner"].map(newKind) as [
      string,
      string,
      string,
      string,
      string,
    ];
    for (const kind of [done, retry, thrower, failer, unrun]) {
      await enqueueJob(db, { kind, payload: { card_marker: "MARKER-4111" }, runAt: ago(1000) });
    }
    const retryAt = new Date(Date.now() + 3_600_000);
    const seen: string[] = [];
    const runners: JobRunners = {
      [done]: async (_deps, job) => (seen.push(job.kind), { done: true }),
      [retry]: async () => ({ retryAt, error: "fiuu said wait" }),
      [thrower]: async () => {
        throw new Error("boom");
      },
      [failer]: async () => ({ failed: "payment no longer exists" }),
    };
    const before = Date.now();
    const result = await runJobBatch(t.deps, runners, { backoff: { baseMs: 60_000, maxMs: 60_000 } });
    expect(result).toEqual({ claimed: 4, done: 1, retried: 2, failed: 1 });
    expect(seen).toEqual([done]);

    expect((await rowsOf(done))[0]).toMatchObject({ status: "done", attempts: 1, lockedUntil: null });
    expect((await rowsOf(retry))[0]).toMatchObject({ status: "pending", runAt: retryAt, lastError: "fiuu said wait", lockedUntil: null });
    const thrown = (await rowsOf(thrower))[0]!;
    expect(thrown).toMatchObject({ status: "pending", lastError: "Error: boom", lockedUntil: null, attempts: 1 });
    expect(thrown.runAt.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(thrown.runAt.getTime()).toBeLessThanOrEqual(Date.now() + 60_000);
    expect((await rowsOf(failer))[0]).toMatchObject({ status: "failed", lastError: "payment no longer exists" });
    expect((await rowsOf(unrun))[0]).toMatchObject({ status: "pending", attempts: 0 });

    const thrownLog = t.logs.lines.find((l) => l.msg === "job runner threw; retrying" && l.kind === thrower);
    expect(thrownLog).toMatchObject({ job_id: thrown.id, kind: thrower, attempt: 1 });
    expect(t.logs.raw.join("\n")).not.toContain("MARKER-4111");
    expect(t.logs.raw.join("\n")).not.toContain("at Object.");
  });

  it("records a runner's waitUntil as a deferral: its place in line and its attempts kept, claimable once the time has come", async () => {
    const kind = newKind("wait");
    const runAt = ago(60_000);
    await enqueueJob(db, { kind, payload: {}, runAt, maxAttempts: 1 });
    const waitUntil = new Date(Date.now() + 3_600_000);
    let runs = 0;
    const runner = async () => (runs++, { waitUntil });
    // Deferred many times over, it never uses up its one attempt.
    for (let i = 0; i < 3; i++) {
      expect(await runJobBatch(t.deps, { [kind]: runner })).toMatchObject({ claimed: 1, retried: 1, failed: 0 });
      expect((await rowsOf(kind))[0]).toMatchObject({ status: "pending", runAt, attempts: 0, lockedUntil: waitUntil, lastError: null });
      await db
        .update(jobs)
        .set({ lockedUntil: ago(1) })
        .where(eq(jobs.kind, kind));
    }
    expect(runs).toBe(3);
  });

  it("runs serial kinds one at a time, oldest due first, and claims no more of a kind than its perBatch", async () => {
    const [a, b, other] = [newKind("serial_a"), newKind("serial_b"), newKind("parallel")];
    // Interleaved due times across the two serial kinds.
    await enqueueJob(db, { kind: b, payload: { n: "b1" }, runAt: ago(50_000) });
    await enqueueJob(db, { kind: a, payload: { n: "a1" }, runAt: ago(40_000) });
    await enqueueJob(db, { kind: b, payload: { n: "b2" }, runAt: ago(30_000) });
    await enqueueJob(db, { kind: a, payload: { n: "a2" }, runAt: ago(20_000) });
    await enqueueJob(db, { kind: a, payload: { n: "a3" }, runAt: ago(10_000) });
    await enqueueJob(db, { kind: other, payload: { n: "o1" }, runAt: ago(45_000) });
    const order: unknown[] = [];
    let running = 0;
    let mostAtOnce = 0;
    const serialRunner = async (_deps: AppDeps, job: { payload: Record<string, unknown> }) => {
      running++;
      mostAtOnce = Math.max(mostAtOnce, running);
      order.push(job.payload.n);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      return { done: true as const };
    };
    const result = await runJobBatch(t.deps, {
      [a]: { run: serialRunner, serial: true, perBatch: 2 },
      [b]: { run: serialRunner, serial: true },
      [other]: async () => ({ done: true as const }),
    });
    expect(result).toMatchObject({ claimed: 5, done: 5 });
    expect(order).toEqual(["b1", "a1", "b2", "a2"]);
    expect(mostAtOnce).toBe(1);
    expect((await rowsOf(a)).map((r) => [r.payload.n, r.status])).toEqual([
      ["a1", "done"],
      ["a2", "done"],
      ["a3", "pending"],
    ]);
  });

  it("claims only the kinds asked for, and only kinds that have a runner", async () => {
    const a = newKind();
    const b = newKind();
    await enqueueJob(db, { kind: a, payload: {}, runAt: ago(1000) });
    await enqueueJob(db, { kind: b, payload: {}, runAt: ago(1000) });
    const ran: string[] = [];
    const runner = async (_deps: AppDeps, job: { kind: string }) => (ran.push(job.kind), { done: true as const });
    expect(await runJobBatch(t.deps, { [a]: runner, [b]: runner }, { kinds: [b, "nobody_runs_this"] })).toMatchObject({ claimed: 1, done: 1 });
    expect(ran).toEqual([b]);
  });

  it("fails a job whose runner throws on its last attempt", async () => {
    const kind = newKind();
    await enqueueJob(db, { kind, payload: {}, runAt: ago(1000), maxAttempts: 1 });
    const result = await runJobBatch(t.deps, {
      [kind]: async () => {
        throw new TypeError("bad answer");
      },
    });
    expect(result).toEqual({ claimed: 1, done: 0, retried: 0, failed: 1 });
    expect((await rowsOf(kind))[0]).toMatchObject({ status: "failed", lastError: "TypeError: bad answer" });
  });

  it("treats a runner that returns nonsense as a failed attempt", async () => {
    const kind = newKind();
    await enqueueJob(db, { kind, payload: {}, runAt: ago(1000) });
    const result = await runJobBatch(t.deps, { [kind]: async () => undefined as never });
    expect(result).toMatchObject({ claimed: 1, retried: 1 });
    expect((await rowsOf(kind))[0]!.lastError).toMatch(/no result/);
  });

  it("sets jobs_pending{kind} after the batch, 0 for a runner's kind with nothing pending", async () => {
    const busy = newKind();
    const idle = newKind();
    await enqueueJob(db, { kind: busy, payload: {}, runAt: new Date(Date.now() + 3_600_000) });
    await enqueueJob(db, { kind: busy, payload: {}, runAt: new Date(Date.now() + 3_600_000) });
    const noop = async () => ({ done: true as const });
    await runJobBatch(t.deps, { [busy]: noop, [idle]: noop });
    const values = (await t.deps.metrics.jobsPending.get()).values;
    expect(values.find((v) => v.labels.kind === busy)?.value).toBe(2);
    expect(values.find((v) => v.labels.kind === idle)?.value).toBe(0);
  });
});

describe("startJobLoop", () => {
  it("runs due jobs, including ones enqueued while it runs", async () => {
    const kind = newKind();
    const ran: unknown[] = [];
    const loop = startJobLoop(t.deps, { [kind]: async (_deps, job) => (ran.push(job.payload.n), { done: true }) }, { intervalMs: 20 });
    try {
      await enqueueJob(db, { kind, payload: { n: 1 }, runAt: ago(1000) });
      await eventually(() => ran.length === 1);
      await enqueueJob(db, { kind, payload: { n: 2 }, runAt: ago(1000) });
      await eventually(() => ran.length === 2);
    } finally {
      await loop.stop();
    }
    expect(ran).toEqual([1, 2]);
    expect((await rowsOf(kind)).map((r) => r.status)).toEqual(["done", "done"]);
  });

  it("drains a backlog bigger than one batch without waiting out the interval", async () => {
    const kind = newKind();
    await db.insert(jobs).values(Array.from({ length: 25 }, (_, i) => ({ kind, payload: { i }, runAt: ago(1000) })));
    let ran = 0;
    const loop = startJobLoop(t.deps, { [kind]: async () => (ran++, { done: true }) }, { intervalMs: 60_000, limit: 5 });
    try {
      await eventually(() => ran === 25, 5_000);
    } finally {
      await loop.stop();
    }
  });

  it("stop() waits for the runner in flight and releases the jobs claimed but not started", async () => {
    const kind = newKind();
    for (let n = 1; n <= 3; n++) await enqueueJob(db, { kind, payload: { n }, runAt: ago(10_000 - n) });
    const started = deferred();
    const finish = deferred();
    const calls: unknown[] = [];
    const loop = startJobLoop(
      t.deps,
      {
        [kind]: async (_deps, job) => {
          calls.push(job.payload.n);
          started.resolve();
          await finish.promise;
          return { done: true };
        },
      },
      { intervalMs: 10, concurrency: 1 },
    );
    await started.promise;
    let stopped = false;
    const stopping = loop.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(stopped).toBe(false);
    finish.resolve();
    await stopping;

    expect(calls).toEqual([1]);
    const rows = await rowsOf(kind);
    expect(rows.map((r) => [r.payload.n, r.status, r.attempts, r.lockedUntil])).toEqual([
      [1, "done", 1, null],
      [2, "pending", 0, null],
      [3, "pending", 0, null],
    ]);
    // Released, so another replica takes them at once.
    expect(await claimDueJobs(db, { kinds: [kind], limit: 10, lockMs: 1000, now: new Date() })).toHaveLength(2);
  });

  it("logs a failing batch and carries on after a pause", async () => {
    const kind = newKind();
    await enqueueJob(db, { kind, payload: {}, runAt: ago(1000) });
    let failuresLeft = 2;
    const flaky: AppDeps = {
      ...t.deps,
      now: () => {
        if (failuresLeft-- > 0) throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
        return new Date();
      },
    };
    let ran = 0;
    const loop = startJobLoop(flaky, { [kind]: async () => (ran++, { done: true }) }, { intervalMs: 10 });
    try {
      await eventually(() => ran === 1);
    } finally {
      await loop.stop();
    }
    const failures = t.logs.lines.filter((l) => l.msg === "job batch failed: database unavailable");
    expect(failures.length).toBeGreaterThanOrEqual(2);
    expect(failures[0]).toMatchObject({ level: "warn", failures: 1, retry_in_ms: 20 });
  });

  it("stop() of an idle loop resolves at once and is safe to call twice", async () => {
    const loop = startJobLoop(t.deps, {}, { intervalMs: 10 });
    await new Promise((r) => setTimeout(r, 30));
    await Promise.all([loop.stop(), loop.stop()]);
  });
});

describe("POST /jobs/*", () => {
  /** The job routes behind the app's own context middleware and error handler, with runners of the test's choosing. */
  function jobsApp(options: JobRoutesOptions) {
    const app = createRouter();
    app.use(async (c, next) => {
      c.set("deps", t.deps);
      c.set("requestId", "req-test");
      c.set("log", t.deps.logger);
      await next();
    });
    app.route("/", jobRoutes(options));
    app.onError(handleError);
    return app;
  }

  it("runs one batch of the group's kinds for a system token and reports the counts", async () => {
    await enqueueJob(db, { kind: "requery", payload: { n: 1 }, runAt: ago(1000) });
    await enqueueJob(db, { kind: "ipn_echo", payload: { n: 2 }, runAt: ago(1000) });
    const ran: string[] = [];
    const runner = async (_deps: AppDeps, job: { kind: string }) => (ran.push(job.kind), { done: true as const });
    const app = jobsApp({
      runners: { requery: runner, ipn_echo: async () => ({ retryAt: new Date(Date.now() + 60_000), error: "later" }) },
    });

    const res = await app.request("/jobs/reconcile", { method: "POST", headers: await bearer(t, "system", "scheduler") });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ job: "reconcile", claimed: 2, done: 1, retried: 1, failed: 0 });
    expect(ran).toEqual(["requery"]);
    expect((await rowsOf("requery"))[0]).toMatchObject({ status: "done" });
  });

  it("runs the group's before-step first (the expiry sweep enqueues, then the batch runs)", async () => {
    const payment = await createPayment(t);
    await db.execute(sql`update payments set expires_at = ${ago(1000).toISOString()}::timestamptz where id = ${payment.id}`);
    const ran: unknown[] = [];
    const app = jobsApp({ runners: { expire: async (_deps, job) => (ran.push(job.payload.paymentId), { done: true }) } });
    const res = await app.request("/jobs/expire", { method: "POST", headers: await bearer(t, "system") });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ job: "expire", claimed: 1, done: 1, retried: 0, failed: 0 });
    expect(ran).toEqual([payment.id]);
  });

  it("answers 200 with zeros when no runner is registered for the group", async () => {
    const res = await jobsApp({ runners: {} }).request("/jobs/expire", { method: "POST", headers: await bearer(t, "system") });
    expect(await res.json()).toEqual({ job: "expire", claimed: 0, done: 0, retried: 0, failed: 0 });
  });

  it.each(["service", "admin"] as const)("refuses a %s token with 403 and runs nothing", async (role) => {
    const kind = "refund_poll";
    await enqueueJob(db, { kind, payload: {}, runAt: ago(1000) });
    let ran = 0;
    const app = jobsApp({ runners: { [kind]: async () => (ran++, { done: true }) } });
    for (const path of ["/jobs/reconcile", "/jobs/expire", "/jobs/deliver"]) {
      const res = await app.request(path, { method: "POST", headers: await bearer(t, role) });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ code: "forbidden", status: 403 });
    }
    expect(ran).toBe(0);
  });

  it("refuses a call without a token with 401", async () => {
    const app = jobsApp({ runners: {} });
    for (const path of ["/jobs/reconcile", "/jobs/expire", "/jobs/deliver"]) {
      const res = await app.request(path, { method: "POST" });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe("Bearer");
      expect(await res.json()).toMatchObject({ code: "unauthenticated" });
    }
  });

  it("describes the three routes in the OpenAPI document with bearer security", () => {
    const app = jobsApp({ runners: {} });
    const doc = app.getOpenAPI31Document({ openapi: "3.1.0", info: { title: "t", version: "1" } });
    for (const group of ["reconcile", "expire", "deliver"]) {
      const operation = doc.paths?.[`/jobs/${group}`]?.post;
      expect(operation?.security).toEqual([{ bearerAuth: [] }]);
      expect(Object.keys(operation?.responses ?? {})).toEqual(expect.arrayContaining(["200", "401", "403"]));
    }
  });
});

describe("the job table's schedules", () => {
  const root = path.resolve(import.meta.dirname, "../..");

  it("are the cron triggers wrangler.toml deploys, each running the groups of its schedule", async () => {
    const toml = await readFile(path.join(root, "infra/functions/wrangler.toml"), "utf8");
    const crons = /^crons\s*=\s*\[([^\]]*)\]/m.exec(toml)?.[1];
    expect(crons).toBeDefined();
    expect([...crons!.matchAll(/"([^"]+)"/g)].map((m) => m[1]).sort()).toEqual(Object.keys(cronGroups).sort());
    expect(Object.values(cronGroups).flat().sort()).toEqual([...jobGroupNames].sort());
  });

  it("are the Vercel crons, one GET /jobs/<group> per group", async () => {
    const vercel = JSON.parse(await readFile(path.join(root, "infra/functions/vercel.json"), "utf8")) as {
      crons: { path: string; schedule: string }[];
    };
    expect(Object.fromEntries(vercel.crons.map((c) => [c.path, c.schedule]))).toEqual(
      Object.fromEntries(jobGroupNames.map((group) => [`/jobs/${group}`, jobGroups[group].cron])),
    );
  });
});
