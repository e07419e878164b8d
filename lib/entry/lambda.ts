import { handle, type LambdaContext, type LambdaEvent } from "hono/aws-lambda";
import { isJobGroup, jobGroupNames, runJobGroup } from "../ops/jobs/table.js";
import { createApp, type App } from "../app/app.js";
import { ConfigError, loadConfig } from "../core/config.js";
import type { AppDeps } from "../domain/deps.js";
import { buildDeps } from "../app/deps.js";

// The AWS Lambda entry (runtime nodejs24.x, whose handlers must be async, as these are): the same
// app behind API Gateway (REST or HTTP API), a Function URL or an ALB, configured from the
// function's environment variables.
//   handler: dist/lib/entry/lambda.handler   HTTP events
//   jobs:    dist/lib/entry/lambda.jobs      EventBridge Scheduler, input {"group":"reconcile"}

let ready: Promise<{ app: App; deps: AppDeps }> | undefined;

/** Composes the app once per execution environment (Lambda reuses it between invocations). */
function compose() {
  ready ??= (async () => {
    const parsed = loadConfig(process.env);
    if (parsed.database.kind !== "postgres") throw new ConfigError(["DATABASE_URL: required by the functions build (or DB_HOST)"]);
    // An environment serves one request at a time: a small pool each, however many environments.
    const config = { ...parsed, database: { ...parsed.database, max: Math.min(parsed.database.max, 5) } };
    const deps = await buildDeps(config, { migrate: false });
    return { app: createApp(deps), deps };
  })().catch((error: unknown) => {
    ready = undefined; // a failed start-up is retried on the next invocation, not cached
    throw error;
  });
  return ready;
}

/** API Gateway / Function URL / ALB events → the app. */
export async function handler(event: LambdaEvent, context?: LambdaContext) {
  const { app } = await compose();
  return handle(app)(event, context);
}

/**
 * One batch of a job group (`{ "group": "reconcile" | "expire" | "deliver" | "retention" }`): the
 * same work, and the same answer, as a scheduler calling `POST /jobs/<group>` gets.
 */
export async function jobs(event: { group?: string }) {
  const group = String(event?.group);
  if (!isJobGroup(group)) throw new Error(`unknown job group ${JSON.stringify(event?.group)}; expected one of ${jobGroupNames.join(", ")}`);
  const { deps } = await compose();
  return runJobGroup(deps, group);
}
