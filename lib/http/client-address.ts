import type { Context } from "hono";
import { BlockList, isIP } from "node:net";
import type { TrustedProxies } from "../core/config.js";
import type { AppEnv } from "./context.js";

/** X-Forwarded-For hops looked at, from the right; a proxy chain is a handful, a longer list is the client's own text. */
const maxHops = 32;

/**
 * An address in the one form every limiter key and record uses: IPv4-mapped IPv6 as plain IPv4,
 * IPv6 in lower case, without brackets, port or zone. Undefined for anything that is not an IP
 * address (a hop someone wrote by hand, `unknown`, an obfuscated identifier).
 */
export function normalizeAddress(text: string | undefined): string | undefined {
  if (!text) return undefined;
  let address = text.trim();
  if (address.length > 64) return undefined;
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(address);
  if (bracketed) address = bracketed[1]!;
  else if (/^[\d.]+:\d{1,5}$/.test(address)) address = address.slice(0, address.lastIndexOf(":"));
  const zone = address.indexOf("%");
  if (zone >= 0) address = address.slice(0, zone);
  address = address.toLowerCase();
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(address);
  if (mapped) address = mapped[1]!;
  return isIP(address) ? address : undefined;
}

const blockLists = new WeakMap<object, BlockList>();

/** Whether `address` lies in one of the trusted networks (their BlockList is built once per configuration). */
function inNetworks(trusted: Extract<TrustedProxies, { kind: "networks" }>, address: string): boolean {
  let list = blockLists.get(trusted);
  if (!list) {
    list = new BlockList();
    for (const { address: network, prefix, family } of trusted.networks) list.addSubnet(network, prefix, family === 4 ? "ipv4" : "ipv6");
    blockLists.set(trusted, list);
  }
  return list.check(address, isIP(address) === 4 ? "ipv4" : "ipv6");
}

/**
 * The client address of a request that reached the service from `peer` carrying `forwardedFor`
 * (pure: the table the tests check). The hops are walked from the right, the peer first: every
 * hop a trusted proxy wrote is skipped, and the first one no trusted proxy wrote is the client.
 * With every hop trusted, the leftmost is the client. A hop that is not an IP address was not
 * written by a proxy: the walk stops there and the last trusted proxy stands for the client, so
 * no client can choose its own bucket by writing text into the header.
 *
 * `peer` is undefined where the runtime has no socket: a hop count then counts the platform's
 * edge as the first proxy; networks cannot vouch for an address nobody saw (undefined: unknown).
 */
export function resolveClientAddress(trusted: TrustedProxies, peer: string | undefined, forwardedFor: string | undefined): string | undefined {
  if (trusted.kind === "none" || trusted.kind === "cloudflare") return peer;
  const hops = forwardedFor ? forwardedFor.split(",").slice(-maxHops) : [];
  let current = peer;
  for (let position = hops.length, depth = 0; ; position--, depth++) {
    const isTrusted = trusted.kind === "hops" ? depth < trusted.count : current !== undefined && inNetworks(trusted, current);
    if (!isTrusted || position === 0) return current;
    const next = normalizeAddress(hops[position - 1]);
    if (next === undefined) return current;
    current = next;
  }
}

/**
 * The address the runtime itself saw the request come from: the socket's peer under
 * @hono/node-server (the Node server, and Vercel's Node.js runtime), the source address AWS
 * records for Lambda behind API Gateway or a Function URL. Workers and other runtimes without a
 * socket have none (undefined).
 */
export function peerAddress(c: Context<AppEnv>): string | undefined {
  type Bindings = {
    incoming?: { socket?: { remoteAddress?: string } };
    server?: { incoming?: { socket?: { remoteAddress?: string } } };
    requestContext?: { identity?: { sourceIp?: string }; http?: { sourceIp?: string } };
  };
  const env = c.env as Bindings | undefined;
  if (!env || typeof env !== "object") return undefined;
  const socket = (env.server ?? env).incoming?.socket;
  if (socket) return normalizeAddress(socket.remoteAddress);
  const context = env.requestContext;
  return normalizeAddress(context?.identity?.sourceIp ?? context?.http?.sourceIp);
}

/**
 * The request's client address, the one every per-client limit, log line and audit entry uses:
 * the peer the runtime saw, or, behind the proxies TRUSTED_PROXIES names, the first
 * X-Forwarded-For hop they did not write; with `cloudflare`, CF-Connecting-IP (Cloudflare's edge
 * sets it; a client reaching the service around Cloudflare could write it). Undefined when no
 * address is known (a runtime without a socket and nothing configured): callers decide what an
 * unknown client may do.
 */
export function clientAddress(c: Context<AppEnv>): string | undefined {
  const trusted = c.get("deps").config.trustedProxies;
  if (trusted.kind === "cloudflare") return normalizeAddress(c.req.header("cf-connecting-ip")) ?? peerAddress(c);
  return resolveClientAddress(trusted, peerAddress(c), c.req.header("x-forwarded-for"));
}
