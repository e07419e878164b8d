import { handle, type LambdaContext, type LambdaEvent } from "hono/aws-lambda";
import { jobGroups } from "../../handlers/jobs.js";
import { createApp, type App } from "../app/app.js";
import { signToken } from "../http/auth/tokens.js";
import { ConfigError, loadConfig, type Config } from "../core/config.js";
import { buildDeps } from "../app/deps.js";

// The AWS Lambda entry (runtime nodejs24.x, whose handlers must be async, as these are): the same
// app behind API Gateway (REST or HTTP API), a Function URL or an ALB, configured from the
// function's environment variables.
//   handler: dist/lib/entry/lambda.handler   HTTP events
//   jobs:    dist/lib/entry/lambda.jobs      EventBridge Scheduler, input {"group":"reconcile"}

let ready: Promise<{ app: App; config: Config }> | undefined;

/** Composes the app once per execution environment (Lambda reuses it between invocations). */
function compose() {
  ready ??= (async () => {
    const parsed = loadConfig(process.env);
    if (parsed.database.kind !== "postgres") throw new ConfigError(["DATABASE_URL: required by the functions build (or DB_HOST)"]);
    // An environment serves one request at a time: a small pool each, however many environments.
    const config = { ...parsed, database: { ...parsed.database, max: Math.min(parsed.database.max, 5) } };
    const deps = await buildDeps(config, { migrate: false });
    return { app: createApp(deps), config };
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
 * One batch of a job group (`{ "group": "reconcile" | "expire" | "deliver" }`), run through the
 * app's own `POST /jobs/<group>` with a short-lived system token: the same work a scheduler
 * calling that route gets.
 */
export async function jobs(event: { group?: string }) {
  const group = String(event?.group);
  if (!Object.hasOwn(jobGroups, group)) throw new Error(`unknown job group ${JSON.stringify(event?.group)}; expected one of ${Object.keys(jobGroups).join(", ")}`);
  const { app, config } = await compose();
  const token = await signToken(config.jwtSecret!, { sub: "scheduler:eventbridge", role: "system", ttlSeconds: 300 });
  const answer = await app.fetch(new Request(`${config.publicUrl}/jobs/${group}`, { method: "POST", headers: { authorization: `Bearer ${token}` } }));
  if (!answer.ok) throw new Error(`POST /jobs/${group} answered ${answer.status}: ${await answer.text()}`);
  return answer.json();
}
