import { timingSafeEqual } from "node:crypto";
import { getRequestListener } from "@hono/node-server";
import { createApp } from "../app/app.js";
import { isJobGroup, runJobGroup } from "../ops/jobs/table.js";
import { composedOnce, functionsDeps } from "../app/functions.js";
import { ApiError } from "../core/errors.js";

// The Vercel Functions entry (Node.js runtime): the same app, configured from the project's
// environment variables, as a Node request listener (`export default (req, res)`). Bundled into
// .vercel/output by `node infra/functions/build.mjs --vercel` (see infra/functions/vercel.json).
//
// Vercel Cron sends GET requests with `Authorization: Bearer $CRON_SECRET`, while the job routes
// are `POST /jobs/<group>` for a `system` JWT. So this entry adds `GET /jobs/<group>`, accepted
// only with CRON_SECRET, which runs the same batch and gives the same answer.

/** Composes the app once per function instance (instances are reused between invocations). */
const compose = composedOnce(async () => {
  const deps = await functionsDeps(process.env);
  const cronSecret = process.env.CRON_SECRET;
  return createApp(deps, {
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
});

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export default getRequestListener(async (request) => (await compose()).fetch(request));
