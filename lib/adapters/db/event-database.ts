import { AsyncLocalStorage } from "node:async_hooks";
import type { Config } from "../../core/config.js";
import { openPostgres, type DatabaseHandle } from "./client.js";

type PostgresSettings = Extract<Config["database"], { kind: "postgres" }>;

/** A database per event: one handle that stands for the pool of the event in progress, and the way to run an event on a pool of its own. */
export interface EventDatabase {
  /** The app's `deps.database`: each call goes to the pool of the event in progress. */
  handle: DatabaseHandle;
  /** Runs an event's work on a pool of its own; `waitUntil` is handed the pool's closing, so the answer is not delayed by it. */
  run<T>(work: () => Promise<T>, waitUntil: (promise: Promise<unknown>) => void): Promise<T>;
}

/**
 * Databases for workerd, which refuses to let one request use a socket another request opened:
 * each request and each scheduled run opens its own small postgres.js pool (connecting on first
 * query) and closes it when done, found by the handle through AsyncLocalStorage.
 */
export function createEventDatabase(database: PostgresSettings): EventDatabase {
  const databases = new AsyncLocalStorage<DatabaseHandle>();
  const current = () => {
    const handle = databases.getStore();
    if (!handle) throw new Error("no database outside a request or scheduled run");
    return handle;
  };
  const handle: DatabaseHandle = {
    kind: "postgres",
    get db() {
      return current().db;
    },
    get url() {
      return current().url;
    },
    exec: (text) => current().exec(text),
    // Each event's pool is closed by run.
    close: async () => {},
  };
  return {
    handle,
    async run(work, waitUntil) {
      // A few connections: a transaction may hold one while the same request reads with another.
      // Workers allow six open connections per event, fetches to Redis and Fiuu included.
      const pool = await openPostgres(database.url, { ...database, max: Math.min(database.max, 4), idle: 0 });
      try {
        return await databases.run(pool, work);
      } finally {
        waitUntil(pool.close().catch(() => {}));
      }
    },
  };
}
