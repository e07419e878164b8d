import type { JobGroup } from "../ops/jobs/table.js";
import type { WorkerIsolate } from "../app/worker.js";

// The Cloudflare Workers (workerd) entry: the same app and job runners as the Node server,
// configured from the Worker's bindings (composed by lib/app/worker.ts). Built by
// infra/functions/build.mjs into dist/functions/worker.js; deployed with infra/functions/wrangler.toml.
//
// Everything but types is imported dynamically, so the bundler defers its module code to the
// first event: workerd refuses some work at global scope (cockatiel creates AbortControllers at
// import), and an isolate should not pay for the app before it serves anything.

/** The service's modules, loaded on an isolate's first event. */
const loadModules = async () => {
  const [worker, jobs] = await Promise.all([import("../app/worker.js"), import("../ops/jobs/table.js")]);
  return {
    composeWorker: worker.composeWorker,
    jobGroupNames: jobs.jobGroupNames,
    cronGroups: jobs.cronGroups,
    runJobGroup: jobs.runJobGroup,
  };
};
type Modules = Awaited<ReturnType<typeof loadModules>>;

/** The Worker's bindings: plain-text vars and secrets, read like environment variables. */
export type WorkerEnv = Record<string, unknown>;

interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
  passThroughOnException?(): void;
}
interface ScheduledController {
  readonly cron: string;
  readonly scheduledTime: number;
}

/** What an isolate keeps between events: the loaded modules and the composed app (lib/app/worker.ts). */
interface Isolate extends WorkerIsolate {
  modules: Modules;
}

// A Worker reuses its isolate for many events; this cache lives here, in the entry, and nowhere else.
let isolate: { env: WorkerEnv; ready: Promise<Isolate> } | undefined;

function isolateFor(env: WorkerEnv): Promise<Isolate> {
  if (isolate?.env !== env) {
    const ready = buildIsolate(env);
    isolate = { env, ready };
    // A failed start-up (a bad binding) is retried on the next event rather than cached.
    ready.catch(() => {
      if (isolate?.ready === ready) isolate = undefined;
    });
  }
  return isolate.ready;
}

async function buildIsolate(env: WorkerEnv): Promise<Isolate> {
  const modules = await loadModules();
  return { modules, ...(await modules.composeWorker(bindingsAsEnvironment(env))) };
}

/** Runs an event's work with a database pool of its own, closed after the work (without delaying the answer). */
function withDatabase<T>(current: Isolate, ctx: ExecutionContext, work: () => Promise<T>): Promise<T> {
  return current.database.run(work, (closing) => ctx.waitUntil(closing));
}

/** Bindings as the string record loadConfig reads: strings kept, other bindings (KV, services) left out. */
function bindingsAsEnvironment(env: WorkerEnv): Record<string, string | undefined> {
  const source: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries(env)) if (typeof value === "string") source[key] = value;
  return source;
}

/** A 503 problem document for a Worker whose bindings do not parse; the details go to the log. */
function misconfigured(error: Error): Response {
  console.error(JSON.stringify({ level: "fatal", time: new Date().toISOString(), service: "payment-service", msg: error.message }));
  const body = { type: "about:blank", title: "Service Unavailable", status: 503, detail: "The service is not configured.", code: "unavailable" };
  return new Response(JSON.stringify(body), { status: 503, headers: { "content-type": "application/problem+json", "retry-after": "60" } });
}

export default {
  async fetch(request: Request, env: WorkerEnv, ctx: ExecutionContext): Promise<Response> {
    let current: Isolate;
    try {
      current = await isolateFor(env);
    } catch (error) {
      if (error instanceof Error && error.name === "ConfigError") return misconfigured(error);
      throw error;
    }
    return withDatabase(current, ctx, async () => current.app.fetch(request, env, ctx as never));
  },

  async scheduled(controller: ScheduledController, env: WorkerEnv, ctx: ExecutionContext): Promise<void> {
    const current = await isolateFor(env);
    const log = current.deps.logger;
    // The groups of the trigger's schedule (cronGroups, lib/ops/jobs/table.ts; wrangler.toml lists the same crons). A cron not
    // there runs every group: each batch only claims what is due, so an extra run costs a few queries, never a double payment.
    const listed = current.modules.cronGroups[controller.cron];
    if (!listed) log.warn({ cron: controller.cron }, "cron trigger not in cronGroups; running every job group");
    const groups: readonly JobGroup[] = listed ?? current.modules.jobGroupNames;
    const failures: unknown[] = [];
    await withDatabase(current, ctx, async () => {
      // One group failing (e.g. Fiuu down) does not keep the others from running.
      for (const group of groups) {
        try {
          log.info({ cron: controller.cron, ...(await current.modules.runJobGroup(current.deps, group)) }, "scheduled job batch");
        } catch (error) {
          failures.push(error);
          log.error({ cron: controller.cron, job: group, err: error }, "scheduled job batch failed");
        }
      }
    });
    // Thrown, so the Cloudflare dashboard shows the run as failed.
    if (failures.length > 0) throw failures[0];
  },
};
