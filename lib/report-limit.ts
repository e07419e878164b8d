import type { Context } from "hono";
import { getConnInfo } from "@hono/node-server/conninfo";
import type { Config } from "./config.js";
import type { AppEnv } from "./context.js";
import { verifyRefundNotice, verifySkey } from "./fiuu/signatures.js";
import { rateLimit } from "./rate-limit.js";

/** How many messages failing their signature one client may send to Fiuu's URLs per window. */
export const rejectedReportBudget = { limit: 30, windowSeconds: 60 } as const;

/** Which signature a message on Fiuu's URLs carries: a payment report's skey, or a refund notice's Signature. */
export type FiuuMessageKind = "report" | "refund_notice";

/**
 * Whether a message's signature holds, computed exactly as its processing computes it (pure, no
 * I/O). Only the signature is judged here; a signed message may still be refused for its content.
 */
export function fiuuSignatureHolds(kind: FiuuMessageKind, fields: Record<string, string>, fiuu: Config["fiuu"]): boolean {
  if (kind === "report") return verifySkey(fields, fiuu.secretKey!);
  return verifyRefundNotice(fields, fiuu.merchantId!, fiuu.secretKey!);
}

/**
 * Whose budget a message spends: the first hop of X-Forwarded-For, else the socket's peer address
 * (Node server), else "unknown" (one shared bucket).
 *
 * Behind a proxy that sets X-Forwarded-For itself (ingress-nginx by default) the first hop is the
 * client. Where a client reaches the service directly it can choose that header and spread its
 * forgeries over many buckets; that costs stored rejected rows, never a valid report, because
 * valid reports are not limited at all (see `limitUnsignedFiuuMessages`).
 */
export function reportClientKey(c: Context<AppEnv>): string {
  const first = c.req.header("x-forwarded-for")?.split(",")[0]?.trim();
  if (first) return first.slice(0, 64);
  try {
    return getConnInfo(c).remote.address ?? "unknown";
  } catch {
    // Not behind @hono/node-server (functions runtime, app.request in tests): no socket to read.
    return "unknown";
  }
}

/**
 * A limiter for messages on Fiuu's URLs whose signature fails: each one spends the client's budget
 * (`rejectedReportBudget`), and once it is spent the message is answered 429 with Retry-After and
 * not processed (not stored, no requery scheduled), so forgeries cannot fill the database.
 *
 * The signature is checked first, without I/O, and only a message that fails it reaches Redis: a
 * valid report never waits for, depends on, or is refused by the limiter, even when a forger
 * shares its bucket or Redis is down. For the failing ones the limiter fails open (lib/rate-limit):
 * with Redis unreachable they are stored and refused with 400 as before.
 */
export function limitUnsignedFiuuMessages() {
  const limiter = rateLimit({ name: "rejected_fiuu_report", ...rejectedReportBudget, key: reportClientKey });
  return async (c: Context<AppEnv>, kind: FiuuMessageKind, fields: Record<string, string>): Promise<void> => {
    if (fiuuSignatureHolds(kind, fields, c.get("deps").config.fiuu)) return;
    await limiter(c, async () => {});
  };
}
