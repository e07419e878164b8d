import type { Context, Hono } from "hono";
import { isCurrency, parseFiuuAmount } from "../../../core/money.js";
import { errorPage, payPage, returnPage } from "./pages.js";
import { applyOutcome, malaysiaTime, newTranID, readParams, reportFields, sendReports, type SandboxState, type SandboxTransaction } from "./state.js";
import { safeEqualHex, vcode } from "../signatures.js";
import { isFakeMobile, pageErrors } from "./codes.js";

// FIUU.md §1: "integer or exactly 2 decimals, no thousands separator". Stricter than parseFiuuAmount,
// on purpose: a merchant sending "10.5" should find out here, not in production.
const requestAmountPattern = /^(0|[1-9][0-9]*)(\.[0-9]{2})?$/;
const orderIdPattern = /^[A-Za-z0-9]{1,40}$/;

const outcomes = { approve: "00", decline: "11", pending: "22" } as const;
const statusText = { "00": "approved", "11": "declined", "22": "pending" } as const;

function isWebUrl(text: string): boolean {
  try {
    const url = new URL(text);
    // Anything else (javascript:, data:) in a form action would run in the shopper's browser.
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}

/** The hosted payment page and the decision its buttons post, under /RMS/ and the legacy /MOLPay/. */
export function registerHostedPage(app: Hono, state: SandboxState): void {
  for (const prefix of ["/RMS", "/MOLPay"]) {
    // Fiuu asks for the trailing slash; merchants forget it, so both spellings work.
    app.on(["GET", "POST"], [`${prefix}/pay/:merchantId`, `${prefix}/pay/:merchantId/`], (c) => showPayPage(c, state));
    app.post(`${prefix}/pay/:merchantId/decide`, (c) => decide(c, state));
  }
}

/** The payment form fields the sandbox reads, under their hosted-page names. */
const formNames = [
  "amount",
  "orderid",
  "bill_name",
  "bill_email",
  "bill_mobile",
  "guest_checkout",
  "bill_desc",
  "currency",
  "country",
  "channel",
  "langcode",
  "returnurl",
  "callbackurl",
  "cancelurl",
] as const;

/**
 * The form as the hosted page reads it. A seamless request (the merchant page's Fiuu script)
 * sends every field with an `mps` prefix (`mpsamount`, `mpsorderid`, ...) and its signature as
 * `mpsvcode`; a `vcode` field there is not read. `mpsguest_checkout` follows that rule: Fiuu's
 * seamless sources never name guest checkout.
 */
function readForm(raw: Record<string, string>) {
  const seamless = ["mpsmerchantid", "mpsamount", "mpsorderid"].some((name) => raw[name] !== undefined);
  const form: Partial<Record<(typeof formNames)[number], string>> = {};
  for (const name of formNames) {
    const value = raw[seamless ? `mps${name}` : name];
    if (value !== undefined) form[name] = value;
  }
  return { seamless, form, signature: (seamless ? raw.mpsvcode : raw.vcode) ?? "", merchantId: seamless ? raw.mpsmerchantid : undefined };
}

const emailPattern = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** Why Fiuu would refuse the buyer fields (P04), or undefined. guest_checkout=1 waives them. */
function incompleteBuyer(form: Partial<Record<(typeof formNames)[number], string>>): string | undefined {
  if (form.guest_checkout === "1") return undefined;
  const name = form.bill_name?.trim() ?? "";
  const email = form.bill_email?.trim() ?? "";
  const mobile = form.bill_mobile?.trim() ?? "";
  if (!mobile) return "bill_mobile is mandatory; without the shopper's details send guest_checkout=1.";
  if (isFakeMobile(mobile)) return `bill_mobile "${mobile}" is a made-up number; without the shopper's details send guest_checkout=1.`;
  if (!name) return "bill_name is mandatory; without the shopper's details send guest_checkout=1.";
  if (!emailPattern.test(email)) return "bill_email must be a valid email; without the shopper's details send guest_checkout=1.";
  return undefined;
}

async function showPayPage(c: Context, state: SandboxState): Promise<Response> {
  const { options } = state;
  const merchantId = c.req.param("merchantId") ?? "";
  const read = readForm(await readParams(c));
  if (merchantId !== options.merchantId || (read.merchantId !== undefined && read.merchantId !== merchantId)) {
    return c.html(errorPage("Unknown merchant", `No merchant "${read.merchantId ?? merchantId}" on this sandbox.`), 404);
  }
  const { form, seamless } = read;
  const amount = form.amount ?? "";
  const orderid = form.orderid ?? "";
  const expected = vcode({
    amount,
    merchantId,
    orderId: orderid,
    verifyKey: options.verifyKey,
    currency: form.currency ?? "",
    extended: options.extendedVcode ?? false,
  });
  if (!safeEqualHex(expected, read.signature.toLowerCase())) {
    const formula = options.extendedVcode
      ? "md5(amount + merchantID + orderid + verifyKey + currency)"
      : "md5(amount + merchantID + orderid + verifyKey)";
    const field = seamless ? "mpsvcode (a seamless request's signature; a vcode field is not read)" : "vcode";
    return c.html(errorPage("Invalid vcode", `${pageErrors.P03} The ${field} does not match ${formula} for the fields sent.`, "P03"), 400);
  }

  const amountMinor = requestAmountPattern.test(amount) ? parseFiuuAmount(amount) : undefined;
  if (amountMinor === undefined || amountMinor === 0) {
    return c.html(errorPage("Invalid amount", `"${amount}" is not an amount: use an integer or exactly 2 decimals, no separators.`), 400);
  }
  if (!orderIdPattern.test(orderid)) {
    return c.html(errorPage("Invalid order id", `${pageErrors.P19}: orderid must be 1 to 40 letters or digits.`, "P19"), 400);
  }
  const currency = form.currency || "MYR";
  if (!isCurrency(currency)) {
    return c.html(
      errorPage("Unsupported currency", `${pageErrors.P13} The sandbox takes MYR, SGD, USD, THB, PHP or IDR, not "${currency}".`, "P13"),
      400,
    );
  }
  for (const name of ["returnurl", "callbackurl", "cancelurl"] as const) {
    const url = form[name];
    if (url && !isWebUrl(url)) return c.html(errorPage("Invalid URL", `${name} must be an http or https URL.`), 400);
  }
  const buyerProblem = incompleteBuyer(form);
  if (buyerProblem) return c.html(errorPage("Incomplete buyer information", `${pageErrors.P04}. ${buyerProblem}`, "P04"), 400);

  // Fiuu refuses a second attempt with the same orderid and amount (P09). A shopper reloading the
  // page before choosing is not a second attempt, so an undecided one is shown again.
  const existing = [...state.transactions.values()].find((tx) => tx.orderid === orderid && tx.amountMinor === amountMinor);
  if (existing && existing.status !== "awaiting") {
    return c.html(errorPage("Duplicate order", `${pageErrors.P09} Order ${orderid} with this amount was already paid or attempted.`, "P09"), 409);
  }
  const tx: SandboxTransaction = existing ?? {
    tranID: newTranID(state),
    orderid,
    amount,
    amountMinor,
    currency,
    requestedChannel: form.channel ?? "",
    billName: form.bill_name ?? "",
    billEmail: form.bill_email ?? "",
    billMobile: form.bill_mobile ?? "",
    guestCheckout: form.guest_checkout === "1",
    seamless,
    billDesc: form.bill_desc ?? "",
    country: form.country ?? "",
    langcode: form.langcode ?? "en",
    ...(form.returnurl ? { returnUrl: form.returnurl } : {}),
    ...(form.callbackurl ? { callbackUrl: form.callbackurl } : {}),
    ...(form.cancelurl ? { cancelUrl: form.cancelurl } : {}),
    createdAt: malaysiaTime(state.now()),
    createdAtMs: state.now().getTime(),
    status: "awaiting",
    appcode: "",
    paydate: "",
    channel: "",
  };
  state.transactions.set(tx.tranID, tx);
  // Relative to the incoming path, so the link works both mounted under /sandbox/fiuu and standalone.
  const decideAction = `${c.req.path.replace(/\/?$/, "/")}decide`;
  // The tester's pending list, under the same mount (see control.ts).
  const pendingUrl = `${c.req.path.replace(/\/(RMS|MOLPay)\/pay\/.*$/, "")}/_control/pending`;
  return c.html(payPage(merchantId, tx, decideAction, pendingUrl));
}

async function decide(c: Context, state: SandboxState): Promise<Response> {
  const form = await readParams(c);
  const tx = state.transactions.get(form.tranID ?? "");
  if (!tx || c.req.param("merchantId") !== state.options.merchantId) {
    return c.html(errorPage("Unknown transaction", "This sandbox has no such transaction."), 404);
  }
  if (tx.status !== "awaiting") {
    return c.html(errorPage("Already decided", `Transaction ${tx.tranID} already has status ${tx.status}.`), 409);
  }
  const outcome = form.outcome ?? "";
  if (!Object.hasOwn(outcomes, outcome)) {
    return c.html(errorPage("Invalid outcome", "outcome must be approve, decline or pending."), 400);
  }
  const status = outcomes[outcome as keyof typeof outcomes];
  applyOutcome(state, tx, status);
  // Like Fiuu: the server-to-server reports go out first, then the browser is sent back.
  await sendReports(state, tx);
  const pendingUrl = `${c.req.path.replace(/\/(RMS|MOLPay)\/pay\/.*$/, "")}/_control/pending`;
  return c.html(returnPage(statusText[status], reportFields(state, tx), tx.returnUrl ?? state.options.returnUrl, pendingUrl));
}
