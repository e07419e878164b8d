import { runExpire, runIpnEcho, runRequery } from "../../domain/payments/reconcile.js";
import { runRefundPoll } from "../../domain/refunds/jobs.js";
import type { JobRunners } from "./loop.js";

/** Runners by job kind; each kind's module registers here. */
export function jobRunners(): JobRunners {
  return {
    ipn_echo: runIpnEcho,
    // Requeries and expiries share the merchant's one query slot (FIUU.md §3: one query per 5 s):
    // they run one at a time, oldest due first, so the oldest waiting job takes the next slot; and a
    // batch claims only two requeries, as it can use one slot at most (the rest wait in line).
    requery: { run: runRequery, perBatch: 2, serial: true },
    expire: { run: runExpire, serial: true },
    refund_poll: runRefundPoll,
  };
}
