import type { Hono } from "hono";
import type { Config } from "../../config.js";
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
      merchantId: config.fiuu.merchantId!,
      verifyKey: config.fiuu.verifyKey!,
      secretKey: config.fiuu.secretKey!,
      extendedVcode: config.fiuu.extendedVcode,
      notifyUrl: `${config.publicUrl}/webhooks/fiuu/notify`,
      fetch: serviceFetch,
    });
}
