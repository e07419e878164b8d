import { timingSafeEqual } from "node:crypto";
import { Hono } from "hono";
import { html } from "hono/html";
import { signToken } from "../lib/auth/tokens.js";
import type { AppEnv } from "../lib/context.js";
import { signWebhook, webhookSigningKey } from "../lib/webhooks/sign.js";
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
  { sku: "kopi", name: "Kopi O, 2 cups", amount: 1050 },
  { sku: "beans", name: "Sabah coffee beans, 250 g", amount: 4500 },
  { sku: "grinder", name: "Hand grinder", amount: 125000 },
];

/**
 * A demo shop (development and test only): its page posts to its own server side, which creates
 * the payment with a service token exactly as a shop backend would — the browser never chooses
 * what gets signed — and sends the shopper to the checkout link. Its webhook endpoint shows what
 * the shop received.
 */
export function demoRoutes(options: {
  /** The service's own API, called in-process as the shop's backend would call it over HTTP. */
  api: () => { request: (path: string, init: RequestInit) => Response | Promise<Response> };
}) {
  const app = new Hono<AppEnv>();
  const received: ReceivedWebhook[] = [];

  app.get("/demo", (c) => {
    const { config } = c.get("deps");
    return c.html(
      page(
        "Demo shop",
        html`<h1>Kedai Kopi — demo shop</h1>
<p class="muted">A shop page as a merchant would build it. Payments go to the ${config.fiuu.paymentUrl?.includes("/sandbox/fiuu") ? "local Fiuu sandbox" : "configured Fiuu"}.</p>
<form method="POST" action="/demo/checkout">
  <label>Product<br><select name="sku">${products.map((p) => html`<option value="${p.sku}">${p.name} — RM ${(p.amount / 100).toFixed(2)}</option>`)}</select></label><br><br>
  <label>Name<br><input name="name" value="Siti Aminah" required maxlength="128"></label><br>
  <label>Email<br><input name="email" type="email" value="siti@example.my" required maxlength="128"></label><br>
  <label>Mobile<br><input name="mobile" value="+60174823915" maxlength="32"></label><br><br>
  <button type="submit" data-testid="demo-pay">Pay with Fiuu</button>
</form>
<h2>Webhooks the shop received</h2>
<ul id="webhooks" data-testid="demo-webhooks"><li class="muted">none yet</li></ul>
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

  app.post("/demo/checkout", async (c) => {
    const form = await c.req.parseBody();
    const product = products.find((p) => p.sku === form.sku) ?? products[0]!;
    const { config } = c.get("deps");
    const token = await signToken(config.jwtSecret!, { sub: "demo-shop", role: "service", ttlSeconds: 60, now: c.get("deps").now() });
    const res = await options.api().request("/v1/payments", {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "idempotency-key": crypto.randomUUID() },
      body: JSON.stringify({
        order_id: `DEMO-${Date.now()}`,
        amount: product.amount,
        currency: "MYR",
        description: product.name,
        customer: { name: String(form.name ?? ""), email: String(form.email ?? ""), ...(form.mobile ? { mobile: String(form.mobile) } : {}) },
      }),
    });
    const body = (await res.json()) as { checkout_url?: string; detail?: string };
    if (res.status !== 201 || !body.checkout_url) {
      return c.html(page("Demo shop", html`<h1>Could not start the payment</h1><p>${body.detail ?? res.statusText}</p><p><a href="/demo">Back</a></p>`), 400);
    }
    return c.redirect(body.checkout_url, 303);
  });

  app.post("/demo/webhooks", async (c) => {
    const raw = await c.req.text();
    const { config } = c.get("deps");
    const verified = verifyWebhook(webhookSigningKey(config.webhooks.secret!), c.req.raw.headers, raw, c.get("deps").now());
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
