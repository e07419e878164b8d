import { lt, type AnyColumn, type SQL } from "drizzle-orm";

/** A list request's paging: at most `limit` rows, those after the cursor (the last id of the previous page). */
export interface PageQuery {
  limit: number;
  starting_after?: string;
}

/** One page of a newest-first list, and whether more follow it. */
export interface Page<T> {
  rows: T[];
  hasMore: boolean;
}

/**
 * The condition for rows after the cursor on an id column listed newest first (ids are
 * time-ordered), or undefined without a cursor; `and()` drops it then.
 */
export const afterCursor = (id: AnyColumn, query: PageQuery): SQL | undefined => (query.starting_after ? lt(id, query.starting_after) : undefined);

/** Rows to fetch for a page: one more than the page holds, to learn whether another follows. */
export const fetchLimit = (query: PageQuery): number => query.limit + 1;

/** The page out of rows fetched with fetchLimit. */
export function toPage<T>(rows: T[], query: PageQuery): Page<T> {
  return { rows: rows.slice(0, query.limit), hasMore: rows.length > query.limit };
}
