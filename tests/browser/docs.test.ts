import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { haveChromium, launchChromium } from "../support/chromium.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventTypes } from "../../lib/domain/webhooks/events.js";
import { freePort, startServiceProcess, type ServiceProcess } from "../support/process.js";

// A developer reading /docs in a real browser (Debian's Chromium through playwright-core) against
// the service as `npm start` runs it, with its CSP: what they should see, and a screenshot of it.

/** Screenshots of every run, kept as artifacts (test-results/ is gitignored). */
const screenshots = path.resolve("test-results/screenshots");

describe.skipIf(!haveChromium)("the API reference in a browser", () => {
  let service: ServiceProcess;
  let browser: Browser;
  let page: Page;
  let base: string;
  let dataDir: string;
  const consoleErrors: string[] = [];
  const otherHosts: string[] = [];

  beforeAll(async () => {
    mkdirSync(screenshots, { recursive: true });
    dataDir = mkdtempSync(path.join(tmpdir(), "payment-docs-"));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    service = await startServiceProcess({
      ENVIRONMENT: "development",
      PORT: String(port),
      PUBLIC_URL: base,
      HEALTH_CHECK_PORT: "0",
      METRICS_PORT: "0",
      DATA_DIR: dataDir,
      LOG_LEVEL: "info",
    });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    page.on("pageerror", (error) => consoleErrors.push(error.message));
    page.on("request", (request) => {
      if (!request.url().startsWith(base) && !request.url().startsWith("data:")) otherHosts.push(request.url());
    });
    await page.goto(`${base}/docs`);
    await page.locator("body[data-rendered=true]").waitFor({ timeout: 30_000 });
    await page.screenshot({ path: path.join(screenshots, "docs-top.png") });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("renders with nothing from another host and no error (the CSP allows what it needs)", () => {
    expect(otherHosts).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });

  it("groups the operations by tag, with the tags' descriptions", async () => {
    const menu = page.locator("[role=menu], .menu-content").first();
    for (const tag of ["Payments", "Checkout", "Refunds", "Events", "Jobs", "Webhooks"]) {
      await expect.poll(() => menu.getByText(tag, { exact: true }).first().isVisible()).toBe(true);
    }
    await expect.poll(() => page.locator("h2", { hasText: "Create a payment for an order" }).first().isVisible()).toBe(true);
    await expect.poll(() => page.getByText("A shop backend (role service) creates a payment for an order").first().isVisible()).toBe(true);
  });

  it("explains authentication (the roles and the client secret) and the error model", async () => {
    const text = (await page.textContent("body"))!;
    for (const phrase of [
      "Authentication",
      "service",
      "admin",
      "system",
      "X-Client-Secret",
      "client_secret",
      "application/problem+json",
      "idempotency_key_reused",
      "amount_exceeds_refundable",
    ]) {
      expect(text).toContain(phrase);
    }
  });

  it("renders a request schema as fields, with no raw schema text on the page", async () => {
    const operation = page
      .locator('[id="tag/Payments/operation/post_v1_payments"], [data-section-id="tag/Payments/operation/post_v1_payments"]')
      .first();
    const section = (await operation.count()) ? operation : page.locator("div").filter({ hasText: "Create a payment for an order" }).last();
    await section.scrollIntoViewIfNeeded();
    for (const field of ["order_id", "amount", "currency", "description", "customer", "return_url"]) {
      await expect.poll(() => section.getByText(field, { exact: true }).first().isVisible()).toBe(true);
    }
    expect(await section.textContent()).toContain("Minor units: 1050 = RM 10.50");
    await page.screenshot({ path: path.join(screenshots, "docs-create-payment.png") });
    const text = (await page.textContent("body"))!;
    expect(text).not.toContain("$ref");
    expect(text).not.toMatch(/"type":\s*"object"/);
    expect(text).not.toContain("#/components/schemas");
  });

  it("without scripts, lists the operations and webhooks by tag and links the document", async () => {
    const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1366, height: 900 } });
    try {
      const plain = await context.newPage();
      await plain.goto(`${base}/docs`);
      for (const tag of ["Payments", "Checkout", "Refunds", "Events", "Jobs", "Webhooks"]) {
        expect(await plain.locator("h2", { hasText: tag }).first().isVisible(), tag).toBe(true);
      }
      expect(await plain.getByText("/v1/payments/{id}/refunds", { exact: true }).first().isVisible()).toBe(true);
      expect(await plain.getByText("webhook refund.failed", { exact: true }).isVisible()).toBe(true);
      expect(await plain.locator('a[href="/openapi.json"]').isVisible()).toBe(true);
      await plain.screenshot({ path: path.join(screenshots, "docs-without-scripts.png") });
    } finally {
      await context.close();
    }
  });

  it("lists every webhook event type, with the Standard Webhooks headers", async () => {
    const text = (await page.textContent("body"))!;
    for (const type of eventTypes) expect(text).toContain(`${type}:`);
    for (const header of ["webhook-id", "webhook-timestamp", "webhook-signature"]) expect(text).toContain(header);
    for (const type of eventTypes) {
      await expect.poll(() => page.locator(`[id="operation/webhook-${type}"] h2`).first().isVisible()).toBe(true);
    }
    const succeeded = page.locator('[id="operation/webhook-payment.succeeded"]');
    await succeeded.locator("h2").scrollIntoViewIfNeeded();
    const fields = (await succeeded.textContent())!;
    for (const field of ["webhook-signature", "type", "timestamp", "data", "Payload"]) expect(fields).toContain(field);
    await page.screenshot({ path: path.join(screenshots, "docs-webhooks.png") });
  });
});
