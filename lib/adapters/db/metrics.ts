import { eq, sql } from "drizzle-orm";
import { eventDeliveries } from "../../../drizzle/schema.js";
import type { Config } from "../../core/config.js";
import type { Metrics } from "../../core/metrics.js";
import { queryRows, type DatabaseHandle } from "./client.js";

/** The application_name of the service's postgres.js pool (set in lib/adapters/db/client.ts). */
export const poolApplicationName = "payment-service";

/**
 * Runs one database operation and records its duration, failed or not, in
 * db_query_duration_seconds{operation}. `operation` must be a fixed name, never an id.
 */
export async function timedQuery<T>(metrics: Pick<Metrics, "dbQueryDuration">, operation: string, run: () => Promise<T>): Promise<T> {
  const stop = metrics.dbQueryDuration.startTimer({ operation });
  try {
    return await run();
  } finally {
    stop();
  }
}

export interface DatabaseStats {
  sizeBytes: number;
  /** The server's view of every replica's connections (pg_stat_activity), by state. */
  connections: { active: number; idle: number; idle_in_transaction: number; other: number };
  /** This replica's pool size. */
  maxConnections: number;
  webhooks: { pending: number; oldestDueSeconds: number };
  /** Each public table's size (pg_total_relation_size) and live rows (statistics' estimate). */
  tables: { table: string; bytes: number; rows: number }[];
  /** Rows more than a day past their retention still holding data, by kind (absent when not read). */
  retentionOverdue?: { personal_data: number; gateway_messages: number; webhook_bodies: number };
}

/** Rows counted at most per overdue kind: enough to alert on, cheap at any table size. */
const overdueCountCap = 10_000;
const overdueGraceMs = 86_400_000;

/**
 * Reads what the database gauges show: size, connections, this replica's pool size and the
 * webhook backlog. Each query is timed under its own operation name.
 */
export async function readDatabaseStats(
  parts: {
    database: DatabaseHandle;
    metrics: Pick<Metrics, "dbQueryDuration">;
    config: Pick<Config, "database"> & Partial<Pick<Config, "retention">>;
  },
  now: Date,
): Promise<DatabaseStats> {
  const { database, metrics } = parts;
  const { db } = database;
  const [size] = await timedQuery(metrics, "database_size", () =>
    queryRows<{ bytes: string | number }>(db, sql`select pg_database_size(current_database())::bigint as bytes`),
  );
  const connections =
    database.kind === "embedded"
      ? // PGlite is one in-process connection that runs one query at a time.
        { active: 0, idle: 1, idle_in_transaction: 0, other: 0 }
      : await timedQuery(metrics, "connection_stats", () => readConnectionStats(database));
  const [backlog] = await timedQuery(metrics, "webhook_backlog", () =>
    db
      .select({
        pending: sql<number>`count(*)::int`,
        oldestDueSeconds: sql<
          number | null
        >`extract(epoch from (${now.toISOString()}::timestamptz - min(${eventDeliveries.nextAttemptAt}) filter (where ${eventDeliveries.nextAttemptAt} <= ${now.toISOString()}::timestamptz)))::float8`,
      })
      .from(eventDeliveries)
      .where(eq(eventDeliveries.status, "pending")),
  );
  const tables = await timedQuery(metrics, "table_sizes", () =>
    queryRows<{ table: string; bytes: string | number; rows: string | number | null }>(
      db,
      sql`select c.relname as table, pg_total_relation_size(c.oid)::bigint as bytes, s.n_live_tup::bigint as rows
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
          left join pg_stat_user_tables s on s.relid = c.oid
          where n.nspname = 'public' and c.relkind in ('r', 'p')
          order by c.relname`,
    ),
  );
  const { retention } = parts.config;
  const retentionOverdue = retention
    ? await timedQuery(metrics, "retention_overdue", () => readRetentionOverdue(database, retention, now))
    : undefined;
  return {
    tables: tables.map((t) => ({ table: t.table, bytes: Number(t.bytes), rows: Math.max(0, Number(t.rows ?? 0)) })),
    ...(retentionOverdue ? { retentionOverdue } : {}),
    sizeBytes: Number(size?.bytes ?? 0),
    connections,
    maxConnections: databasePoolSize(database, parts.config),
    webhooks: { pending: Number(backlog?.pending ?? 0), oldestDueSeconds: Math.max(0, Number(backlog?.oldestDueSeconds ?? 0)) },
  };
}

/**
 * Rows the retention job should have reached a day ago (lib/domain/retention/job.ts's rules, with a day's
 * grace): above zero for long, a table is growing faster than its retention allows.
 */
