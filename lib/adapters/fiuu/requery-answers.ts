import { parseFiuuAmount } from "../../core/money.js";
import { FiuuProtocolError, type RequeryRefusal } from "./client-errors.js";
import { parseJsonFields } from "./json.js";
import { safeEqualHex, vrfKey } from "./signatures.js";

// Reading Fiuu's requery answers (FIUU.md §3): pure functions, no I/O. Every signature is checked
// over the exact strings received ("hash exactly the strings you send or receive"); only then are
// they interpreted. Requeries ask for type=0 (plain text), as every official client does; a JSON
// answer is read too, its numbers kept as written (`"Amount": 30.00` stays "30.00", which is what
// the VrfKey covers).

export type Fields = Record<string, string>;

/** A requery answer naming a transaction, its VrfKey verified (FIUU.md §3). */
export interface RequeryTransaction {
  found: true;
  statCode: "00" | "11" | "22";
  tranId: string;
  /** Exactly as Fiuu wrote it; compare it (and currency) with what was asked for before acting. */
  amount: string;
  currency: string;
  channel: string;
  orderId: string;
  /** The transaction's own error (a bank's decline code), not a query error. */
  errorCode: string;
  errorDesc: string;
  /** Only when the answer names a pay date (PayDate or paydate); BillingDate stays in `fields`. */
  paydate?: string;
  /** Every field as received. */
  fields: Fields;
}

/**
 * Fiuu knows no transaction for what was asked (Q203, Q303, Q00005, or a StatCode of "-"): an
 * answer, not an error. For an order whose checkout has expired it means nobody paid.
 */
export interface RequeryNotFound {
  found: false;
  /** Fiuu's code ("Q203", ...), or "" for a bare StatCode "-". */
  code: string;
  desc: string;
  fields: Fields;
}

/** What a requery learnt: a transaction's verified status, or that Fiuu has none. */
export type RequeryAnswer = RequeryTransaction | RequeryNotFound;

export type RequeryBy = { by: "order"; orderId: string } | { by: "tranID"; tranId: string };

const statCodes = new Set(["00", "11", "22"]);
const md5HexPattern = /^[0-9a-f]{32}$/;
// `Key=Value` (type=0, gate-query) or `Key: Value` (q_by_tid). Keys are plain identifiers, so the
// first "=" or ":" after one ends it; a value may itself hold ":" (a date) or "=".
const textLinePattern = /^\s*([A-Za-z][A-Za-z0-9_]*)\s*(?:=|:)[ \t]*(.*?)\s*$/;
// A query error code of FIUU.md §3's table: Q and digits.
const queryCodePattern = /^Q[0-9]{2,6}$/;
// A body that is only a code, perhaps followed by its description ("Q99", "Q203 - not found").
const bareCodePattern = /^\s*(Q[0-9]{2,6})(?:\s*[-:=]\s*|\s+|$)(.*?)\s*$/;

const notFoundCodes = new Set(["Q203", "Q303", "Q00005"]);
const busyCodes = new Set(["Q03", "Q00007", "Q00008", "Q05"]);
// FIUU.md §3's, plus the spec's other "incorrect skey" (Q302, Q402, Q502) and "delimiter error" (Q401).
const misconfiguredCodes = new Set([
  "Q01",
  "Q00001",
  "Q02",
  "Q00002",
  "Q07",
  "Q04",
  "Q00003",
  "Q101",
  "Q201",
  "Q00004",
  "Q102",
  "Q202",
  "Q204",
  "Q302",
  "Q402",
  "Q502",
  "Q401",
]);

/** Fiuu writes an empty field of a "not found" answer as "-" (the q_by_oids example). */
const blank = (value: string | undefined): boolean => value === undefined || value.trim() === "" || value.trim() === "-";

/** What a requery error code means (FIUU.md §3's table); anything it does not list is "unknown". */
export function classifyRequeryCode(code: string): "not_found" | RequeryRefusal {
  const c = code.trim().toUpperCase();
  if (notFoundCodes.has(c)) return "not_found";
  if (c === "Q99") return "blocked";
  if (c === "Q06") return "window_over";
  if (busyCodes.has(c)) return "busy";
  // "Q102, Q202, …": the rest of the Q1xx and Q2xx families are refusals of the request's values.
  if (misconfiguredCodes.has(c) || /^Q[12][0-9]{2}$/.test(c)) return "misconfigured";
  return "unknown";
}

/**
 * Reads an answer body: JSON (an object, or an array of objects; numbers kept as their text) when
 * it is JSON, otherwise `Key=Value` / `Key: Value` lines, or a bare error code. Undefined when it
 * is none of these.
 */
export function parseAnswer(body: string): Fields | Fields[] | undefined {
  const json = parseJsonFields(body);
  if (json) return json;
  const fields: Fields = {};
  let found = false;
  for (const line of body.split(/\r?\n/)) {
    const match = textLinePattern.exec(line);
    if (!match) continue;
    fields[match[1]!] = match[2]!;
    found = true;
  }
  if (fields.StatCode === undefined && fields.ErrorCode === undefined) {
    // "An ErrorCode alone" (FIUU.md §3) may also come as just the code.
    const first = body.split(/\r?\n/).find((line) => line.trim() !== "");
    const bare = first === undefined ? null : bareCodePattern.exec(first);
    if (bare) return { ErrorCode: bare[1]!, ErrorDesc: bare[2]! };
  }
  return found ? fields : undefined;
}

/** Reads a JSON object answer, its numbers kept as written; undefined for anything else. */
export function parseJsonObject(body: string): Fields | undefined {
  const parsed = parseJsonFields(body);
  return parsed && !Array.isArray(parsed) ? parsed : undefined;
}

