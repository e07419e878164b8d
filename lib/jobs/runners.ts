import type { JobRunners } from "./loop.js";

/** Runners by job kind; each kind's module registers here. */
export function jobRunners(): JobRunners {
  return {};
}
