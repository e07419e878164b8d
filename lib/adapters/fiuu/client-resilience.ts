import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  ExponentialBackoff,
  TimeoutStrategy,
  circuitBreaker,
  halfJitterGenerator,
  handleType,
  handleWhen,
  retry,
  TaskCancelledError,
  timeout,
} from "cockatiel";
import type { Config } from "../../core/config.js";
import type { FormPost } from "./form-post.js";
import type { Logger } from "../../core/logger.js";
import type { Metrics } from "../../core/metrics.js";
import { FiuuProtocolError, FiuuUnavailableError } from "./client-errors.js";

// Timeout, retry and circuit breaker around every request to Fiuu (DESIGN.md "Talking to Fiuu"),
// with cockatiel. Per attempt: breaker → timeout → fetch and read the body. Around the attempts: a
// retry with exponential backoff and jitter, for FiuuUnavailableError (and a retryable protocol
// error) only, and never once the breaker is open. All state belongs to one client.

export type FiuuOperation = "requery" | "echo" | "refund" | "refund_status";
export type FiuuOutcome = "success" | "error" | "timeout" | "rejected" | "breaker_open";
export type BreakerState = "closed" | "open" | "half-open";

/** What one request to Fiuu is: where it goes, the form it sends, and how its answer is read. */
export interface FiuuExchange<T> {
  operation: FiuuOperation;
  url: string;
  form: Record<string, string>;
  /** Extra request headers (the refund's idempotency-key). */
  headers?: Record<string, string>;
  /** Reads the answer; throws FiuuProtocolError (or FiuuUnavailableError) to refuse it. */
  interpret(answer: { status: number; body: string }): { value: T; outcome: "success" | "rejected" };
}

export interface ResilienceOptions {
  fiuu: Pick<Config["fiuu"], "timeoutMs" | "retryAttempts" | "retryDelayMs">;
  merchantId: string;
  metrics: Metrics;
  logger: Logger;
  post: FormPost;
  consecutiveFailures: number;
  halfOpenAfterMs: number;
}

const gaugeValues: Record<CircuitState, number> = {
  [CircuitState.Closed]: 0,
  [CircuitState.Open]: 1,
  [CircuitState.HalfOpen]: 2,
  [CircuitState.Isolated]: 1,
};
const stateNames: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: "closed",
  [CircuitState.Open]: "open",
  [CircuitState.HalfOpen]: "half-open",
  [CircuitState.Isolated]: "open",
};

// Fiuu saying "not now" rather than "no": worth asking again later, and a sign it is struggling.
const unavailableStatuses = new Set([408, 429]);

// instanceof, not cockatiel's isTaskCancelledError(): in 3.2.1 that helper tests the wrong marker
// property and never recognises a timeout.
const isTimeout = (error: unknown): boolean => error instanceof TaskCancelledError;

function outcomeOf(error: unknown): FiuuOutcome {
  if (error instanceof FiuuUnavailableError) {
    return error.reason === "timeout" ? "timeout" : error.reason === "breaker_open" ? "breaker_open" : "error";
  }
  // An error code is Fiuu refusing the request; no code means this service refused Fiuu's answer.
  if (error instanceof FiuuProtocolError && error.code !== undefined) return "rejected";
  return "error";
}

