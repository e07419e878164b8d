import type { AppDeps } from "../../domain/deps.js";
import { startBackgroundLoop } from "./background.js";
import { runDeliveryBatch, type DeliveryBatchOptions } from "../../domain/webhooks/deliver.js";

export interface DeliveryLoopOptions extends Omit<DeliveryBatchOptions, "signal"> {
  /** Pause between batches when the last one did not fill up (default 1000 ms). */
  intervalMs?: number;
  /** Longest pause after failing batches; doubles from intervalMs with each failure (default 30 s). */
  maxErrorBackoffMs?: number;
}

/**
 * Sends webhooks in the background of the Node server: one batch at a time, the next at once when
 * the last one filled up, else after intervalMs; a failing batch (database down) is logged and
 * retried after a growing pause. Replicas share the rows through SKIP LOCKED. stop() ends the
 * ticking, lets the sends in flight finish (each bounded by WEBHOOK_TIMEOUT) and releases the
 * deliveries claimed but not started.
 */
export function startDeliveryLoop(deps: AppDeps, options: DeliveryLoopOptions = {}): { stop(): Promise<void> } {
  const { intervalMs, maxErrorBackoffMs, ...batchOptions } = options;
  const limit = batchOptions.limit ?? 20;
  return startBackgroundLoop(
    deps,
    async (signal) => ({ backlog: (await runDeliveryBatch(deps, { ...batchOptions, signal })).claimed >= limit }),
    { name: "webhook batch", intervalMs, maxErrorBackoffMs },
  );
}
