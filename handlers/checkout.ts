import { Hono } from "hono";
import { html } from "hono/html";
import { auditContext } from "../lib/http/context.js";
import type { AppEnv } from "../lib/http/context.js";
import { ApiError } from "../lib/core/errors.js";
import { toFiuuAmount } from "../lib/core/money.js";
import { hostedForm, startCheckout } from "../lib/domain/payments/checkout.js";
import { publicPageLimit } from "../lib/http/rate-limit.js";
import { page } from "./views/layout.js";

/**
 * The link a checkout page opens: `/pay/:id?client_secret=…` answers a page whose signed form
 * submits itself to Fiuu's hosted payment page (with a button for browsers without scripts).
 * Reachable without a token, so it spends the client's page budget (publicPageLimit).
 */
export function checkoutPageRoutes() {
  const app = new Hono<AppEnv>();
  app.get("/pay/:id", publicPageLimit(), async (c) => {
    const id = c.req.param("id");
    const secret = c.req.query("client_secret");
    if (!secret) return c.html(errorPage("This payment link is incomplete."), 401);
    c.set("principal", { kind: "client", secret });
    let form: ReturnType<typeof hostedForm>;
    let amount: string;
    try {
      const row = await startCheckout(c.get("deps"), id, c.get("principal"), { via: "page", ...auditContext(c, id) });
      form = hostedForm(c.get("deps"), row);
      amount = `${row.currency} ${toFiuuAmount(row.amount)}`;
    } catch (error) {
      if (error instanceof ApiError && error.status < 500) return c.html(errorPage(error.detail), error.status);
      throw error;
    }
    c.header("cache-control", "no-store");
    c.header("referrer-policy", "no-referrer");
    return c.html(
      page(
        "Continue to payment",
        html`<h1>Continue to payment</h1>
<p>You are paying <strong>${amount}</strong>. Taking you to the secure payment page…</p>
<form id="fiuu-form" method="POST" action="${form.url}">
${Object.entries(form.fields).map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">\n`)}
<button type="submit" data-testid="pay-continue">Continue to payment</button>
</form>
<script>document.getElementById("fiuu-form").submit();</script>`,
      ),
    );
  });
  return app;
}

function errorPage(message: string) {
  return page("Payment unavailable", html`<h1>This payment cannot continue</h1><p>${message}</p>`);
}