/** Builds the per-client runner: `run(exchange)` sends one logical request with all the guards. */
export function createResilience(options: ResilienceOptions) {
  const { fiuu, merchantId, metrics, logger } = options;
  const labels = { merchant_id: merchantId };

  // Only "Fiuu could not be asked" counts against Fiuu: an answer, even a refusal, shows it is up.
  const breaker = circuitBreaker(handleType(FiuuUnavailableError), {
    halfOpenAfter: options.halfOpenAfterMs,
    breaker: new ConsecutiveBreaker(options.consecutiveFailures),
  });
  breaker.onStateChange((state) => {
    metrics.fiuuBreaker.set(labels, gaugeValues[state]);
    // The merchant id only: never keys, signatures or what was being asked.
    logger.warn({ merchantId, breaker: stateNames[state] }, `Fiuu circuit breaker ${stateNames[state]}`);
  });
  metrics.fiuuBreaker.set(labels, gaugeValues[breaker.state]);

  // Aggressive: the attempt fails at the deadline even when an injected fetch ignores the signal.
  // Not aborted on return: an attempt returns only once it has read the whole answer, so there is
  // nothing left to cancel, and each abort would build an exception and dispatch an event.
  const deadline = timeout(fiuu.timeoutMs, { strategy: TimeoutStrategy.Aggressive, abortOnReturn: false });

  const retries = retry(
    handleWhen((error) => {
      if (breaker.state === CircuitState.Open || breaker.state === CircuitState.Isolated) return false;
      if (error instanceof FiuuUnavailableError) return error.reason !== "breaker_open";
      return error instanceof FiuuProtocolError && error.retryable;
    }),
    {
      maxAttempts: fiuu.retryAttempts,
      backoff: new ExponentialBackoff({
        initialDelay: fiuu.retryDelayMs,
        maxDelay: Math.max(30_000, fiuu.retryDelayMs),
        // Each delay is random in [d/2, d) with d doubling from retryDelayMs: replicas retrying
        // after the same outage spread out instead of arriving together.
        generator: halfJitterGenerator,
      }),
    },
  );
  retries.onRetry(() => metrics.fiuuRetries.inc());

  async function exchangeOnce(exchange: FiuuExchange<unknown>, signal: AbortSignal): Promise<{ status: number; body: string }> {
    let status: number;
    let body: string;
    try {
      ({ status, body } = await options.post(exchange.url, new URLSearchParams(exchange.form).toString(), signal, exchange.headers));
    } catch (error) {
      if (isTimeout(error) || signal.aborted) throw new FiuuUnavailableError("timeout", `Fiuu did not answer within ${fiuu.timeoutMs} ms`);
      throw new FiuuUnavailableError("network", `Fiuu could not be reached (${exchange.operation})`, { cause: error });
    }
    if (status >= 500 || unavailableStatuses.has(status)) {
      throw new FiuuUnavailableError("http_status", `Fiuu answered HTTP ${status} (${exchange.operation})`, { status });
    }
    return { status, body };
  }

  async function attempt<T>(exchange: FiuuExchange<T>, retryNumber: number): Promise<T> {
    const { operation } = exchange;
    if (retryNumber > 0) logger.debug({ merchantId, operation, retry: retryNumber }, "retrying a Fiuu request");
    try {
      const { value, outcome } = await breaker.execute(async () => {
        const stopTimer = metrics.fiuuDuration.startTimer({ operation });
        try {
          const answer = await deadline.execute((_context, signal) => exchangeOnce(exchange, signal));
          return exchange.interpret(answer);
        } catch (error) {
          if (isTimeout(error)) throw new FiuuUnavailableError("timeout", `Fiuu did not answer within ${fiuu.timeoutMs} ms`);
          throw error;
        } finally {
          stopTimer();
        }
      });
      metrics.fiuuRequests.inc({ operation, outcome });
      return value;
    } catch (raw) {
      const error =
        raw instanceof BrokenCircuitError
          ? new FiuuUnavailableError("breaker_open", "the Fiuu circuit breaker is open; not asking until it half-opens")
          : raw;
      metrics.fiuuRequests.inc({ operation, outcome: outcomeOf(error) });
      throw error;
    }
  }

  return {
    /** Sends one request with timeout, breaker and (where the caller says it is safe) retries. */
    run<T>(exchange: FiuuExchange<T>, options: { retry: boolean }): Promise<T> {
      if (!options.retry) return attempt(exchange, 0);
      return retries.execute(({ attempt: retryNumber }) => attempt(exchange, retryNumber));
    },
    breakerState(): BreakerState {
      return stateNames[breaker.state];
    },
  };
}
