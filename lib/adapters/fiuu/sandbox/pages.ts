import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import { toFiuuAmount } from "../../../core/money.js";
import type { SandboxTransaction } from "./state.js";

// The hosted pages of the sandbox. Every interpolated value goes through hono/html's escaping;
// no external assets, so the pages work offline and under a strict Content-Security-Policy.

type Page = HtmlEscapedString | Promise<HtmlEscapedString>;

const style = `
  body { font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f3f5f8; color: #1d2433; }
  main { max-width: 30rem; margin: 3rem auto; background: #fff; border-radius: 12px; padding: 1.5rem 2rem;
         box-shadow: 0 2px 12px rgba(0,0,0,.08); }
  h1 { font-size: 1.25rem; margin: 0 0 .25rem; }
  .banner { font-size: .8rem; letter-spacing: .05em; text-transform: uppercase; color: #a15c00; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .35rem 1rem; margin: 1.25rem 0; }
  dt { color: #5b6475; } dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
  .actions { display: grid; gap: .6rem; } form { margin: 0; }
  button { width: 100%; font: inherit; padding: .7rem; border: 0; border-radius: 8px; cursor: pointer; }
  .approve { background: #137333; color: #fff; } .decline { background: #b3261e; color: #fff; }
  .pending { background: #e8eaed; color: #1d2433; }
  .error { color: #b3261e; } code { background: #f1f3f4; padding: 0 .25rem; border-radius: 4px; }
  .muted { color: #5b6475; font-size: .9rem; } a { color: #1a4fd6; }
  main.wide { max-width: 46rem; }
  table { width: 100%; border-collapse: collapse; margin: 1rem 0; }
  th, td { text-align: left; padding: .5rem .4rem; border-bottom: 1px solid #e3e6ec; vertical-align: middle; }
  th { font-size: .85rem; color: #5b6475; font-weight: 600; }
  td.settle { white-space: nowrap; } td.settle form { display: inline-block; margin-right: .3rem; } td.settle button { width: auto; padding: .45rem .8rem; }
  .flash { background: #e7f4ea; border: 2px solid #137333; border-radius: 8px; padding: .5rem .75rem; }
  td .label { display: none; color: #5b6475; } h2 { font-size: 1.05rem; margin: 1.25rem 0 .25rem; }
  @media (max-width: 34rem) { main { margin: 0; border-radius: 0; padding: 1.25rem; }
    table, tbody, tr, td { display: block; } thead { display: none; } tr { border-bottom: 1px solid #e3e6ec; padding: .5rem 0; }
    td { border: 0; padding: .15rem 0; } td .label { display: inline; } }
`;

function layout(title: string, body: Page, options: { wide?: boolean; refreshSeconds?: number } = {}): Page {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
${options.refreshSeconds ? html`<meta http-equiv="refresh" content="${options.refreshSeconds}">` : ""}
<title>${title}</title>
<style>${style}</style>
</head>
<body><main${options.wide ? html` class="wide"` : ""}>
<div class="banner">Fiuu sandbox — no real money moves</div>
${body}
</main></body>
</html>`;
}

/** The page Fiuu would show instead of the payment: a title, Fiuu's error code where it has one, why. */
export function errorPage(title: string, message: string, code?: string): Page {
  return layout(
    `${code ? `${code} ` : ""}${title}`,
    html`<h1 class="error">${code ? html`<code>${code}</code> ` : ""}${title}</h1><p>${message}</p>`,
  );
}

/** The hosted payment page: what is being paid, and one button per outcome the tester can choose. */
export function payPage(merchantId: string, tx: SandboxTransaction, decideAction: string, pendingUrl?: string): Page {
  const button = (outcome: string, label: string) => html`<form method="post" action="${decideAction}">
<input type="hidden" name="tranID" value="${tx.tranID}">
<input type="hidden" name="outcome" value="${outcome}">
<button type="submit" class="${outcome}" data-testid="sandbox-${outcome}">${label}</button>
</form>`;
  return layout(
    `Pay ${tx.currency} ${toFiuuAmount(tx.amountMinor)} to ${merchantId}`,
    html`<h1>Pay ${tx.currency} ${toFiuuAmount(tx.amountMinor)}</h1>
<dl>
<dt>Merchant</dt><dd data-testid="sandbox-merchant">${merchantId}</dd>
<dt>Order</dt><dd data-testid="sandbox-order">${tx.orderid}</dd>
<dt>Amount</dt><dd data-testid="sandbox-amount">${tx.currency} ${toFiuuAmount(tx.amountMinor)}</dd>
<dt>Channel</dt><dd data-testid="sandbox-channel">${tx.requestedChannel || "shopper chooses"}</dd>
<dt>Description</dt><dd data-testid="sandbox-description">${tx.billDesc || "—"}</dd>
<dt>Transaction</dt><dd data-testid="sandbox-tranid">${tx.tranID}</dd>
</dl>
<div class="actions">
${button("approve", "Approve payment")}
${button("decline", "Decline payment")}
${button("pending", "Leave pending")}
</div>
${pendingUrl ? html`<p class="muted">"Leave pending" plays a cash or slow bank payment: settle it later from the <a href="${pendingUrl}" data-testid="sandbox-pending-link">list of payments left pending</a>.</p>` : ""}`,
  );
}

/**
 * The page that sends the shopper back to the merchant: a form of the report fields that posts
 * itself to the return URL, with a visible button for browsers without script.
 */
export function returnPage(statusText: string, fields: Record<string, string>, returnUrl: string | undefined, pendingUrl?: string): Page {
  const inputs = Object.entries(fields).map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">\n`);
  if (!returnUrl) {
    return layout(
      `Payment ${statusText}`,
      html`<h1>Payment ${statusText}</h1><p>No return URL was given, so the shopper stays here.</p>
${statusText === "pending" && pendingUrl ? html`<p>Settle it later from the <a href="${pendingUrl}">list of payments left pending</a>.</p>` : ""}
<dl>${Object.entries(fields).map(([name, value]) => html`<dt>${name}</dt><dd>${value}</dd>`)}</dl>`,
    );
  }
  return layout(
    `Payment ${statusText}`,
    html`<h1>Payment ${statusText}</h1><p>Taking you back to the shop…</p>
<form id="fiuu-return" method="post" action="${returnUrl}">
${inputs}<button type="submit" class="pending" data-testid="sandbox-continue">Continue</button>
</form>
<script>document.getElementById("fiuu-return").submit();</script>`,
  );
}