type Keys = { merchantId: string; secretKey: string };

/**
 * Checks that an answer is about this query: when it carries a VrfKey, the key must verify over the
 * answer's own strings; when it names a merchant or an id, they must be the ones asked about.
 * Returns the id the answer is about.
 */
function bindToQuery(fields: Fields, query: RequeryBy, keys: Keys, statCode: string, options: { signed: boolean }): string {
  const { VrfKey: received, Amount: amount, Domain: domain } = fields;
  // The id the VrfKey covers is the one the answer names; when it names none, the one asked about,
  // so that a valid VrfKey still binds the answer to this query.
  const asked = query.by === "order" ? query.orderId : query.tranId;
  const named = query.by === "order" ? fields.OrderID : fields.TranID;
  const id = blank(named) ? asked : named!;
  if (options.signed || !blank(received)) {
    if (received === undefined || !md5HexPattern.test(received)) throw new FiuuProtocolError("the requery answer has no valid VrfKey");
    if (amount === undefined || domain === undefined) throw new FiuuProtocolError("the requery answer lacks Amount or Domain");
    if (!safeEqualHex(vrfKey({ amount, secretKey: keys.secretKey, domain, id, statCode }), received)) {
      throw new FiuuProtocolError("the requery answer's VrfKey does not match");
    }
  }
  if (!blank(domain) && domain !== keys.merchantId) throw new FiuuProtocolError("the requery answer is for another merchant");
  if (id !== asked) throw new FiuuProtocolError(`the requery answer is about another ${query.by === "order" ? "order" : "transaction"}`);
  return id;
}

/**
 * Checks one requery answer and reads it. A transaction's status (StatCode 00, 11, 22) is believed
 * only with a VrfKey that verifies; Fiuu's "not found" is returned as `{ found: false }`. Any other
 * error code is thrown as a FiuuProtocolError with its `code` and `refusal` (FIUU.md §3), and any
 * answer that cannot be believed (a VrfKey missing or wrong, another merchant, order or
 * transaction, an unknown StatCode) as one without a code.
 */
export function readRequeryAnswer(fields: Fields, query: RequeryBy, keys: Keys): RequeryAnswer {
  const statCode = (fields.StatCode ?? "").trim();
  const code = blank(fields.ErrorCode) ? "" : fields.ErrorCode!.trim();
  const desc = blank(fields.ErrorDesc) ? "" : fields.ErrorDesc!;
  // A failed status carrying a query error code (Q...) is Fiuu answering about the query, not about
  // a transaction: the code decides. A success or pending status always names a transaction.
  const aboutTheQuery = statCode === "" || statCode === "-" || (statCode === "11" && queryCodePattern.test(code.toUpperCase()));
  if (!aboutTheQuery) {
    if (!statCodes.has(statCode)) throw new FiuuProtocolError(`the requery answer has an unknown StatCode "${statCode.slice(0, 8)}"`);
    return readTransaction(fields, query, keys, statCode as RequeryTransaction["statCode"]);
  }
  bindToQuery(fields, query, keys, statCode, { signed: false });
  if (code === "") {
    if (statCode === "-") return { found: false, code: "", desc, fields };
    throw new FiuuProtocolError("the requery answer has neither StatCode nor ErrorCode");
  }
  const meaning = classifyRequeryCode(code);
  if (meaning === "not_found") return { found: false, code, desc, fields };
  const shown = code.slice(0, 16);
  throw new FiuuProtocolError(`Fiuu refused the requery: ${shown}${desc ? ` ${desc.slice(0, 200)}` : ""}`, {
    code: shown,
    refusal: meaning,
    // Only "busy" may be asked again soon; after Q99 nothing may be asked for 5 minutes.
    retryable: meaning === "busy",
  });
}

function readTransaction(fields: Fields, query: RequeryBy, keys: Keys, statCode: RequeryTransaction["statCode"]): RequeryTransaction {
  const id = bindToQuery(fields, query, keys, statCode, { signed: true });
  const tranId = query.by === "tranID" ? id : (fields.TranID ?? "");
  if (!tranId) throw new FiuuProtocolError("the requery answer names a status but no transaction");
  if (parseFiuuAmount(fields.Amount!) === undefined) throw new FiuuProtocolError("the requery answer's Amount is not a Fiuu amount");
  const paydate = fields.PayDate ?? fields.paydate;
  return {
    found: true,
    statCode,
    tranId,
    amount: fields.Amount!,
    currency: fields.Currency ?? "",
    channel: fields.Channel ?? "",
    orderId: query.by === "order" ? id : (fields.OrderID ?? ""),
    errorCode: fields.ErrorCode ?? "",
    errorDesc: fields.ErrorDesc ?? "",
    ...(paydate ? { paydate } : {}),
    fields,
  };
}

const statCodeRank = { "00": 3, "22": 2, "11": 1 } as const;

/**
 * Reads a requery answer that may list several attempts for one order (an array). Every entry must
 * be believable or the whole answer is refused; a success wins over pending over failed, because
 * money that was taken must never go unrecorded (DESIGN.md). A list of only "not found" is not found.
 */
export function readRequeryAnswers(parsed: Fields | Fields[], query: RequeryBy, keys: Keys): RequeryAnswer {
  if (!Array.isArray(parsed)) return readRequeryAnswer(parsed, query, keys);
  if (parsed.length === 0) throw new FiuuProtocolError("the requery answer is an empty list");
  const answers = parsed.map((fields) => readRequeryAnswer(fields, query, keys));
  const found = answers.filter((a): a is RequeryTransaction => a.found);
  if (found.length === 0) return answers[0]!;
  return found.reduce((best, next) => (statCodeRank[next.statCode] >= statCodeRank[best.statCode] ? next : best));
}
