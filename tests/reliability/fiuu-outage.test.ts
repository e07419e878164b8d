import { eq, inArray, or, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobs, payments } from "../../drizzle/schema.js";
import { createMetricsApp } from "../../handlers/metrics.js";
import { queryRows } from "../../lib/adapters/db/client.js";
import { runJobBatch } from "../../lib/ops/jobs/loop.js";
import { jobRunners } from "../../lib/ops/jobs/table.js";
import { createTestApp, jsonRequest, type TestContext } from "../support/app.js";
import { createPayment, payThroughSandbox } from "../support/flow.js";
import { figure, sleep } from "../support/timing.js";

// Fiuu unreachable, slow or answering 5xx while payments wait for their requery and IPN echo.
// The circuit breaker opens (fiuu_circuit_breaker_state 1), the jobs back off — still pending,
// nothing failed, nothing lost — and once Fiuu is back the breaker closes (0) and every job does
// its work. FIUU_BREAKER_RESET is 100 ms in tests, FIUU_TIMEOUT 300 ms here. Runs on PGlite too.

type Fault = "down" | "error" | "slow" | "unreachable";

describe("Fiuu unreachable, slow or failing", () => {
  let t: TestContext;
  let clockMs = 0;
  let unreachable = false;
  beforeAll(async () => {
    t = await createTestApp({
      env: { FIUU_TIMEOUT: "300ms" },
      now: () => new Date(Date.now() + clockMs),
      // "unreachable": the request goes to a closed port on this machine and the fetch fails.
      fiuuFetch: async (request) =>
        unreachable
          ? fetch(`http://127.0.0.1:1${new URL(request.url).pathname}`, {
              method: "POST",
              body: await request.text(),
              headers: request.headers,
              signal: request.signal,
            })
          : t.app.fetch(request),
    });
  });
  afterAll(() => t?.close());

  const setFault = async (fault: Fault | "none") => {
    unreachable = fault === "unreachable";
    const mode = fault === "unreachable" ? "none" : fault;
    const res = await t.app.request("/sandbox/fiuu/_control/faults", jsonRequest("POST", { mode, ...(mode === "slow" ? { delayMs: 2_000 } : {}) }));
    expect(res.status).toBe(200);
  };
  const breakerState = async () => {
    const text = await (await createMetricsApp(t.deps).request("/metrics")).text();
    return Number(new RegExp(`^fiuu_circuit_breaker_state\\{merchant_id="${t.deps.config.fiuu.merchantId}"\\} (\\d)$`, "m").exec(text)?.[1]);
  };
  const unavailableCalls = async () => {
    const { values } = await t.deps.metrics.fiuuRequests.get();
    return values.filter((v) => v.labels.outcome === "error" || v.labels.outcome === "timeout").reduce((sum, v) => sum + v.value, 0);
  };
  const runBatch = () => runJobBatch(t.deps, jobRunners(), { kinds: ["requery", "ipn_echo"] });
  const statusOf = async (id: string) =>
    (await t.database.handle.db.select({ status: payments.status }).from(payments).where(eq(payments.id, id)))[0]!.status;
  const failedJobs = async () =>
    (await queryRows<{ n: number }>(t.database.handle.db, sql`select count(*)::int as n from jobs where status = 'failed'`))[0]!.n;

  it.each<Fault>(["down", "error", "slow", "unreachable"])(
    "%s: the breaker opens, jobs back off without failing, and all is done once Fiuu is back",
    async (fault) => {
      // Two payments the shopper left pending at Fiuu, which has since settled them without telling
      // us: only the requery can find out. Each also has its IPN echoes queued.
      const waiting: { id: string; tranID: string }[] = [];
      for (let i = 0; i < 2; i++) {
        const payment = await createPayment(t);
        const { tranID } = await payThroughSandbox(t, payment.checkout_url, "pending");
        expect(await statusOf(payment.id)).toBe("pending");
        const settled = await t.app.request(`/sandbox/fiuu/_control/transactions/${tranID}`, jsonRequest("POST", { status: "00", report: false }));
        expect(settled.status).toBe(200);
        waiting.push({ id: payment.id, tranID });
      }
      const ours = or(
        inArray(
          jobs.dedupeKey,
          waiting.map((w) => `requery:${w.id}`),
        ),
        ...waiting.map((w) => sql`${jobs.dedupeKey} like ${`ipn_echo:${w.tranID}:%`}`),
      );
      const ourJobs = () => t.database.handle.db.select().from(jobs).where(ours);
      expect(await breakerState()).toBe(0);

      await setFault(fault);
      const faultAt = Date.now();
      const callsBefore = await unavailableCalls();
      clockMs += 2 * 60_000; // the requeries are due
      let batchNow = t.deps.now().getTime();
      for (let batch = 0; batch < 5 && (await breakerState()) !== 1; batch++) {
        batchNow = t.deps.now().getTime();
        await runBatch();
      }
      const openedAfterMs = Date.now() - faultAt;
      const failedCalls = (await unavailableCalls()) - callsBefore;
      expect(await breakerState()).toBe(1);
      expect(t.deps.fiuu.breakerState()).toBe("open");

      // The jobs backed off: pending, unlocked, due later, their error kept; none failed.
      const backedOff = await ourJobs();
      expect(backedOff).toHaveLength(6); // a requery and two echoes (notification, return) per payment
      for (const job of backedOff) {
        expect(job, JSON.stringify(job)).toMatchObject({ status: "pending", lockedUntil: null });
        expect(job.attempts).toBeGreaterThanOrEqual(1);
        expect(job.lastError).toBeTruthy();
        expect(job.runAt.getTime()).toBeGreaterThanOrEqual(batchNow);
      }
      expect(await failedJobs()).toBe(0);
      for (const w of waiting) expect(await statusOf(w.id)).toBe("pending");
      const delays = backedOff.filter((j) => j.kind === "requery").map((j) => Math.round((j.runAt.getTime() - batchNow) / 1000));
      // The API does not depend on Fiuu: payments are still created while the breaker is open.
      await createPayment(t);

      // Fiuu is back. After FIUU_BREAKER_RESET the next call is the trial; it succeeds and closes it.
      await setFault("none");
      const recoveredAt = Date.now();
      await sleep(150);
      let closedAfterMs: number | undefined;
      for (let batch = 0; batch < 6; batch++) {
        clockMs += 20 * 60_000; // past every backoff (at most 15 min)
        await runBatch();
        if (closedAfterMs === undefined && (await breakerState()) === 0) closedAfterMs = Date.now() - recoveredAt;
        const pending = (await ourJobs()).filter((j) => j.status !== "done");
        if (closedAfterMs !== undefined && pending.length === 0) break;
      }
      expect(await breakerState()).toBe(0);
      expect(t.deps.fiuu.breakerState()).toBe("closed");
      expect((await ourJobs()).map((j) => j.status)).toEqual(Array(6).fill("done"));
      expect(await failedJobs()).toBe(0);
      // Nothing lost: each payment recorded once, and Fiuu got its echoes.
      for (const w of waiting) {
        expect(await statusOf(w.id)).toBe("succeeded");
        const events = await queryRows<{ type: string }>(t.database.handle.db, sql`select type from events where payment_id = ${w.id} order by id`);
        expect(events.map((e) => e.type)).toEqual(["payment.pending", "payment.succeeded"]);
      }
      const log = (await (await t.app.request("/sandbox/fiuu/_control/log")).json()) as { ipnEchoes: { fields: Record<string, string> }[] };
      for (const w of waiting)
        expect(log.ipnEchoes.filter((e) => e.fields.tranID === w.tranID && e.fields.treq === "1").length).toBeGreaterThanOrEqual(2);

      figure(
        `Fiuu ${fault}: breaker open after ${failedCalls} failed calls, ${openedAfterMs} ms after the fault; requeries backed off ${Math.min(...delays)}–${Math.max(...delays)} s; breaker closed ${closedAfterMs} ms after Fiuu recovered (FIUU_BREAKER_RESET 100 ms)`,
      );
    },
    30_000,
  );
});
