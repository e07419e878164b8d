import { createRoute, z } from "@hono/zod-openapi";
import { authenticate } from "../lib/http/auth/middleware.js";
import type { JobRunners } from "../lib/ops/jobs/loop.js";
import { jobGroupNames, jobGroups, runJobGroup, type JobGroup } from "../lib/ops/jobs/table.js";
import { bearerAuth, createRouter, problems } from "../lib/http/openapi.js";

const BatchResultSchema = z
  .object({
    job: z.enum(jobGroupNames),
    claimed: z.number().int().openapi({ description: "Due jobs claimed by this batch" }),
    done: z.number().int(),
    retried: z.number().int().openapi({ description: "Jobs scheduled for another attempt" }),
    failed: z.number().int().openapi({ description: "Jobs given up on (runner said so, or attempts exhausted)" }),
  })
  .openapi("JobBatchResult");

function batchRoute(group: JobGroup) {
  return createRoute({
    method: "post",
    path: `/jobs/${group}`,
    tags: ["Jobs"],
    summary: jobGroups[group].summary,
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
  /** Runners by kind; default the table's (lib/ops/jobs/table.ts). Tests pass their own. */
  runners?: JobRunners;
}

/** Jobs: run one batch of a job group now, for schedulers (role system); one route per group of the table. */
export function jobRoutes(options: JobRoutesOptions = {}) {
  const router = createRouter();
  for (const group of jobGroupNames) {
    router.openapi(batchRoute(group), async (c) => c.json(await runJobGroup(c.get("deps"), group, options), 200));
  }
  return router;
}
