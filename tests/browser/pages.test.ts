import { mkdirSync } from "node:fs";
import { serve, type ServerType } from "@hono/node-server";
import { eq } from "drizzle-orm";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { haveChromium, launchChromium } from "../support/chromium.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { payments } from "../../drizzle/schema.js";
import { bearer, createTestApp, jsonRequest, newKey, type TestContext } from "../support/app.js";
import { formPost, signedReport } from "../support/fiuu.js";
import { createPayment } from "../support/flow.js";
import { freePort } from "../support/process.js";

// What a shopper and a tester see, in Debian's Chromium: the result page in every status (desktop
// and phone), the sandbox's list of payments left pending, and the demo shop end to end.
// Screenshots of every page are written on every run to test-results/screenshots/ (gitignored).

const screenshots = "test-results/screenshots";
const viewports = {
  desktop: { viewport: { width: 1280, height: 860 } },
  phone: { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
} as const;

/** The WCAG contrast ratio of each element's text against the first opaque background behind it. */
async function lowContrast(page: Page, selector: string): Promise<string[]> {
  return page.$$eval(selector, (elements) => {
    const rgb = (text: string) => (text.match(/[\d.]+/g) ?? []).map(Number);
    const luminance = ([r, g, b]: number[]) =>
      [r!, g!, b!]
        .map((v) => v / 255)
        .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4))
        .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i]!, 0);
    const background = (element: Element | null): number[] => {
      for (let at = element; at; at = at.parentElement) {
        const color = rgb(getComputedStyle(at).backgroundColor);
        if (color.length === 3 || (color.length === 4 && color[3]! > 0.9)) return color;
      }
      return [255, 255, 255];
    };
    return elements.flatMap((element) => {
      if (!element.textContent?.trim()) return [];
      const a = luminance(rgb(getComputedStyle(element).color));
      const b = luminance(background(element));
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      return ratio < 4.5 ? [`${element.tagName} "${element.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`] : [];
    });
  });
}

