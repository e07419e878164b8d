import { timingSafeEqual } from "node:crypto";
import { Hono, type Context } from "hono";
import { html } from "hono/html";
import { signToken } from "../lib/http/auth/tokens.js";
import type { AppEnv } from "../lib/http/context.js";
import { signWebhook, webhookSigningKey } from "../lib/domain/webhooks/sign.js";
import { page } from "./views/layout.js";

interface ReceivedWebhook {
  id: string;
  type: string;
  paymentId?: string;
  status?: string;
  receivedAt: string;
  verified: boolean;
}

const products = [
  { sku: "kopi", name: "Kopi O, 2 cups", blurb: "Strong, sweet, brewed in a sock filter.", amount: 1050 },
  { sku: "beans", name: "Sabah coffee beans, 250 g", blurb: "Whole beans from Tenom, medium roast.", amount: 4500 },
  { sku: "grinder", name: "Hand grinder", blurb: "Steel burrs, 20 grind settings.", amount: 125000 },
];

const ringgit = (amount: number) => `RM ${(amount / 100).toFixed(2)}`;

const shopStyle = html`<style>
  main { max-width: 40rem; }
  .shop-head { display: flex; justify-content: space-between; align-items: baseline; flex-wrap: wrap; gap: .25rem; border-bottom: 1px solid #e3e6ec; margin-bottom: 1rem; }
  .shop-head p { margin: 0 0 .5rem; }
  fieldset { border: 0; padding: 0; margin: 0 0 1rem; } legend { font-weight: 700; margin-bottom: .5rem; }
  .products { display: grid; gap: .6rem; }
  .product { display: grid; grid-template-columns: auto 1fr auto; gap: .25rem .75rem; align-items: center; border: 2px solid #d5dae3; border-radius: 10px; padding: .75rem; cursor: pointer; }
  .product:has(input:checked) { border-color: #1a4fd6; background: #f0f4ff; }
  .product input { width: 1.2rem; height: 1.2rem; }
  .product .price { font-weight: 700; }
  .product .blurb { grid-column: 2 / 4; color: #5b6478; font-size: .9rem; }
  .field { display: grid; gap: .2rem; margin-bottom: .6rem; }
  .field input { font: inherit; padding: .5rem; border: 1px solid #9aa3b5; border-radius: 6px; }
  .pay { width: 100%; font-size: 1.05rem; }
  details { margin-top: 1.5rem; border-top: 1px solid #e3e6ec; padding-top: .75rem; } summary { cursor: pointer; }
</style>`;

/**
 * A demo shop (development and test only): its page posts to its own server side, which creates
 * the payment with a service token exactly as a shop backend would — the browser never chooses
 * what gets signed — and sends the shopper to the checkout link with a return_url back to the
 * shop's order page. Its webhook endpoint shows what the shop received.
 */
