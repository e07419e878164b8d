import { errorName, rootCauseMessage } from "../../core/errors.js";
import type { AppDeps } from "../../domain/deps.js";
import { isUnavailableError } from "../../core/errors.js";

export interface BackgroundLoopOptions {
  /** Names the loop in log lines, e.g. "job batch". */
  name: string;
  /** Pause between rounds when the last one did not fill up (default 1000 ms). */
  intervalMs?: number;
  /** Longest pause after failing rounds; doubles from intervalMs with each failure (default 30 s). */
  maxErrorBackoffMs?: number;
}

/**
 * Runs `round` in the background of the Node server, one round at a time: the next at once when
 * the last one reports a backlog, else after intervalMs. A failing round (database down) is logged
 * and the loop carries on after a growing pause. stop() ends the ticking, aborts the signal the
 * round was given (so it can hand back work it has not started) and waits for it to finish.
 */
export function startBackgroundLoop(
  deps: AppDeps,
  round: (signal: AbortSignal) => Promise<{ backlog: boolean }>,
  options: BackgroundLoopOptions,
): { stop(): Promise<void> } {
  const { name, intervalMs = 1000, maxErrorBackoffMs = 30_000 } = options;
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
      const { backlog } = await round(abort.signal);
      failures = 0;
      schedule(backlog ? 0 : intervalMs);
    } catch (error) {
      failures++;
      const delay = Math.min(maxErrorBackoffMs, intervalMs * 2 ** Math.min(failures, 16));
      const fields = { error: errorName(error), cause: rootCauseMessage(error), failures, retry_in_ms: delay };
      if (isUnavailableError(error)) deps.logger.warn(fields, `${name} failed: database unavailable`);
      else deps.logger.error(fields, `${name} failed`);
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

/** An error's name and code, for logs (never its message, which may quote data). */
