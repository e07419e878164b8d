import { getTableColumns, sql, type Column, type SQL } from "drizzle-orm";
import type { PgTable } from "drizzle-orm/pg-core";

// Drizzle's query builder spends tens of microseconds building each statement (a select of every
// payment column costs more than the database's work on it), so the hottest statements are
// written as `sql` templates, which cost a few. These two helpers keep such statements tied to the
// schema: the column list comes from the table, and raw rows are read through Drizzle's own
// column mappings, for postgres.js and PGlite alike.

const columnLists = new WeakMap<PgTable, SQL>();

/** Every column of `table`, quoted, as a select list (built once per table). */
export function columnsOf(table: PgTable): SQL {
  let list = columnLists.get(table);
  if (!list) {
    list = sql.raw(
      Object.values(getTableColumns(table))
        .map((column) => `"${column.name}"`)
        .join(", "),
    );
    columnLists.set(table, list);
  }
  return list;
}

const columnEntries = new WeakMap<PgTable, [string, Column][]>();

/** A raw row (database column names, driver values) as the table's typed row. */
export function rowOf<T extends PgTable>(table: T, raw: Record<string, unknown>): T["$inferSelect"] {
  let entries = columnEntries.get(table);
  if (!entries) {
    entries = Object.entries(getTableColumns(table));
    columnEntries.set(table, entries);
  }
  const row: Record<string, unknown> = {};
  for (const [key, column] of entries) {
    const value = raw[column.name];
    row[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
  }
  return row as T["$inferSelect"];
}

/**
 * `update <table> set <changed columns> where id = <id>`, values through Drizzle's column mappings:
 * the query builder's update, for a few microseconds instead of tens.
 */
export function updateById<T extends PgTable>(table: T, id: string, changes: Partial<T["$inferSelect"]>): SQL {
  const columns = getTableColumns(table) as Record<string, Column>;
  const assignments = Object.entries(changes)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => {
      const column = columns[key];
      if (!column) throw new Error(`${key} is not a column of this table`);
      return sql`${sql.raw(`"${column.name}"`)} = ${value === null ? null : column.mapToDriverValue(value)}`;
    });
  return sql`update ${table} set ${sql.join(assignments, sql`, `)} where id = ${id}`;
}
