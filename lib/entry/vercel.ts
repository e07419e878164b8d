import { timingSafeEqual } from "node:crypto";
import { getRequestListener } from "@hono/node-server";
import { createApp, type App } from "../app/app.js";
import { isJobGroup, runJobGroup } from "../ops/jobs/table.js";
import { ConfigError, loadConfig } from "../core/config.js";
import { buildDeps } from "../app/deps.js";
import { ApiError } from "../core/errors.js";

// The Vercel Functions entry (Node.js runtime): the same app, configured from the project's
// environment variables, as a Node request listener (`export default (req, res)`). Bundled into
// .vercel/output by `node infra/functions/build.mjs --vercel` (see infra/functions/vercel.json).
//
// Vercel Cron sends GET requests with `Authorization: Bearer $CRON_SECRET`, while the job routes
// are `POST /jobs/<group>` for a `system` JWT. So this entry adds `GET /jobs/<group>`, accepted
// only with CRON_SECRET, which runs the same batch and gives the same answer.

let ready: Promise<App> | undefined;

/** Composes the app once per function instance (instances are reused between invocations). */
function compose(): Promise<App> {
  ready ??= (async () => {
    const parsed = loadConfig(process.env);
    if (parsed.database.kind !== "postgres") throw new ConfigError(["DATABASE_URL: required by the functions build (or DB_HOST)"]);
    // An instance serves few requests at once: a small pool each, however many instances.
    const config = { ...parsed, database: { ...parsed.database, max: Math.min(parsed.database.max, 5) } };
    const deps = await buildDeps(config, { migrate: false });
    const cronSecret = process.env.CRON_SECRET;
    const app = createApp(deps, {
      extraRoutes: (router) => {
        router.get("/jobs/:group", async (c) => {
          if (!cronSecret || !sameText(c.req.header("authorization") ?? "", `Bearer ${cronSecret}`)) {
            throw new ApiError("unauthenticated", "A cron call needs Authorization: Bearer $CRON_SECRET.");
          }
          const group = c.req.param("group");
          if (!isJobGroup(group)) throw new ApiError("not_found", `No route for ${c.req.method} ${c.req.path}.`);
          return c.json(await runJobGroup(c.get("deps"), group), 200);
        });
      },
    });
    return app;
  })().catch((error: unknown) => {
    ready = undefined; // a failed start-up is retried on the next request, not cached
    throw error;
  });
  return ready;
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export default getRequestListener(async (request) => (await compose()).fetch(request));
