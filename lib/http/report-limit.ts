import type { Context } from "hono";
import type { Config } from "../core/config.js";
import type { AppEnv } from "./context.js";
import { verifyRefundNotice, verifySkey } from "../adapters/fiuu/signatures.js";
import { clientAddress } from "./client-address.js";
import { publicPageLimit, rateLimit } from "./rate-limit.js";

/** How many messages failing their signature one client may send to Fiuu's URLs per window. */
export const rejectedReportBudget = { limit: 30, windowSeconds: 60 } as const;

/** Which signature a message on Fiuu's URLs carries: a payment report's skey, or a refund notice's Signature. */
export type FiuuMessageKind = "report" | "refund_notice";

/**
 * Whether a message's signature holds, computed exactly as its processing computes it (pure, no
 * I/O). Only the signature is judged here; a signed message may still be refused for its content.
 */
export function fiuuSignatureHolds(kind: FiuuMessageKind, fields: Record<string, string>, fiuu: Config["fiuu"]): boolean {
  if (kind === "report") return verifySkey(fields, fiuu.secretKey);
  return verifyRefundNotice(fields, fiuu.merchantId, fiuu.secretKey);
}

/**
 * Whose budget a message spends: the request's client address (lib/http/client-address.ts: the
 * socket's peer, or the first X-Forwarded-For hop the TRUSTED_PROXIES did not write), else
 * "unknown", one bucket shared by every sender whose address is not known. Sharing is safe here:
 * only messages failing their signature spend it, never a valid report.
 */
export function reportClientKey(c: Context<AppEnv>): string {
  return clientAddress(c) ?? "unknown";
}

/**
 * A limiter for messages on Fiuu's URLs whose signature fails: each one spends the client's budget
 * (`rejectedReportBudget`), and once it is spent the message is answered 429 with Retry-After and
 * not processed (not stored, no requery scheduled), so forgeries cannot fill the database.
 *
 * The signature is checked first, without I/O, and only a message that fails it reaches Redis: a
 * valid report never waits for, depends on, or is refused by the limiter, even when a forger
 * shares its bucket or Redis is down. For the failing ones the limiter fails open (lib/http/rate-limit):
 * with Redis unreachable they are stored and refused with 400 as before.
 */
export function limitUnsignedFiuuMessages() {
  const limiter = rejectedReportLimiter();
  return async (c: Context<AppEnv>, kind: FiuuMessageKind, fields: Record<string, string>): Promise<void> => {
    if (fiuuSignatureHolds(kind, fields, c.get("deps").config.fiuu)) return;
    await limiter(c, async () => {});
  };
}

/**
 * The limiter of Fiuu's return URL, a public page where the shopper's browser lands after paying.
 * A report whose skey verifies is applied and the shopper sent on whatever any budget says: money
 * first, and a shopper who has paid must not meet an error page and pay again. (Replaying a signed
 * report changes nothing and costs what it costs on the notification URL, which is not limited
 * either.) Anything else spends the client's page budget (publicPageLimit) and the rejected-report
 * budget, and is answered 429 once either is spent.
 */
export function limitUnsignedReturns() {
  const pages = publicPageLimit();
  const rejected = rejectedReportLimiter();
  return async (c: Context<AppEnv>, fields: Record<string, string>): Promise<void> => {
    if (fiuuSignatureHolds("report", fields, c.get("deps").config.fiuu)) return;
    await pages(c, async () => {});
    await rejected(c, async () => {});
  };
}

function rejectedReportLimiter() {
  return rateLimit({ name: "rejected_fiuu_report", ...rejectedReportBudget, key: reportClientKey });
}