async function readRetentionOverdue(
  database: DatabaseHandle,
  retention: Config["retention"],
  now: Date,
): Promise<NonNullable<DatabaseStats["retentionOverdue"]>> {
  const before = (ms: number) => sql`${new Date(now.getTime() - ms - overdueGraceMs).toISOString()}::timestamptz`;
  const [row] = await queryRows<{ personal_data: number; gateway_messages: number; webhook_bodies: number }>(
    database.db,
    sql`select
          (select count(*) from (select 1 from payments p
            where p.erased_at is null and p.status in ('succeeded', 'failed', 'cancelled', 'expired') and p.updated_at < ${before(retention.personalDataMs)}
              and not exists (select 1 from refunds r where r.payment_id = p.id and (r.status = 'pending' or r.updated_at >= ${before(retention.personalDataMs)}))
            limit ${overdueCountCap}) as x)::int as personal_data,
          (select count(*) from (select 1 from gateway_messages
            where fields_erased_at is null and received_at < ${before(retention.gatewayMessagesMs)} and coalesce(last_received_at, received_at) < ${before(retention.gatewayMessagesMs)}
            limit ${overdueCountCap}) as x)::int as gateway_messages,
          (select count(*) from (select 1 from events e
            where e.data_erased_at is null and e.created_at < ${before(retention.webhookBodiesMs)}
              and not exists (select 1 from event_deliveries d where d.event_id = e.id and d.status = 'pending')
            limit ${overdueCountCap}) as x)::int as webhook_bodies`,
  );
  return {
    personal_data: Number(row?.personal_data ?? 0),
    gateway_messages: Number(row?.gateway_messages ?? 0),
    webhook_bodies: Number(row?.webhook_bodies ?? 0),
  };
}

/**
 * postgres.js keeps its connection queues private, so the connections are counted where they can
 * be seen: PostgreSQL's pg_stat_activity, by this pool's application_name, on this database. That
 * is every replica at once (the same numbers from each), not this process alone. The connection
 * running this query counts as idle: it is only busy measuring.
 */
async function readConnectionStats(database: DatabaseHandle): Promise<DatabaseStats["connections"]> {
  const [row] = await queryRows<{ active: number; idle: number; idle_in_transaction: number; total: number }>(
    database.db,
    sql`select
          count(*) filter (where state = 'active' and pid <> pg_backend_pid())::int as active,
          count(*) filter (where state = 'idle' or pid = pg_backend_pid())::int as idle,
          count(*) filter (where state like 'idle in transaction%' and pid <> pg_backend_pid())::int as idle_in_transaction,
          count(*)::int as total
        from pg_stat_activity
        where datname = current_database() and application_name = ${poolApplicationName}`,
  );
  const active = Number(row?.active ?? 0);
  const idle = Number(row?.idle ?? 0);
  const idleInTransaction = Number(row?.idle_in_transaction ?? 0);
  const other = Math.max(0, Number(row?.total ?? 0) - active - idle - idleInTransaction);
  return { active, idle, idle_in_transaction: idleInTransaction, other };
}

/** The pool size of this handle: postgres.js's own `options.max` (reached through Drizzle's $client), else the configured one. */
export function databasePoolSize(database: DatabaseHandle, config: Pick<Config, "database">): number {
  if (database.kind === "embedded") return 1;
  const client = (database.db as unknown as { $client?: { options?: { max?: unknown } } }).$client;
  const max = client?.options?.max;
  if (typeof max === "number" && max > 0) return max;
  return config.database.kind === "postgres" ? config.database.max : 1;
}

/** Sets the database gauges from a reading. */
export function recordDatabaseStats(metrics: Metrics, stats: DatabaseStats): void {
  metrics.dbSize.set(stats.sizeBytes);
  for (const [state, count] of Object.entries(stats.connections)) metrics.dbPoolConnections.set({ state }, count);
  metrics.dbPoolMax.set(stats.maxConnections);
  metrics.webhookDeliveriesPending.set(stats.webhooks.pending);
  metrics.webhookOldestDue.set(stats.webhooks.oldestDueSeconds);
  metrics.dbTableBytes.reset();
  metrics.dbTableRows.reset();
  for (const { table, bytes, rows } of stats.tables) {
    metrics.dbTableBytes.set({ table }, bytes);
    metrics.dbTableRows.set({ table }, rows);
  }
  metrics.retentionOverdue.reset();
  for (const [kind, count] of Object.entries(stats.retentionOverdue ?? {})) metrics.retentionOverdue.set({ kind }, count);
}

/**
 * Marks the database gauges unknown, so a failed reading shows as a gap rather than as stale
 * numbers: the labelled gauge loses its series, the unlabelled ones (which always have a
 * sample) read NaN, which compares false in every alert.
 */
export function clearDatabaseStats(metrics: Metrics): void {
  metrics.dbPoolConnections.reset();
  metrics.dbTableBytes.reset();
  metrics.dbTableRows.reset();
  metrics.retentionOverdue.reset();
  metrics.dbSize.set(Number.NaN);
  metrics.webhookDeliveriesPending.set(Number.NaN);
  metrics.webhookOldestDue.set(Number.NaN);
}
