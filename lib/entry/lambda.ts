import { handle, type LambdaContext, type LambdaEvent } from "hono/aws-lambda";
import { isJobGroup, jobGroupNames, runJobGroup } from "../ops/jobs/table.js";
import { createApp } from "../app/app.js";
import { composedOnce, functionsDeps } from "../app/functions.js";

// The AWS Lambda entry (runtime nodejs24.x, whose handlers must be async, as these are): the same
// app behind API Gateway (REST or HTTP API), a Function URL or an ALB, configured from the
// function's environment variables.
//   handler: dist/lib/entry/lambda.handler   HTTP events
//   jobs:    dist/lib/entry/lambda.jobs      EventBridge Scheduler, input {"group":"reconcile"}

/** Composes the app once per execution environment (Lambda reuses it between invocations). */
const compose = composedOnce(async () => {
  const deps = await functionsDeps(process.env);
  return { app: createApp(deps), deps };
});

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
