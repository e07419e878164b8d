import { parseFiuuAmount } from "../money.js";
import { FiuuProtocolError } from "./client-errors.js";
import { safeEqualHex, vrfKey } from "./signatures.js";

// Reading Fiuu's answers: pure functions, no I/O. Every signature is checked over the exact strings
// received (FIUU.md: "hash exactly the strings you send or receive"); only then are they interpreted.

export type Fields = Record<string, string>;

/** A requery answer whose VrfKey held (FIUU.md §3). */
export interface RequeryAnswer {
  statCode: "00" | "11" | "22";
  tranId: string;
  /** Exactly as Fiuu wrote it; compare it (and currency) with what was asked for before acting. */
  amount: string;
  currency: string;
  channel: string;
  orderId: string;
  errorCode: string;
  errorDesc: string;
  /** Only when the answer names a pay date (PayDate or paydate); BillingDate stays in `fields`. */
  paydate?: string;
  /** Every field as received. */
  fields: Fields;
}

export type RequeryBy = { by: "order"; orderId: string } | { by: "tranID"; tranId: string };

const statCodes = new Set(["00", "11", "22"]);
const md5HexPattern = /^[0-9a-f]{32}$/;
// `Key=Value` (type=0) or `Key: Value` (some endpoints). Keys are plain identifiers, so the first
// "=" or ":" after one ends it; a value may itself hold ":" (a date) or "=".
const textLinePattern = /^\s*([A-Za-z][A-Za-z0-9_]*)\s*(?:=|:)[ \t]*(.*?)\s*$/;

function textOf(value: unknown): string {
  if (typeof value === "string") return value;
  if (value === null || value === undefined) return "";
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

function fieldsOf(value: unknown): Fields | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const fields: Fields = {};
  for (const [name, field] of Object.entries(value)) fields[name] = textOf(field);
  return fields;
}

/**
 * Reads an answer body: JSON (an object, or an array of objects) when it parses as JSON, otherwise
 * the text form of `Key=Value` / `Key: Value` lines. Undefined when it is neither.
 */
export function parseAnswer(body: string): Fields | Fields[] | undefined {
  let json: unknown;
  let isJson = true;
  try {
    json = JSON.parse(body);
  } catch {
    isJson = false;
  }
  if (isJson) {
    if (Array.isArray(json)) {
      const all = json.map(fieldsOf);
      return all.every((f): f is Fields => f !== undefined) ? all : undefined;
    }
    return fieldsOf(json);
  }
  const fields: Fields = {};
  let found = false;
  for (const line of body.split(/\r?\n/)) {
    const match = textLinePattern.exec(line);
    if (!match) continue;
    fields[match[1]!] = match[2]!;
    found = true;
  }
  return found ? fields : undefined;
}

/** Reads a JSON object answer (refund APIs answer JSON only); undefined for anything else. */
export function parseJsonObject(body: string): Fields | undefined {
  try {
    return fieldsOf(JSON.parse(body));
  } catch {
    return undefined;
  }
}

/**
 * Checks one requery answer and reads it. Throws FiuuProtocolError for an error answer (ErrorCode
 * without StatCode: Q99 is retryable), and for any answer whose VrfKey is missing or wrong, or that
 * is signed but speaks of another merchant, order or transaction.
 */
export function readRequeryAnswer(fields: Fields, query: RequeryBy, keys: { merchantId: string; secretKey: string }): RequeryAnswer {
  const { StatCode: statCode, ErrorCode: errorCode, ErrorDesc: errorDesc } = fields;
  if (statCode === undefined || statCode === "") {
    if (errorCode) {
      throw new FiuuProtocolError(`Fiuu refused the requery: ${errorCode}${errorDesc ? ` ${errorDesc}` : ""}`, {
        code: errorCode,
        // Q99: more than one query per 5 seconds; the same query later is fine.
        retryable: errorCode === "Q99",
      });
    }
    throw new FiuuProtocolError("the requery answer has neither StatCode nor ErrorCode");
  }
  const { VrfKey: received, Amount: amount, Domain: domain } = fields;
  if (received === undefined || !md5HexPattern.test(received)) throw new FiuuProtocolError("the requery answer has no valid VrfKey");
  if (amount === undefined || domain === undefined) throw new FiuuProtocolError("the requery answer lacks Amount or Domain");
  // The id the VrfKey covers is the one the answer names; when it names none, the one asked about,
  // so that a valid VrfKey still binds the answer to this query.
  const asked = query.by === "order" ? query.orderId : query.tranId;
  const named = query.by === "order" ? fields.OrderID : fields.TranID;
  const id = named === undefined || named === "" ? asked : named;
  if (!safeEqualHex(vrfKey({ amount, secretKey: keys.secretKey, domain, id, statCode }), received)) {
    throw new FiuuProtocolError("the requery answer's VrfKey does not match");
  }
  if (domain !== keys.merchantId) throw new FiuuProtocolError("the requery answer is for another merchant");
  if (id !== asked) throw new FiuuProtocolError(`the requery answer is about another ${query.by === "order" ? "order" : "transaction"}`);
  if (!statCodes.has(statCode)) throw new FiuuProtocolError(`the requery answer has an unknown StatCode "${statCode}"`);

  const paydate = fields.PayDate ?? fields.paydate;
  return {
    statCode: statCode as RequeryAnswer["statCode"],
    tranId: fields.TranID ?? "",
    amount,
    currency: fields.Currency ?? "",
    channel: fields.Channel ?? "",
    orderId: query.by === "order" ? id : (fields.OrderID ?? ""),
    errorCode: errorCode ?? "",
    errorDesc: errorDesc ?? "",
    ...(paydate ? { paydate } : {}),
    fields,
  };
}

const statCodeRank = { "00": 3, "22": 2, "11": 1 } as const;

/**
 * Reads a requery answer that may list several attempts for one order (an array). Every entry must
 * verify or the whole answer is refused; a success wins over pending over failed, because money that
 * was taken must never go unrecorded (DESIGN.md).
 */
export function readRequeryAnswers(parsed: Fields | Fields[], query: RequeryBy, keys: { merchantId: string; secretKey: string }): RequeryAnswer {
  if (!Array.isArray(parsed)) return readRequeryAnswer(parsed, query, keys);
  if (parsed.length === 0) throw new FiuuProtocolError("the requery answer is an empty list");
  const answers = parsed.map((fields) => readRequeryAnswer(fields, query, keys));
  return answers.reduce((best, next) => (statCodeRank[next.statCode] >= statCodeRank[best.statCode] ? next : best));
}

