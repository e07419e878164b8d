import { z } from "@hono/zod-openapi";
import type { Page } from "../domain/paging.js";

/** The paging query parameters every list endpoint takes (spread into its query schema). */
export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(100).default(20),
  starting_after: z.string().min(1).max(64).optional().openapi({ description: "The last id of the previous page" }),
};

/** A list answer's schema: `{ object: "list", data, has_more }`. */
export const listOf = <T extends z.ZodType>(item: T) => z.object({ object: z.literal("list"), data: z.array(item), has_more: z.boolean() });

/** A page as the list answer, each row made a resource. */
export function listAnswer<T, R>(page: Page<T>, resource: (row: T) => R) {
  return { object: "list" as const, data: page.rows.map(resource), has_more: page.hasMore };
}
