import { BlockList, isIP } from "node:net";
import type { Config } from "../../core/config.js";

/** Resolves a host name to every address it has (node:dns `lookup` with `all: true`); tests pass their own. */
export type AddressLookup = (hostname: string) => Promise<{ address: string; family: number }[]>;

export type ReceiverCheck = { allowed: true } | { allowed: false; reason: string };

/** Raised by the connection's own lookup (`vettedLookup`) when the guard refuses what a receiver's host resolved to. */
export class ReceiverRefusedError extends Error {
  readonly code = "ERR_RECEIVER_NOT_PUBLIC";
  constructor(readonly reason: string) {
    super(reason);
    this.name = "ReceiverRefusedError";
  }
}

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

const refusal = (address: string) => `receiver address ${address} is loopback, private or otherwise not public; refused outside development and test`;

/**
 * What can be decided about `receiver` without resolving its host: only http and https; outside
 * development and test, a host written as an IP address must be public. A host name is left to
 * the connection, whose lookup (`vettedLookup`) resolves and checks it exactly once.
 */
export function checkReceiverUrl(receiver: string, environment: Config["environment"]): ReceiverCheck & { url?: URL } {
  let url: URL;
  try {
    url = new URL(receiver);
  } catch {
    return { allowed: false, reason: "receiver is not a valid URL" };
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return { allowed: false, reason: `receiver scheme ${url.protocol} is not http or https` };
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (guardsReceiverAddresses(environment) && isIP(host) && isNonPublicAddress(host)) return { allowed: false, reason: refusal(host) };
  return { allowed: true, url };
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | { address: string; family: number }[], family?: number) => void;

/**
 * The `lookup` option of the connection to a receiver (node:net, node:http): resolves the host once
 * with `lookup` and, outside development and test, refuses the connection (ReceiverRefusedError)
 * unless every address is public; the socket then connects to exactly the addresses checked. This
 * is the only resolution of the host, so a DNS answer that changes between a check and the
 * connection (rebinding to 127.0.0.1 or a private address) cannot slip through. TLS still checks
 * the certificate against the host name, which stays the request's host and SNI.
 */
export function vettedLookup(options: { environment: Config["environment"]; lookup?: AddressLookup }) {
  const guarded = guardsReceiverAddresses(options.environment);
  const resolve = options.lookup ?? defaultLookup;
  return (hostname: string, lookupOptions: { all?: boolean; family?: number | string }, callback: LookupCallback): void => {
    resolve(hostname).then(
      (addresses) => {
        if (guarded) {
          const refused = addresses.find((a) => isNonPublicAddress(a.address));
          if (refused !== undefined) return callback(new ReceiverRefusedError(refusal(refused.address)), []);
        }
        const family =
          lookupOptions.family === 4 || lookupOptions.family === "IPv4" ? 4 : lookupOptions.family === 6 || lookupOptions.family === "IPv6" ? 6 : 0;
        const usable = family === 0 ? addresses : addresses.filter((a) => a.family === family);
        if (usable.length === 0) {
          return callback(Object.assign(new Error(`receiver host ${hostname} resolved to no usable address`), { code: "ENOTFOUND" }), []);
        }
        if (lookupOptions.all)
          return callback(
            null,
            usable.map((a) => ({ address: a.address, family: a.family })),
          );
        callback(null, usable[0]!.address, usable[0]!.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, []),
    );
  };
}

/**
 * Decides whether a webhook may be sent to `receiver`, resolving its host (the check of runtimes
 * whose fetch cannot take a lookup, and of operators' tools). Only http and https are ever allowed.
 * Outside development and test the host is resolved and refused when any of its addresses is not
 * public. A failing lookup throws (the attempt is retried like any network error). The lookup is
 * raced against `signal` so it counts toward the attempt's timeout.
 */
export async function checkReceiver(
  receiver: string,
  options: { environment: Config["environment"]; lookup?: AddressLookup; signal?: AbortSignal },
): Promise<ReceiverCheck> {
  const precheck = checkReceiverUrl(receiver, options.environment);
  if (!precheck.allowed) return precheck;
  const url = precheck.url!;
  if (!guardsReceiverAddresses(options.environment)) return { allowed: true };

  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const addresses = isIP(host) ? [host] : (await abortable((options.lookup ?? defaultLookup)(host), options.signal)).map((a) => a.address);
  if (addresses.length === 0) throw new Error(`receiver host ${host} resolved to no address`);
  const refused = addresses.find(isNonPublicAddress);
  if (refused !== undefined) return { allowed: false, reason: refusal(refused) };
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