describe.skipIf(!haveChromium)("pages people look at, in a browser", () => {
  let t: TestContext;
  let server: ServerType;
  let browser: Browser;
  let base: string;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    mkdirSync(screenshots, { recursive: true });
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    // The result pages are loaded many times a minute from one address here; the budget is tested elsewhere.
    t = await createTestApp({ env: { PUBLIC_URL: base, RATE_LIMIT_PAGES_PER_MINUTE: "100000" } });
    server = await new Promise<ServerType>((resolve) => {
      const started = serve({ fetch: t.app.fetch, port, hostname: "127.0.0.1" }, () => resolve(started));
    });
    browser = await launchChromium();
  }, 90_000);

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => {});
    await browser?.close();
    await new Promise((resolve) => server?.close(resolve));
    await t?.close();
  });

  async function newPage(kind: keyof typeof viewports = "desktop"): Promise<Page> {
    const context = await browser.newContext(viewports[kind]);
    contexts.push(context);
    return context.newPage();
  }

  const shot = (page: Page, name: string) => page.screenshot({ path: `${screenshots}/${name}.png`, fullPage: true });

  /** A signed server-to-server report for a payment, as Fiuu sends it. */
  async function report(payment: { gateway: { order_id: string } }, status: "00" | "11" | "22", amount = "25.90") {
    const res = await t.app.request(
      "/webhooks/fiuu/notify",
      formPost(signedReport(t.deps.config.fiuu, { orderid: payment.gateway.order_id, status, amount, nbcb: "2" })),
    );
    expect(res.status).toBe(200);
  }

  /** A payment in each status, some with a return_url. */
  async function paymentIn(status: string, withReturnUrl: boolean) {
    const payment = await createPayment(t, withReturnUrl ? { return_url: "https://shop.example.my/orders/return" } : {});
    const startCheckout = () => t.app.request(new URL(payment.checkout_url).pathname + new URL(payment.checkout_url).search);
    switch (status) {
      case "created, checkout started":
        expect((await startCheckout()).status).toBe(200);
        break;
      case "pending":
        await startCheckout();
        await report(payment, "22");
        break;
      case "succeeded":
        await report(payment, "00");
        break;
      case "failed":
        await report(payment, "11");
        break;
      case "cancelled": {
        const res = await t.app.request(
          `/v1/payments/${payment.id}/cancel`,
          jsonRequest("POST", {}, { ...(await bearer(t)), "Idempotency-Key": newKey() }),
        );
        expect(res.status).toBe(200);
        break;
      }
      case "expired":
        // The expiry job's outcome, set directly: the page is what is under test here.
        await t.deps.database.db.update(payments).set({ status: "expired" }).where(eq(payments.id, payment.id));
        break;
      case "conflicted":
        await report(payment, "00", "99.00");
        break;
    }
    return payment;
  }

  const cases = [
    { status: "created", shown: "created", heading: "Payment not started", words: "has not been sent to the bank", final: false },
    { status: "created, checkout started", shown: "created", heading: "Waiting for the bank", words: "this page updates by itself", final: false },
    { status: "pending", shown: "pending", heading: "Waiting for your payment to be confirmed", words: "you do not need to pay again", final: false },
    { status: "succeeded", shown: "succeeded", heading: "Payment successful", words: "We received your payment of MYR 25.90", final: true },
    { status: "failed", shown: "failed", heading: "Payment declined", words: "no money was taken", final: true },
    { status: "cancelled", shown: "cancelled", heading: "Payment cancelled", words: "The shop cancelled this payment", final: true },
    { status: "expired", shown: "expired", heading: "Payment expired", words: "The time to pay ran out", final: true },
    { status: "conflicted", shown: "conflicted", heading: "We are checking this payment", words: "You have not been charged twice", final: true },
  ];

  for (const { status, shown, heading, words, final } of cases) {
    for (const withReturnUrl of [true, false]) {
      it(`the result page for a payment ${status} ${withReturnUrl ? "with" : "without"} a return_url says what happened, on desktop and phone`, async () => {
        const payment = await paymentIn(status, withReturnUrl);
        for (const kind of ["desktop", "phone"] as const) {
          const page = await newPage(kind);
          const response = await page.goto(`${base}/pay/${payment.id}/result`);
          expect(response!.status()).toBe(200);
          expect(response!.headers()["cache-control"]).toBe("no-store");
          expect(await page.getAttribute("html", "lang")).toBe("en");
          expect(await page.locator("h1").allTextContents()).toEqual([heading]);
          expect(await page.title()).toBe(heading);
          expect(await page.getByTestId("payment-status").textContent()).toBe(shown);
          const body = (await page.textContent("main"))!;
          expect(body.toLowerCase()).toContain(words.toLowerCase());
          expect(await page.getByTestId("result-amount").textContent()).toBe("MYR 25.90");
          expect(await page.getByTestId("result-reference").textContent()).toBe(payment.id);
          // Refreshes itself only while the payment can still change.
          expect(await page.locator('meta[http-equiv="refresh"]').count()).toBe(final ? 0 : 1);
          const back = page.getByTestId("result-back");
          expect(await back.count()).toBe(withReturnUrl ? 1 : 0);
          if (withReturnUrl) {
            const href = new URL((await back.getAttribute("href"))!);
            expect(href.origin + href.pathname).toBe("https://shop.example.my/orders/return");
            expect(href.searchParams.get("payment_id")).toBe(payment.id);
            expect(await back.textContent()).toBe("Back to the shop");
          }
          const retry = page.getByTestId("result-retry");
          expect(await retry.count()).toBe(status === "failed" && withReturnUrl ? 1 : 0);
          if (status === "failed" && withReturnUrl) {
            const href = new URL((await retry.getAttribute("href"))!);
            expect(href.searchParams.get("action")).toBe("retry");
            expect(await retry.textContent()).toBe("Try again");
          }
          // Readable: no sideways scrolling on a phone, and enough contrast for the text.
          const width = viewports[kind].viewport.width;
          expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(width);
          expect(await lowContrast(page, "h1, h2, p, dt, dd, a, li, strong")).toEqual([]);
          await shot(page, `result-${status.replace(/\W+/g, "-")}-${withReturnUrl ? "return-url" : "no-return-url"}-${kind}`);
          await page.close();
        }
      });
    }
  }

  it("the result page for an unknown payment says it was not found", async () => {
    const page = await newPage("phone");
    const response = await page.goto(`${base}/pay/pay_doesnotexist/result`);
    expect(response!.status()).toBe(404);
    expect(await page.locator("h1").textContent()).toBe("Payment not found");
    await shot(page, "result-not-found-phone");
    await page.close();
  });

  it("a declined payment offers no Try again once another payment holds its order", async () => {
    const failed = await createPayment(t, { return_url: "https://shop.example.my/orders/return" });
    await report(failed, "11");
    const orderId = ((await (await t.app.request(`/v1/payments/${failed.id}`, { headers: await bearer(t) })).json()) as { order_id: string })
      .order_id;
    await createPayment(t, { order_id: orderId });
    const page = await newPage();
    await page.goto(`${base}/pay/${failed.id}/result`);
    expect(await page.locator("h1").textContent()).toBe("Payment declined");
    expect(await page.getByTestId("result-retry").count()).toBe(0);
    expect(await page.getByTestId("result-back").count()).toBe(1);
    await page.close();
  });

  it("the demo is a shop: a product, a price and a pay button; a payment left pending comes back to it, and the sandbox's pending list settles it", async () => {
    const page = await newPage();
    await page.goto(`${base}/demo`);
    expect(await page.locator("h1").textContent()).toContain("Kedai Kopi");
    expect(await page.getByRole("radio", { name: /Kopi O, 2 cups/ }).isChecked()).toBe(true);
    expect(await page.textContent("main")).toContain("RM 10.50");
    expect(await lowContrast(page, "h1, legend, label, p, span, button, a, li")).toEqual([]);
    await shot(page, "demo-shop");
    await page.getByTestId("demo-pay").click();

    // The sandbox's hosted page: leave the payment pending, as a cash or slow bank payment.
    await page.getByTestId("sandbox-pending").waitFor();
    const tranID = await page.locator('input[name="tranID"]').first().inputValue();
    expect(await page.getByTestId("sandbox-pending-link").getAttribute("href")).toBe("/sandbox/fiuu/_control/pending");
    await shot(page, "sandbox-hosted-page");
    await page.getByTestId("sandbox-pending").click();

    // Back at the shop, which waits.
    await page.waitForURL(/\/demo\/return\?/);
    const paymentId = new URL(page.url()).searchParams.get("payment_id")!;
    expect(await page.getByTestId("demo-outcome").textContent()).toBe("Waiting for your payment");
    expect(await page.getByTestId("payment-status").textContent()).toBe("pending");
    await shot(page, "demo-return-pending");
    const returnUrl = page.url();

    // The tester's list of pending payments, linked from the shop's waiting page.
    await page.getByTestId("demo-pending-link").click();
    await page.getByTestId(`pending-row-${tranID}`).waitFor();
    expect(await page.locator("h1").textContent()).toBe("Payments left pending");
    expect(await page.getByTestId(`pending-row-${tranID}`).textContent()).toContain("MYR 10.50");
    expect(await lowContrast(page, "h1, p, th, td, button, a, .banner")).toEqual([]);
    await shot(page, "sandbox-pending-list");
    await page.getByTestId(`pending-approve-${tranID}`).click();
    await page.getByTestId("pending-flash").waitFor();
    expect(await page.getByTestId("pending-flash").textContent()).toContain("approved");
    expect(await page.getByTestId(`pending-row-${tranID}`).count()).toBe(0);
    await shot(page, "sandbox-pending-list-settled");

    // Fiuu's notification reached the service: the shop and the result page both say paid.
    await page.goto(returnUrl);
    expect(await page.getByTestId("demo-outcome").textContent()).toBe("Thank you, your order is paid");
    expect(await page.getByTestId("payment-status").textContent()).toBe("succeeded");
    await shot(page, "demo-return-paid");
    await page.goto(`${base}/pay/${paymentId}/result`);
    expect(await page.locator("h1").textContent()).toBe("Payment successful");
    expect(await page.getByTestId("result-back").getAttribute("href")).toContain(`${base}/demo/return?payment_id=${paymentId}`);
    await page.close();
  });

  it("the demo: a declined payment comes back to the shop, and Try again pays the same order", async () => {
    const page = await newPage("phone");
    await page.goto(`${base}/demo`);
    await page.getByRole("radio", { name: /Sabah coffee beans/ }).check();
    await page.getByTestId("demo-pay").click();
    await page.getByTestId("sandbox-decline").click();
    await page.waitForURL(/\/demo\/return\?/);
    const first = new URL(page.url()).searchParams.get("payment_id")!;
    expect(await page.getByTestId("demo-outcome").textContent()).toBe("Your payment was declined");
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    expect(await lowContrast(page, "h1, p, dt, dd, label, button, a")).toEqual([]);
    await shot(page, "demo-return-declined-phone");

    await page.getByTestId("demo-retry").click();
    await page.getByTestId("sandbox-approve").waitFor();
    expect(await page.getByTestId("sandbox-amount").textContent()).toBe("MYR 45.00");
    await page.getByTestId("sandbox-approve").click();
    await page.waitForURL(/\/demo\/return\?/);
    const second = new URL(page.url()).searchParams.get("payment_id")!;
    expect(second).not.toBe(first);
    expect(await page.getByTestId("demo-outcome").textContent()).toBe("Thank you, your order is paid");
    const read = async (id: string) =>
      (await (await t.app.request(`/v1/payments/${id}`, { headers: await bearer(t) })).json()) as { order_id: string; status: string };
    const [a, b] = [await read(first), await read(second)];
    expect([a.status, b.status]).toEqual(["failed", "succeeded"]);
    expect(b.order_id).toBe(a.order_id);
    await shot(page, "demo-return-paid-after-retry-phone");
    await page.close();
  });

  it("on a phone, the sandbox's pending list declines a payment, and the result page then says declined; nothing settles twice", async () => {
    const payment = await createPayment(t);
    const page = await newPage("phone");
    await page.goto(payment.checkout_url);
    await page.getByTestId("sandbox-pending").click();
    // No return_url: Fiuu's return lands on the service's own result page.
    await page.waitForURL(new RegExp(`/pay/${payment.id}/result$`));
    expect(await page.locator("h1").textContent()).toBe("Waiting for your payment to be confirmed");

    await page.goto(`${base}/sandbox/fiuu/_control/pending`);
    const row = page.locator("tr", { hasText: payment.gateway.order_id });
    expect(await row.count()).toBe(1);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await shot(page, "sandbox-pending-list-phone");
    const tranID = (await row.getAttribute("data-testid"))!.replace("pending-row-", "");
    await page.getByTestId(`pending-decline-${tranID}`).click();
    expect(await page.getByTestId("pending-flash").textContent()).toContain("declined");
    expect(await page.locator("tr", { hasText: payment.gateway.order_id }).count()).toBe(0);

    await page.goto(`${base}/pay/${payment.id}/result`);
    expect(await page.locator("h1").textContent()).toBe("Payment declined");
    expect(await page.getByTestId("payment-status").textContent()).toBe("failed");
    const again = await t.app.request(`/sandbox/fiuu/_control/pending/${tranID}`, formPost({ outcome: "approve" }));
    expect(again.status).toBe(409);
    await page.close();
  });
});
