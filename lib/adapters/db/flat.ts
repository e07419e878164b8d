import { getTableName, SQL, StringChunk, Table } from "drizzle-orm";
import { getTableConfig, type PgTable } from "drizzle-orm/pg-core";
import type { Database } from "./client.js";

// Everything here depends on Drizzle's internals (the chunks of a `sql` template, the session
// behind a database or transaction, the PGlite driver's query options): drizzle-orm is pinned to
// the exact version these were written against (package.json, docs/performance.md), and
// tests/unit/flat-sql.test.ts and tests/integration/db-helpers.test.ts fail when it differs.

/** A statement as the driver takes it: text with $1… placeholders, and the values in order. */
export interface FlatQuery {
  sql: string;
  params: unknown[];
}

/**
 * Builds the text and parameters of a `sql` template made only of text, plain values (strings,
 * numbers, booleans, null), tables and nested templates: the hot statements' shapes. Drizzle's own
 * builder gives the same result but tests every chunk against a dozen classes by walking its
 * prototype chain, which for a report's writes cost about 0.2 ms of CPU per request, more than
 * the driver's work on them. Anything else (columns, Param, arrays, inlined params) answers
 * undefined, for Drizzle to build as usual.
 */
export function flattenSql(query: SQL): FlatQuery | undefined {
  const params: unknown[] = [];
  let text = "";
  const walk = (chunks: readonly unknown[]): boolean => {
    for (const chunk of chunks) {
      if (chunk instanceof StringChunk) {
        text += chunk.value.join("");
      } else if (chunk instanceof SQL) {
        // A template marked to inline its values (`.inlineParams()`) is left to Drizzle.
        if ((chunk as unknown as { shouldInlineParams: boolean }).shouldInlineParams || !walk(chunk.queryChunks)) return false;
      } else if (chunk === null || typeof chunk === "string" || typeof chunk === "number" || typeof chunk === "boolean") {
        params.push(chunk);
        text += `$${params.length}`;
      } else if (chunk instanceof Table && !inSchema(chunk as PgTable)) {
        text += quoteName(getTableName(chunk));
      } else {
        return false;
      }
    }
    return true;
  };
  return walk([query]) ? { sql: text, params } : undefined;
}

const tableSchemas = new WeakMap<PgTable, boolean>();
/** Whether a table lives in a named Postgres schema (none of ours does): such names are left to Drizzle. */
function inSchema(table: PgTable): boolean {
  let named = tableSchemas.get(table);
  if (named === undefined) {
    named = getTableConfig(table).schema !== undefined;
    tableSchemas.set(table, named);
  }
  return named;
}

const quoteName = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Sends a flat statement on the connection of a database or transaction; answers what `db.execute` answers there. */
export type DriverQuery = (text: string, params: unknown[]) => Promise<unknown>;

interface DrizzleSession {
  /** postgres.js: `client.unsafe(text, params)` on the session's connection (prepared, through lib/adapters/db/client.ts). */
  queryObjects?: (text: string, params: unknown[]) => Promise<unknown>;
  /** PGlite: the database, or the transaction, the session runs on. */
  client?: { query?: (text: string, params: unknown[], options: object) => Promise<unknown> };
}

// The options Drizzle's PGlite driver (drizzle-orm/pglite/session.js, rawQueryConfig) gives its raw
// queries: rows as objects, and dates, timestamps and intervals (and their arrays) as the text
// Postgres sends, for the columns' own mappings to read, as postgres.js's are under Drizzle.
const pgliteRawQuery = {
  rowMode: "object",
  parsers: Object.fromEntries([1114, 1184, 1186, 1082, 1231, 1115, 1185, 1187, 1182].map((oid) => [oid, (value: string) => value])),
};

/**
 * The driver's own query function under a Drizzle database or transaction (postgres.js or PGlite),
 * or undefined for any other: the one place that reaches into Drizzle's session.
 */
export function driverQueryOf(db: Pick<Database, "execute">): DriverQuery | undefined {
  const session = (db as { _?: { session?: DrizzleSession } })._?.session;
  if (!session) return undefined;
  if (typeof session.queryObjects === "function") return (text, params) => session.queryObjects!(text, params);
  const client = session.client;
  if (typeof client?.query === "function") return (text, params) => client.query!(text, params, pgliteRawQuery);
  return undefined;
}
