import { isCurrency, parseFiuuAmount } from "../../core/money.js";
import { truncateText } from "../../core/text.js";
import { skeyFieldNames, verifySkey } from "./signatures.js";

// Reading what Fiuu posts to the return, notification and callback URLs (FIUU.md §2) into domain
// values: pure, no I/O. Only the eight skey fields are signed; the rest (channel, error_code,
// error_desc, extraP) is believed only from a server-to-server report, never from the return URL,
// where the shopper's browser carries every field and can change it.

/** Where a report came from: Fiuu's three callbacks by their `nbcb`, or this service's requery. */
export type ReportKind = "return" | "notification" | "callback" | "requery";

/** Fiuu's status codes: 00 success, 11 failed, 22 pending. */
export type FiuuStatus = "00" | "11" | "22";

/** The longest value stored of each documented field; nothing else a sender adds is stored. */
const storedFieldCaps: Record<string, number> = {
  tranID: 40,
  orderid: 64,
  status: 8,
  domain: 64,
  amount: 24,
  currency: 8,
  appcode: 64,
  paydate: 32,
  channel: 64,
  error_code: 64,
  error_desc: 255,
  extraP: 2048,
  skey: 64,
  nbcb: 4,
};
const unsignedFieldNames = ["channel", "error_code", "error_desc", "extraP"] as const;

const statuses = new Set(["00", "11", "22"]);
// Fiuu writes amounts with exactly two decimals (FIUU.md §2). Anything else is refused before it is
// compared, because the skey joins amount and currency with no separator: "10.5" + "0MYR" hashes
// like "10.50" + "MYR".
const canonicalAmount = /^(0|[1-9][0-9]*)\.[0-9]{2}$/;

/** A report's kind by its nbcb, whichever URL it arrived at: 1 callback, 2 notification, none return. */
export function reportKind(fields: Record<string, string>): ReportKind {
  if (fields.nbcb === "1") return "callback";
  if (fields.nbcb === "2") return "notification";
  return "return";
}

/** What the service stores of a message: the documented fields only, each cut to its cap. */
export function storableReportFields(fields: Record<string, string>): Record<string, string> {
  const stored: Record<string, string> = {};
  for (const [name, cap] of Object.entries(storedFieldCaps)) {
    const value = fields[name];
    if (typeof value === "string") stored[name] = truncateText(value, cap);
  }
  return stored;
}

/** Details a report may carry besides its signed facts, each believed only where its source is trusted. */
export interface ReportDetails {
  appcode?: string;
  paydate?: string;
  channel?: string;
  errorCode?: string;
  errorDesc?: string;
}

export interface ReadReport {
  kind: ReportKind;
  /** Whether the skey holds over the fields as received. */
  signed: boolean;
  /** Why the report cannot be applied (unsigned, malformed, another merchant); undefined when it can. */
  problem?: string;
  /** The signed facts, in domain values; present when there is no problem. */
  facts?: { orderId: string; status: FiuuStatus; amount: number; currency: string; tranId: string };
  details: ReportDetails;
  /** The fields to store (documented, capped). */
  stored: Record<string, string>;
  /**
   * What the IPN echo posts back (plus treq=1): for a notification the documented fields Fiuu sent,
   * exactly; for a return the signed fields only, never what a browser added; none for a callback.
   */
  echo?: Record<string, string>;
}

/** Checks and reads one report from Fiuu for this merchant. */
export function readReport(fields: Record<string, string>, keys: { merchantId: string; secretKey: string }): ReadReport {
  const kind = reportKind(fields);
  // Some channels omit appcode; Fiuu hashes a missing one as "" (FIUU.md §2).
  const received: Record<string, string> = { ...fields, appcode: fields.appcode ?? "" };
  const signed = verifySkey(received, keys.secretKey);
  const serverToServer = kind !== "return";
  const trusted = (name: (typeof unsignedFieldNames)[number]) => (serverToServer ? capped(name, fields[name]) : undefined);
  const details: ReportDetails = {
    appcode: capped("appcode", received.appcode),
    paydate: capped("paydate", fields.paydate),
    channel: trusted("channel"),
    errorCode: trusted("error_code"),
    errorDesc: trusted("error_desc"),
  };
  // Stored as received (documented fields, capped), so an altered return can be seen; applied only as `details` says.
  const stored = storableReportFields(fields);
  const problem = !signed
    ? "skey does not verify"
    : !statuses.has(fields.status ?? "")
      ? `unknown status ${(fields.status ?? "").slice(0, 8)}`
      : !canonicalAmount.test(fields.amount ?? "")
        ? "amount is not a 2-decimal Fiuu amount"
        : !isCurrency(fields.currency ?? "")
          ? "currency is not a supported ISO code"
          : fields.domain !== keys.merchantId
            ? "domain is not this merchant"
            : undefined;
  if (problem) return { kind, signed, problem, details, stored };
  const echo =
    kind === "notification"
      ? storableReportFieldsExactly(fields)
      : kind === "return"
        ? Object.fromEntries([...skeyFieldNames, "skey"].map((name) => [name, received[name]!]))
        : undefined;
  return {
    kind,
    signed,
    facts: {
      orderId: fields.orderid!,
      status: fields.status as FiuuStatus,
      amount: parseFiuuAmount(fields.amount!)!,
      currency: fields.currency!,
      tranId: fields.tranID!,
    },
    details,
    stored,
    ...(echo ? { echo } : {}),
  };
}

function capped(name: string, value: string | undefined): string | undefined {
  if (value === undefined || value === "") return undefined;
  return truncateText(value, storedFieldCaps[name] ?? 255);
}

/** The documented fields as received, uncut (an echo must repeat them exactly). */
function storableReportFieldsExactly(fields: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.keys(storedFieldCaps)
      .filter((name) => typeof fields[name] === "string")
      .map((name) => [name, fields[name]!]),
  );
}
