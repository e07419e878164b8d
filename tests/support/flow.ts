import { expect } from "vitest";
import type { TestContext } from "./app.js";
import { bearer, jsonRequest, newKey } from "./app.js";
import { formAction, hiddenInputs, submit } from "./browser.js";

type Fetch = (url: string, init: RequestInit) => Response | Promise<Response>;

let orders = 0;
/** Creates a payment through the API as a shop backend would. */
export async function createPayment(t: TestContext, body: Record<string, unknown> = {}) {
  const res = await t.app.request(
    "/v1/payments",
    jsonRequest(
      "POST",
      {
        order_id: `F-${Date.now()}-${++orders}`,
        amount: 2590,
        currency: "MYR",
        description: "Teh tarik set",
        customer: { name: "Mei Ling", email: "mei@example.my", mobile: "+60174823915" },
        ...body,
      },
      { ...(await bearer(t)), "Idempotency-Key": newKey() },
    ),
  );
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; amount: number; checkout_url: string; gateway: { order_id: string } };
}

/**
 * What the shopper's browser does: opens checkout_url, lets its form go to the hosted page (by
 * default the sandbox mounted on the app), presses a sandbox button, and follows the return page.
 */
export async function payThroughSandbox(t: TestContext, checkoutUrl: string, outcome: "approve" | "decline" | "pending", hosted?: Fetch) {
  const go: Fetch = hosted ?? ((url, init) => t.app.request(url, init));
  const page = await (await t.app.request(checkoutUrl)).text();
  const hostedPage = await (await submit(go, formAction(page), hiddenInputs(page))).text();
  expect(hostedPage).toContain(`data-testid="sandbox-${outcome}"`);
  const decide = formAction(hostedPage, `sandbox-${outcome}`);
  const { tranID } = hiddenInputs(hostedPage);
  const back = await (await submit(go, new URL(decide, "http://payments.test").toString(), { tranID: tranID!, outcome })).text();
  const returned = await submit(t.app.request.bind(t.app), formAction(back), hiddenInputs(back));
  return { tranID: tranID!, returned };
}
