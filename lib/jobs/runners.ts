import { runExpire, runIpnEcho, runRequery } from "../payments/reconcile.js";
import { runRefundPoll } from "../refunds/jobs.js";
import type { JobRunners } from "./loop.js";

/** Runners by job kind; each kind's module registers here. */
export function jobRunners(): JobRunners {
  return {
    ipn_echo: runIpnEcho,
    requery: runRequery,
    expire: runExpire,
    refund_poll: runRefundPoll,
  };
}
