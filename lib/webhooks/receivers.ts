import { BlockList, isIP } from "node:net";
import type { Config } from "../config.js";

/** Resolves a host name to every address it has (node:dns `lookup` with `all: true`); tests pass their own. */
export type AddressLookup = (hostname: string) => Promise<{ address: string; family: number }[]>;

export type ReceiverCheck = { allowed: true } | { allowed: false; reason: string };

/**
 * Addresses a webhook may not be sent to outside development and test: anything that reaches the
 * service's own host or network rather than a shop on the internet (SSRF).
 */
const blocked = new BlockList();
for (const [network, prefix] of [
  ["0.0.0.0", 8], // "this network", includes the unspecified 0.0.0.0
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local, includes cloud metadata endpoints
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, includes broadcast
] as const) {
  blocked.addSubnet(network, prefix, "ipv4");
}
for (const [network, prefix] of [
  ["::", 96], // unspecified ::, loopback ::1 and the deprecated IPv4-compatible addresses
  ["fc00::", 7], // unique-local
  ["fe80::", 10], // link-local
  ["fec0::", 10], // site-local (deprecated)
  ["ff00::", 8], // multicast
] as const) {
  blocked.addSubnet(network, prefix, "ipv6");
}

/** Whether an IP address is loopback, private, link-local, CGNAT, unique-local, unspecified or otherwise not public. */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  // Node's BlockList also matches IPv4-mapped IPv6 (::ffff:127.0.0.1) against the IPv4 rules.
  return blocked.check(address, family === 4 ? "ipv4" : "ipv6");
}

/** Whether receivers are checked against non-public addresses: everywhere but development and test. */
export function guardsReceiverAddresses(environment: Config["environment"]): boolean {
  return environment !== "development" && environment !== "test";
}

const defaultLookup: AddressLookup = async (hostname) => {
  // Loaded on first use: nothing is imported for I/O at module load (functions runtimes).
  const { lookup } = await import("node:dns/promises");
  return lookup(hostname, { all: true, verbatim: true });
};

/**
 * Decides whether a webhook may be sent to `receiver`. Only http and https are ever allowed.
 * Outside development and test the host is resolved and refused when any of its addresses is not
 * public. A failing lookup throws (the attempt is retried like any network error). The lookup is
 * raced against `signal` so it counts toward the attempt's timeout.
 */
export async function checkReceiver(
  receiver: string,
  options: { environment: Config["environment"]; lookup?: AddressLookup; signal?: AbortSignal },
): Promise<ReceiverCheck> {
  let url: URL;
  try {
    url = new URL(receiver);
  } catch {
    return { allowed: false, reason: "receiver is not a valid URL" };
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return { allowed: false, reason: `receiver scheme ${url.protocol} is not http or https` };
  }
  if (!guardsReceiverAddresses(options.environment)) return { allowed: true };

  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const addresses = isIP(host) ? [host] : (await abortable((options.lookup ?? defaultLookup)(host), options.signal)).map((a) => a.address);
  if (addresses.length === 0) throw new Error(`receiver host ${host} resolved to no address`);
  const refused = addresses.find(isNonPublicAddress);
  if (refused !== undefined) {
    return {
      allowed: false,
      reason: `receiver address ${refused} is loopback, private or otherwise not public; refused outside development and test`,
    };
  }
  return { allowed: true };
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
