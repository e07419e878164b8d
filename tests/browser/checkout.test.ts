import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { haveChromium, launchChromium } from "../support/chromium.js";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { freePort, startServiceProcess, type ServiceProcess } from "../support/process.js";

// A shopper in a real browser (Debian's Chromium through playwright-core) against the service as
// `npm start` runs it: the demo shop, the checkout page, the local Fiuu sandbox, the result page.

describe.skipIf(!haveChromium)("checkout in a browser (needs /usr/bin/chromium: apt-get install chromium; required in CI)", () => {
  let service: ServiceProcess;
  let browser: Browser;
  let page: Page;
  let base: string;
  let dataDir: string;
  let consoleErrors: string[];

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), "payment-browser-"));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    service = await startServiceProcess({
      ENVIRONMENT: "development",
      PORT: String(port),
      PUBLIC_URL: base,
      HEALTH_CHECK_PORT: "0",
      METRICS_PORT: "0",
      DATA_DIR: dataDir,
      FIUU_QUERY_INTERVAL: "1s",
      LOG_LEVEL: "info",
    });
    browser = await launchChromium();
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    page = await browser.newPage();
    consoleErrors = [];
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    page.on("pageerror", (error) => consoleErrors.push(error.message));
  });

  afterEach(async (context) => {
    if (context.task.result?.state === "fail") {
      mkdirSync("test-results", { recursive: true });
      await page.screenshot({ path: `test-results/${context.task.name.replace(/\W+/g, "-")}.png`, fullPage: true }).catch(() => {});
    }
    await page.close();
  });

  /** From the demo shop to the sandbox's hosted page; returns the sandbox's transaction id. */
  async function toHostedPage(): Promise<string> {
    await page.goto(`${base}/demo`);
    await page.getByTestId("demo-pay").click();
    await page.getByTestId("sandbox-approve").waitFor();
    expect(await page.textContent("body")).toContain("MYR 10.50");
    return page.locator('input[name="tranID"]').first().inputValue();
  }

  const status = () => page.getByTestId("payment-status");

  it("approve → succeeded", async () => {
    await toHostedPage();
    await page.getByTestId("sandbox-approve").click();
    await expect.poll(() => status().textContent(), { timeout: 15_000 }).toBe("succeeded");
    // The demo sets a return_url: the shopper is back on the shop's own order page.
    expect(page.url()).toMatch(/\/demo\/return\?payment_id=pay_[0-9a-z]+&status=succeeded$/);
    const paymentId = new URL(page.url()).searchParams.get("payment_id")!;
    // The shop's side: the demo lists the webhooks it received and verified.
    await page.goto(`${base}/demo`);
    await expect
      .poll(() => page.getByTestId("demo-webhooks").textContent(), { timeout: 15_000 })
      .toContain(`payment.succeeded · ${paymentId} · succeeded · signature verified`);
    expect(consoleErrors).toEqual([]);
  });

  it("decline → failed", async () => {
    await toHostedPage();
    await page.getByTestId("sandbox-decline").click();
    await expect.poll(() => status().textContent(), { timeout: 15_000 }).toBe("failed");
    expect(consoleErrors).toEqual([]);
  });

  it("pending → pending, then succeeded after a requery", async () => {
    const tranID = await toHostedPage();
    await page.getByTestId("sandbox-pending").click();
    await expect.poll(() => status().textContent(), { timeout: 15_000 }).toBe("pending");
    // Fiuu settles the payment but its reports never arrive: only a requery can find out.
    const settle = await fetch(`${base}/sandbox/fiuu/_control/transactions/${tranID}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ status: "00", report: false }),
    });
    expect(settle.status).toBe(200);
    // The shopper waits on the service's result page (the demo's own page returned to first),
    // which brings the requery forward; opened after the settling, so that requery finds it.
    const paymentId = new URL(page.url()).searchParams.get("payment_id")!;
    await page.goto(`${base}/pay/${paymentId}/result`);
    await expect.poll(() => status().textContent(), { timeout: 30_000, interval: 1_000 }).toBe("succeeded");
    expect(consoleErrors).toEqual([]);
  });
});
