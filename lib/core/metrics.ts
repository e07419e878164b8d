import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** The service's Prometheus metrics (names fixed by DESIGN.md), on their own registry. */
export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

  return {
    registry,
    httpRequests: new Counter({
      name: "http_requests_total",
      help: "HTTP requests answered, by route template",
      labelNames: ["method", "route", "status_code"] as const,
      registers,
    }),
    httpDuration: new Histogram({
      name: "http_request_duration_seconds",
      help: "HTTP request duration",
      labelNames: ["method", "route", "status_code"] as const,
      buckets: latencyBuckets,
      registers,
    }),
    payments: new Counter({
      name: "payments_total",
      help: "Payments reaching a status",
      labelNames: ["status", "channel"] as const,
      registers,
    }),
    paymentAmount: new Histogram({
      name: "payment_amount",
      help: "Amounts of succeeded payments, in major units",
      labelNames: ["currency"] as const,
      buckets: [1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000],
      registers,
    }),
    paymentProcessingDuration: new Histogram({
      name: "payment_processing_duration_seconds",
      help: "Time from payment creation to a final status",
      labelNames: ["status"] as const,
      buckets: [1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600],
      registers,
    }),
    paymentEvents: new Counter({
      name: "payment_events_total",
      help: "Payment and refund events committed to the outbox, by type",
      labelNames: ["type"] as const,
      registers,
    }),
    refunds: new Counter({ name: "refunds_total", help: "Refunds reaching a status", labelNames: ["status"] as const, registers }),
    fiuuRequests: new Counter({
      name: "fiuu_requests_total",
      help: "Requests to Fiuu's APIs",
      labelNames: ["operation", "outcome"] as const,
      registers,
    }),
    fiuuDuration: new Histogram({
      name: "fiuu_request_duration_seconds",
      help: "Duration of requests to Fiuu's APIs",
      labelNames: ["operation"] as const,
      buckets: latencyBuckets,
      registers,
    }),
    fiuuBreaker: new Gauge({
      name: "fiuu_circuit_breaker_state",
      help: "Fiuu circuit breaker: 0 closed, 1 open, 2 half-open",
      labelNames: ["merchant_id"] as const,
      registers,
    }),
    fiuuMisconfigured: new Counter({
      name: "fiuu_misconfiguration_total",
      help: "Fiuu answers that mean this service is misconfigured or has a bug (wrong keys, merchant, host, a missing or invalid field), by operation and Fiuu's code",
      labelNames: ["operation", "code"] as const,
      registers,
    }),
    fiuuRetries: new Counter({ name: "fiuu_retry_attempts_total", help: "Retried requests to Fiuu", registers }),
    fiuuMessages: new Counter({
      name: "fiuu_messages_total",
      help: "Messages received from Fiuu, by kind and outcome",
      labelNames: ["kind", "outcome"] as const,
      registers,
    }),
    webhookDeliveries: new Counter({
      name: "webhook_deliveries_total",
      help: "Outgoing webhook delivery attempts",
      labelNames: ["outcome"] as const,
      registers,
    }),
    jobsPending: new Gauge({ name: "jobs_pending", help: "Pending background jobs", labelNames: ["kind"] as const, registers }),
    dbQueryDuration: new Histogram({
      name: "db_query_duration_seconds",
      // Covers what is wrapped in timedQuery (lib/adapters/db/metrics.ts): today the scrape-time probes
      // (readiness, size, connection and webhook-backlog queries); wrap transactions to add them.
      help: "Duration of timed database operations, by operation (see timedQuery in lib/adapters/db/metrics.ts)",
      labelNames: ["operation"] as const,
      buckets: latencyBuckets,
      registers,
    }),
    dbPoolConnections: new Gauge({
      name: "db_pool_connections",
      // postgres.js keeps its pool private, so this is PostgreSQL's own view (pg_stat_activity),
      // read at scrape time: every replica reports the same cluster-wide numbers.
      help: "Connections of all payment-service replicas to this database as PostgreSQL sees them (pg_stat_activity, application_name payment-service), by state: active, idle, idle_in_transaction, other; embedded PGlite: one idle connection",
      labelNames: ["state"] as const,
      registers,
    }),
    dbSize: new Gauge({ name: "db_size_bytes", help: "Database size on disk (pg_database_size), read at scrape time", registers }),
    dbTableBytes: new Gauge({
      name: "db_table_bytes",
      help: "Size on disk of each of the service's tables, indexes and TOAST included (pg_total_relation_size), read at scrape time",
      labelNames: ["table"] as const,
      registers,
    }),
    dbTableRows: new Gauge({
      name: "db_table_rows",
      help: "Live rows of each of the service's tables (PostgreSQL's statistics, n_live_tup: an estimate), read at scrape time",
      labelNames: ["table"] as const,
      registers,
    }),
    retentionOverdue: new Gauge({
      name: "retention_overdue_rows",
      help: "Rows still holding data more than a day past their RETENTION_* period (the retention job is not keeping up), by kind: personal_data, gateway_messages, webhook_bodies; counted up to 10000",
      labelNames: ["kind"] as const,
      registers,
    }),
    retentionErased: new Counter({
      name: "retention_erased_total",
      help: "Rows whose data the retention job erased, by kind: personal_data (payments), gateway_messages (raw fields), webhook_bodies (event bodies)",
      labelNames: ["kind"] as const,
      registers,
    }),
    dbPoolMax: new Gauge({
      name: "db_pool_max_connections",
      help: "This replica's database pool size (DB_MAX_CONNECTIONS; 1 for embedded PGlite): sum over replicas for the capacity behind db_pool_connections",
      registers,
    }),
    readinessCheck: new Gauge({
      name: "readiness_check_up",
      help: "1 when the readiness check (the same as /ready) passed at the last scrape-time refresh, 0 when it failed, by check: database, redis",
      labelNames: ["check"] as const,
      registers,
    }),
    webhookDeliveriesPending: new Gauge({
      name: "webhook_deliveries_pending",
      help: "Outgoing webhook deliveries still pending (due now or waiting for a retry), all receivers and replicas, read at scrape time",
      registers,
    }),
    webhookOldestDue: new Gauge({
      name: "webhook_deliveries_oldest_due_seconds",
      help: "How long the oldest due, pending webhook delivery has been waiting for its attempt (0 when none is due), read at scrape time",
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
