import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import { toFiuuAmount } from "../../money.js";
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
`;

function layout(title: string, body: Page): Page {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${title}</title>
<style>${style}</style>
</head>
<body><main>
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
export function payPage(merchantId: string, tx: SandboxTransaction, decideAction: string): Page {
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
</div>`,
  );
}

/**
 * The page that sends the shopper back to the merchant: a form of the report fields that posts
 * itself to the return URL, with a visible button for browsers without script.
 */
export function returnPage(statusText: string, fields: Record<string, string>, returnUrl: string | undefined): Page {
  const inputs = Object.entries(fields).map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">\n`);
  if (!returnUrl) {
    return layout(
      `Payment ${statusText}`,
      html`<h1>Payment ${statusText}</h1><p>No return URL was given, so the shopper stays here.</p>
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