/** One line of the pending list: a transaction left pending (22), or one settled from the list. */
export interface PendingEntry {
  tx: SandboxTransaction;
  /** Where its Approve and Decline buttons post. */
  settleAction: string;
}

/**
 * The tester's list of payments left pending: each can be approved or declined, which settles it
 * as Fiuu would later (notification and callback to the merchant). No auto-refresh: it would
 * pull the button from under a tester's click.
 */
export function pendingPage(pending: PendingEntry[], settled: SandboxTransaction[], flash?: string): Page {
  const settleButton = (
    entry: PendingEntry,
    outcome: "approve" | "decline",
    label: string,
  ) => html`<form method="post" action="${entry.settleAction}">
<input type="hidden" name="outcome" value="${outcome}">
<button type="submit" class="${outcome}" data-testid="pending-${outcome}-${entry.tx.tranID}" aria-label="${label} order ${entry.tx.orderid}">${label}</button>
</form>`;
  return layout(
    "Payments left pending — Fiuu sandbox",
    html`<h1>Payments left pending</h1>
<p class="muted">Payments a tester left pending on the sandbox's payment page, as a cash or slow bank payment stays with Fiuu. Approve or decline one to settle it: the sandbox then sends the merchant Fiuu's notification and callback, as Fiuu does when a pending payment resolves.</p>
${flash ? html`<p class="flash" role="status" data-testid="pending-flash">${flash}</p>` : ""}
<p><a href="?">Reload the list</a></p>
${
  pending.length === 0
    ? html`<p data-testid="pending-empty">No payment is pending. Choose "Leave pending" on the sandbox's payment page to make one.</p>`
    : html`<table data-testid="pending-list">
<thead><tr><th scope="col">Order</th><th scope="col">Amount</th><th scope="col">Transaction</th><th scope="col">Since</th><th scope="col">Settle</th></tr></thead>
<tbody>${pending.map(
        (entry) => html`<tr data-testid="pending-row-${entry.tx.tranID}">
<td><span class="label">Order: </span>${entry.tx.orderid}${entry.tx.billDesc ? html`<br><span class="muted">${entry.tx.billDesc}</span>` : ""}</td>
<td><span class="label">Amount: </span>${entry.tx.currency} ${toFiuuAmount(entry.tx.amountMinor)}</td>
<td><span class="label">Transaction: </span>${entry.tx.tranID}</td>
<td><span class="label">Since: </span>${entry.tx.paydate}</td>
<td class="settle">${settleButton(entry, "approve", "Approve")}${settleButton(entry, "decline", "Decline")}</td>
</tr>`,
      )}</tbody></table>`
}
${
  settled.length
    ? html`<h2>Settled from this list</h2><ul>${settled.map(
        (tx) =>
          html`<li>${tx.orderid} · ${tx.currency} ${toFiuuAmount(tx.amountMinor)} · ${tx.status === "00" ? "approved" : "declined"} (${tx.tranID})</li>`,
      )}</ul>`
    : ""
}`,
    { wide: true },
  );
}
