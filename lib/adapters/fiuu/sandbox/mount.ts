import type { Hono } from "hono";
import type { Config } from "../../../core/config.js";
import { createFiuuSandbox } from "./index.js";

/** Builds the local sandbox for an app; `serviceFetch` is how the sandbox reaches the service's webhooks. */
export type SandboxFactory = (serviceFetch: (request: Request) => Promise<Response>) => Hono;

/**
 * The local Fiuu sandbox for this configuration (development and test only). Entries that may
 * mount it import this module; the production bundles (Workers) never do, so it is not in them.
 */
export function localFiuuSandbox(config: Config): SandboxFactory | undefined {
  if (!config.fiuu.localSandbox || config.isProduction) return undefined;
  return (serviceFetch) =>
    createFiuuSandbox({
      merchantId: config.fiuu.merchantId,
      verifyKey: config.fiuu.verifyKey,
      secretKey: config.fiuu.secretKey,
      extendedVcode: config.fiuu.extendedVcode,
      notifyUrl: `${config.publicUrl}/webhooks/fiuu/notify`,
      fetch: serviceFetch,
      // The mounted sandbox enforces the query interval the service is configured with when that
      // is shorter than Fiuu's 5 s (the tests run with 1 ms), and Fiuu's own 5 s otherwise: a
      // service that queries faster than it is configured to, or than Fiuu allows, gets Q99.
      queryWindowMs: Math.min(5_000, config.fiuu.queryIntervalMs),
    });
}
