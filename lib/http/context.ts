import type { Context } from "hono";
import type { AppDeps, Principal } from "../domain/deps.js";
import type { Logger } from "../core/logger.js";
import { actorOf } from "../domain/audit.js";

/** Hono's environment type: what middleware puts on the context for handlers to read with c.get() (not c.var, which copies every variable on each read). */
export interface AppEnv {
  Variables: {
    deps: AppDeps;
    requestId: string;
    /** The request's logger, once made: read it with requestLog(c). */
    log: Logger;
    principal: Principal;
  };
}

/**
 * The request's logger (a pino child binding its request id), made on first use: pino redacts a
 * child's bindings when it makes one, and most requests log nothing but their closing line, which
 * the root logger writes with the id. Undefined before the app's first middleware has run.
 */
export function requestLog(c: Context<AppEnv>): Logger | undefined {
  let log = c.get("log");
  if (log === undefined) {
    const deps = c.get("deps");
    if (deps === undefined) return undefined;
    log = deps.logger.child({ request_id: c.get("requestId") });
    c.set("log", log);
  }
  return log;
}

/** The actor and request id of the current request, for audit entries. */
export function auditContext(c: Context<AppEnv>, paymentId?: string) {
  return { actor: actorOf(c.get("principal"), paymentId), requestId: c.get("requestId") };
}
