// Postgres text and jsonb cannot hold U+0000, and a lone UTF-16 surrogate has no UTF-8 form (the
// drivers would write U+FFFD, or jsonb refuses the escape). Input carrying either is refused as
// invalid rather than failing in the database (a 500) or being stored altered.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding U+0000 is the point
const unstorable = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * The first `max` UTF-16 units of a text, one fewer where the cut would split a surrogate pair
 * (half a pair cannot be stored: see `unstorable`).
 */
export function truncateText(value: string, max: number): string {
  if (value.length <= max) return value;
  const code = value.charCodeAt(max - 1);
  return value.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

/** Whether a string can be stored in Postgres exactly as received. */
export function isStorableText(value: string): boolean {
  return !unstorable.test(value);
}

/**
 * The path (dot-joined, "" for the value itself) of the first string or object key in a parsed
 * value that Postgres cannot store as it is, or undefined when everything can be.
 */
export function findUnstorableText(value: unknown): string | undefined {
  // Iterative, whatever the depth; a node's path is spelled out only for the one found.
  const pending: Visit[] = [{ value }];
  while (pending.length > 0) {
    const visit = pending.pop()!;
    const current = visit.value;
    if (typeof current === "string") {
      if (!isStorableText(current)) return pathOf(visit);
    } else if (current !== null && typeof current === "object") {
      for (const key in current) {
        if (!Object.hasOwn(current, key)) continue;
        const child: Visit = { value: (current as Record<string, unknown>)[key], key, up: visit };
        if (!isStorableText(key)) return pathOf(child);
        pending.push(child);
      }
    }
  }
  return undefined;
}

/** A value met on the walk, with the key it was found under and where. */
type Visit = { value: unknown; key?: string; up?: Visit };

function pathOf(visit: Visit): string {
  const keys: string[] = [];
  for (let at: Visit | undefined = visit; at?.key !== undefined; at = at.up) keys.push(at.key);
  return keys.reverse().join(".");
}
