import type { Metrics } from "./metrics.js";

// Metrics for workerd: prom-client needs node:cluster and node:v8, which workerd has not, and a
// Worker has no /metrics port to scrape. Imports only a type, so the Workers bundle carries no prom-client.

/** A metric that records nothing but answers every call prom-client's metrics answer. */
const noopMetric = {
  inc() {},
  dec() {},
  set() {},
  observe() {},
  reset() {},
  remove() {},
  startTimer: () => () => 0,
  labels: () => noopMetric,
  get: async () => ({ values: [] }),
};

/** The service's metrics object with every metric a no-op (a Worker has nothing to scrape). */
export function createNoopMetrics(): Metrics {
  return new Proxy({} as Metrics, {
    get: (_target, property) => (property === "registry" ? { metrics: async () => "", contentType: "text/plain" } : noopMetric),
  });
}
