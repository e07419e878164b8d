import { createRoute, z } from "@hono/zod-openapi";
import { authenticate } from "../lib/http/auth/middleware.js";
import type { AppDeps } from "../lib/domain/deps.js";
import { runJobBatch, type JobRunners } from "../lib/ops/jobs/loop.js";
import { jobRunners } from "../lib/ops/jobs/runners.js";
import { bearerAuth, createRouter, problems } from "../lib/http/openapi.js";
import { runRetentionBatch } from "../lib/domain/retention/job.js";
import { runDeliveryBatch } from "../lib/domain/webhooks/deliver.js";

/** The job groups a scheduler can trigger, and the job kinds each one runs. */
export const jobGroups = {
  reconcile: ["requery", "ipn_echo", "refund_poll"],
  expire: ["expire"],
  // Webhook deliveries are rows of their own table (event_deliveries), not jobs: see runDeliveryBatch.
  deliver: [],
  // Data retention works on the rows it erases (SKIP LOCKED on payments, gateway_messages, events), not on jobs: see runRetentionBatch.
  retention: [],
} as const satisfies Record<string, readonly string[]>;
export type JobGroup = keyof typeof jobGroups;

const summaries: Record<JobGroup, string> = {
  reconcile: "Run one batch of due requeries, IPN echoes and refund polls",
  expire: "Run one batch of due payment expiries",
  deliver: "Run one batch of due webhook deliveries",
  retention: "Run one batch of data retention: erase personal data, raw Fiuu fields and webhook bodies past their RETENTION_* period",
};

const BatchResultSchema = z
  .object({
    job: z.enum(Object.keys(jobGroups) as [JobGroup, ...JobGroup[]]),
    claimed: z.number().int().openapi({ description: "Due jobs claimed by this batch" }),
    done: z.number().int(),
    retried: z.number().int().openapi({ description: "Jobs scheduled for another attempt" }),
    failed: z.number().int().openapi({ description: "Jobs given up on (runner said so, or attempts exhausted)" }),
  })
  .openapi("JobBatchResult");

function batchRoute<G extends JobGroup>(group: G) {
  return createRoute({
    method: "post",
    path: `/jobs/${group}` as `/jobs/${G}`,
    tags: ["Jobs"],
    summary: summaries[group],
    description: "Role `system`. For a scheduler (cron trigger, Kubernetes CronJob) where the Node server's own job loop does not run.",
    security: bearerAuth,
    middleware: [authenticate({ roles: ["system"] })] as const,
    responses: {
      200: { description: "What the batch did", content: { "application/json": { schema: BatchResultSchema } } },
      ...problems(401, 403, 503),
    },
  });
}

export interface JobRoutesOptions {
  /** Runners by kind; default the registered ones (`jobRunners()`). Tests pass their own. */
  runners?: JobRunners;
  /** Work to do before a group's batch, e.g. enqueue expiry jobs for payments past their time. */
  beforeBatch?: Partial<Record<JobGroup, (deps: AppDeps) => Promise<void>>>;
}

/** Jobs: run one batch of a job group now, for schedulers (role system). */
export function jobRoutes(options: JobRoutesOptions = {}) {
  const runners = options.runners ?? jobRunners();
  const run = async (deps: AppDeps, group: JobGroup) => {
    await options.beforeBatch?.[group]?.(deps);
    const result = await runJobBatch(deps, runners, { kinds: jobGroups[group] });
    return { job: group, ...result };
  };
  const deliver = async (deps: AppDeps) => {
    await options.beforeBatch?.deliver?.(deps);
    const { claimed, delivered, retried, failed } = await runDeliveryBatch(deps);
    return { job: "deliver" as const, claimed, done: delivered, retried, failed };
  };
  const retention = async (deps: AppDeps) => {
    await options.beforeBatch?.retention?.(deps);
    const result = await runRetentionBatch(deps);
    const done = result.backfilled + result.payments + result.gatewayMessages + result.events;
    return { job: "retention" as const, claimed: done, done, retried: 0, failed: 0 };
  };
  return createRouter()
    .openapi(batchRoute("reconcile"), async (c) => c.json(await run(c.get("deps"), "reconcile"), 200))
    .openapi(batchRoute("expire"), async (c) => c.json(await run(c.get("deps"), "expire"), 200))
    .openapi(batchRoute("deliver"), async (c) => c.json(await deliver(c.get("deps")), 200))
    .openapi(batchRoute("retention"), async (c) => c.json(await retention(c.get("deps")), 200));
}