export function demoRoutes(options: {
  /** The service's own API, called in-process as the shop's backend would call it over HTTP. */
  api: () => { request: (path: string, init: RequestInit) => Response | Promise<Response> };
}) {
  const app = new Hono<AppEnv>();
  const received: ReceivedWebhook[] = [];

  /** A call to the service's API as the shop backend, with a short-lived service token. */
  async function shopApi(c: Context<AppEnv>, path: string, init: RequestInit = {}) {
    const { config } = c.get("deps");
    const token = await signToken(config.jwtSecret, { sub: "demo-shop", role: "service", ttlSeconds: 60, now: c.get("deps").now() });
    return options
      .api()
      .request(path, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string> | undefined) } });
  }

  const customerFields = (customer: { name?: string; email?: string; mobile?: string | null } = {}) => html`<fieldset>
<legend>Your details</legend>
<label class="field">Name<input name="name" value="${customer.name ?? "Siti Aminah"}" required maxlength="128" autocomplete="name"></label>
<label class="field">Email<input name="email" type="email" value="${customer.email ?? "siti@example.my"}" required maxlength="128" autocomplete="email"></label>
<label class="field">Mobile<input name="mobile" value="${customer.mobile ?? "+60174823915"}" maxlength="32" autocomplete="tel"></label>
</fieldset>`;

  const usesSandbox = (c: Context<AppEnv>) => Boolean(c.get("deps").config.fiuu.paymentUrl.includes("/sandbox/fiuu"));

  app.get("/demo", (c) => {
    return c.html(
      page(
        "Kedai Kopi — demo shop",
        html`${shopStyle}
<header class="shop-head"><h1>☕ Kedai Kopi</h1><p class="muted">Demo shop · payments go to the ${usesSandbox(c) ? "local Fiuu sandbox, no real money" : "configured Fiuu"}</p></header>
<form method="POST" action="/demo/checkout">
<fieldset><legend>Choose your order</legend><div class="products">
${products.map(
  (p, i) =>
    html`<label class="product"><input type="radio" name="sku" value="${p.sku}" ${i === 0 ? "checked" : ""}><span>${p.name}</span><span class="price">${ringgit(p.amount)}</span><span class="blurb">${p.blurb}</span></label>`,
)}
</div></fieldset>
${customerFields()}
<button type="submit" class="pay" data-testid="demo-pay">Pay with Fiuu</button>
<p class="muted">You will pay on Fiuu's page (here the sandbox: choose approve, decline or leave pending), then come back to this shop.</p>
</form>
<details open><summary>For developers: webhooks the shop received</summary>
<ul id="webhooks" data-testid="demo-webhooks"><li class="muted">none yet</li></ul>
${usesSandbox(c) ? html`<p class="muted">Payments left pending can be settled on the <a href="/sandbox/fiuu/_control/pending">sandbox's pending list</a>.</p>` : ""}
</details>
<script>
  async function refresh() {
    const res = await fetch("/demo/webhooks");
    const list = await res.json();
    const ul = document.getElementById("webhooks");
    ul.replaceChildren(...(list.length ? list : [{ type: "none yet" }]).map((w) => {
      const li = document.createElement("li");
      li.textContent = w.id ? w.type + " · " + w.paymentId + " · " + w.status + (w.verified ? " · signature verified" : " · SIGNATURE INVALID") : w.type;
      return li;
    }));
  }
  refresh(); setInterval(refresh, 2000);
</script>`,
      ),
    );
  });

  // A new payment: for the chosen product, or (retry) again for a declined order, its order and
  // amount read from the service, never from the browser.
  app.post("/demo/checkout", async (c) => {
    const form = await c.req.parseBody();
    const { config } = c.get("deps");
    let order: { order_id: string; amount: number; description: string };
    if (typeof form.retry === "string" && form.retry) {
      const previous = await shopApi(c, `/v1/payments/${encodeURIComponent(form.retry)}`);
      const payment =
        previous.status === 200 ? ((await previous.json()) as { order_id: string; amount: number; description: string; status: string }) : undefined;
      if (!payment || !["failed", "cancelled", "expired"].includes(payment.status)) {
        return c.html(
          page(
            "Kedai Kopi",
            html`<h1>This order cannot be paid again</h1><p>${payment ? `Its payment is ${payment.status}.` : "No such payment."}</p><p><a href="/demo">Back to the shop</a></p>`,
          ),
          409,
        );
      }
      order = { order_id: payment.order_id, amount: payment.amount, description: payment.description };
    } else {
      const product = products.find((p) => p.sku === form.sku) ?? products[0]!;
      order = { order_id: `DEMO-${Date.now()}`, amount: product.amount, description: product.name };
    }
    const res = await shopApi(c, "/v1/payments", {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": crypto.randomUUID() },
      body: JSON.stringify({
        ...order,
        currency: "MYR",
        customer: { name: String(form.name ?? ""), email: String(form.email ?? ""), ...(form.mobile ? { mobile: String(form.mobile) } : {}) },
        return_url: `${config.publicUrl}/demo/return`,
      }),
    });
    const body = (await res.json()) as { checkout_url?: string; detail?: string };
    if (res.status !== 201 || !body.checkout_url) {
      return c.html(
        page(
          "Kedai Kopi",
          html`<h1>Could not start the payment</h1><p>${body.detail ?? res.statusText}</p><p><a href="/demo">Back to the shop</a></p>`,
        ),
        400,
      );
    }
    return c.redirect(body.checkout_url, 303);
  });

  // The shop's return page: Fiuu's return (through the service) lands here with payment_id and
  // status; the shop trusts neither and asks the service for the payment.
  app.get("/demo/return", async (c) => {
    const id = c.req.query("payment_id") ?? "";
    const res = id ? await shopApi(c, `/v1/payments/${encodeURIComponent(id)}`) : undefined;
    if (res?.status !== 200) {
      return c.html(page("Kedai Kopi", html`<h1>We could not find this order</h1><p><a href="/demo">Back to the shop</a></p>`), 404);
    }
    const payment = (await res.json()) as {
      id: string;
      order_id: string;
      amount: number;
      description: string;
      status: string;
      customer: { name: string; email: string; mobile: string | null } | null;
    };
    const waiting = payment.status === "pending" || payment.status === "created";
    const outcome: Record<string, { heading: string; text: string }> = {
      succeeded: { heading: "Thank you, your order is paid", text: "We are preparing it now. A receipt is on its way to your email." },
      failed: { heading: "Your payment was declined", text: "No money was taken. You can try again, with the same or another way to pay." },
      pending: {
        heading: "Waiting for your payment",
        text: "Your bank or the cash counter has not confirmed the payment yet. This page updates by itself; there is no need to pay again.",
      },
      created: { heading: "Waiting for your payment", text: "We have not heard from the payment page yet. This page updates by itself." },
      cancelled: { heading: "Order cancelled", text: "This order's payment was cancelled. No money was taken." },
      expired: { heading: "Payment time ran out", text: "No money was taken. Start a new order to buy." },
      conflicted: {
        heading: "We are checking your payment",
        text: "Something in the bank's confirmation did not match; we are checking it. Please do not pay again.",
      },
    };
    const said = outcome[payment.status] ?? { heading: `Payment ${payment.status}`, text: "" };
    c.header("cache-control", "no-store");
    return c.html(
      page(
        `${said.heading} — Kedai Kopi`,
        html`${shopStyle}
<header class="shop-head"><p><strong>☕ Kedai Kopi</strong></p><p class="muted">Order ${payment.order_id}</p></header>
<h1 data-testid="demo-outcome">${said.heading}</h1>
<p>${said.text}</p>
<dl><dt>Order</dt><dd>${payment.description}</dd><dt>Total</dt><dd>${ringgit(payment.amount)}</dd><dt>Payment</dt><dd>${payment.id}</dd>
<dt>Status</dt><dd><span class="code" data-testid="payment-status">${payment.status}</span></dd></dl>
${
  payment.status === "failed"
    ? html`<form method="POST" action="/demo/checkout"><input type="hidden" name="retry" value="${payment.id}">
${customerFields(payment.customer ?? undefined)}
<button type="submit" class="pay" data-testid="demo-retry" ${c.req.query("action") === "retry" ? "autofocus" : ""}>Try again</button></form>`
    : ""
}
${waiting && usesSandbox(c) ? html`<p class="muted">Testing? Settle a payment left pending on the <a href="/sandbox/fiuu/_control/pending" data-testid="demo-pending-link">sandbox's pending list</a>.</p>` : ""}
<p><a href="/demo" data-testid="demo-continue">Continue shopping</a></p>`,
        { refreshSeconds: waiting ? 3 : undefined },
      ),
    );
  });

  app.post("/demo/webhooks", async (c) => {
    const raw = await c.req.text();
    const { config } = c.get("deps");
    const verified = verifyWebhook(webhookSigningKey(config.webhooks.secret), c.req.raw.headers, raw, c.get("deps").now());
    let event: { type?: string; data?: { id?: string; payment_id?: string; status?: string } };
    try {
      event = JSON.parse(raw) as typeof event;
    } catch {
      return c.text("not JSON", 400);
    }
    received.unshift({
      id: c.req.header("webhook-id") ?? "",
      type: String(event.type),
      paymentId: event.data?.payment_id ?? event.data?.id,
      status: event.data?.status,
      receivedAt: new Date().toISOString(),
      verified,
    });
    received.length = Math.min(received.length, 50);
    return verified ? c.body(null, 204) : c.text("bad signature", 400);
  });

  app.get("/demo/webhooks", (c) => c.json(received));
  return app;
}

/**
 * What a shop does with a webhook (Standard Webhooks): recompute the signature over
 * "id.timestamp.body" with the shared secret, compare in constant time, refuse stale timestamps.
 */
function verifyWebhook(key: Buffer, headers: Headers, body: string, now: Date): boolean {
  const id = headers.get("webhook-id");
  const timestamp = Number(headers.get("webhook-timestamp"));
  const signatures = (headers.get("webhook-signature") ?? "").split(" ");
  if (!id || !Number.isInteger(timestamp) || Math.abs(now.getTime() / 1000 - timestamp) > 300) return false;
  const expected = Buffer.from(signWebhook(key, id, timestamp, body));
  return signatures.some((candidate) => {
    const given = Buffer.from(candidate);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}
