import { ConfigError, loadConfig, resolveSecrets } from "../core/config.js";
import { assembleDeps, type OwnedDeps } from "./deps.js";
import { nodeOpeners } from "./node-openers.js";

/**
 * The dependency set of a functions entry on Node (Lambda, Vercel), from its environment: a real
 * Postgres with a small pool (an instance serves few requests at once, however many instances run),
 * every secret given (there are no development secrets to fall back to), Fiuu over fetch.
 */
export async function functionsDeps(source: Record<string, string | undefined>): Promise<OwnedDeps> {
  const parsed = loadConfig(source);
  if (parsed.database.kind !== "postgres") throw new ConfigError(["DATABASE_URL: required by the functions build (or DB_HOST)"]);
  const config = resolveSecrets(
    { ...parsed, database: { ...parsed.database, max: Math.min(parsed.database.max, 5) } },
    { requiredBy: "the functions build" },
  );
  return assembleDeps(config, nodeOpeners({ migrate: false }));
}

/** Composes once and keeps the result; a composition that failed is tried again on the next call, not cached. */
export function composedOnce<T>(compose: () => Promise<T>): () => Promise<T> {
  let ready: Promise<T> | undefined;
  return () =>
    (ready ??= compose().catch((error: unknown) => {
      ready = undefined;
      throw error;
    }));
}
