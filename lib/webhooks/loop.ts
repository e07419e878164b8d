import type { AppDeps } from "../context.js";
import { isUnavailableError } from "../errors.js";
import { runDeliveryBatch, type DeliveryBatchOptions } from "./deliver.js";

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
  const { intervalMs = 1000, maxErrorBackoffMs = 30_000, ...batchOptions } = options;
  const limit = batchOptions.limit ?? 20;
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  let failures = 0;

  const schedule = (delayMs: number) => {
    if (abort.signal.aborted) return;
    timer = setTimeout(() => {
      timer = undefined;
      inFlight = tick().finally(() => (inFlight = undefined));
    }, delayMs);
    timer.unref();
  };

  const tick = async () => {
    try {
      const result = await runDeliveryBatch(deps, { ...batchOptions, signal: abort.signal });
      failures = 0;
      schedule(result.claimed >= limit ? 0 : intervalMs);
    } catch (error) {
      failures++;
      const delay = Math.min(maxErrorBackoffMs, intervalMs * 2 ** Math.min(failures, 16));
      const name = error instanceof Error ? error.name : typeof error;
      const fields = { error: name, failures, retry_in_ms: delay };
      if (isUnavailableError(error)) deps.logger.warn(fields, "webhook batch failed: database unavailable");
      else deps.logger.error({ ...fields, message: error instanceof Error && !error.message.startsWith("Failed query") ? error.message : undefined }, "webhook batch failed");
      schedule(delay);
    }
  };

  schedule(0);

  let stopping: Promise<void> | undefined;
  return {
    stop: () =>
      (stopping ??= (async () => {
        abort.abort();
        if (timer) clearTimeout(timer);
        timer = undefined;
        await inFlight;
      })()),
  };
}
