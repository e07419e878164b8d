import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
// @ts-expect-error: a plain ES module of the build, without types
import { buildWorker } from "../../infra/functions/build.mjs";

// The production Workers bundle, built as `npm run build` builds it: the local Fiuu sandbox (a
// stand-in that signs whatever a tester clicks) must not be in it.

const dir = await mkdtemp(path.join(tmpdir(), "worker-bundle-"));
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("the Workers bundle", () => {
  it("contains no module of the local Fiuu sandbox", async () => {
    const outfile = path.join(dir, "worker.js");
    const metafile = (await buildWorker(outfile)) as { inputs: Record<string, unknown> };
    const inputs = Object.keys(metafile.inputs);
    expect(inputs.some((input) => input.includes("lib/entry/worker.ts"))).toBe(true);
    expect(inputs.some((input) => input.includes("lib/domain/payments/reports.ts"))).toBe(true);
    expect(inputs.filter((input) => input.includes("lib/adapters/fiuu/sandbox"))).toEqual([]);
    // Nor the Node server's logger, metrics, TCP Redis or embedded database (the Worker has its own openers, lib/app/worker.ts).
    expect(inputs.filter((input) => /node_modules\/(pino|prom-client|ioredis|@electric-sql)\//.test(input))).toEqual([]);
    // The sandbox's routes are nowhere in the code (the demo's link to them is only text).
    const code = await readFile(outfile, "utf8");
    expect(code).not.toContain("/_control/faults");
    expect(code).not.toContain("/RMS/API/refundAPI/q_by_txn.php");
  }, 60_000);
});
