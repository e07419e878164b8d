import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formAction, hiddenInputs } from "../support/browser.js";
import { freePort, startServiceProcess, type ServiceProcess } from "../support/process.js";

// The README's first payment, pasted as is: the marked block is run with bash in a directory whose
// .data/ is the running server's DATA_DIR, as a newcomer's second terminal next to `npm start`.

const readme = readFileSync("README.md", "utf8");
const marker = readme.indexOf("<!-- first-payment");
const block = marker < 0 ? "" : (/```sh\n([\s\S]*?)\n```/.exec(readme.slice(marker))?.[1] ?? "");

let dir: string;
let server: ServiceProcess;
beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "readme-example-"));
  const [port, health, metrics] = [await freePort(), await freePort(), await freePort()];
  server = await startServiceProcess({
    PORT: String(port),
    HEALTH_CHECK_PORT: String(health),
    METRICS_PORT: String(metrics),
    DATA_DIR: path.join(dir, ".data"),
  });
  // The token file is written right after the banner, just after the "listening" line.
  for (let i = 0; i < 100 && !existsSync(path.join(dir, ".data/service-token")); i++) await new Promise((r) => setTimeout(r, 100));
}, 90_000);
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("the README's first payment", () => {
  it("is a marked shell block that needs no tool beyond bash, curl, node, cat and date", () => {
    expect(block, "README.md marks its first-payment block").not.toBe("");
    expect(block).not.toMatch(/\b(uuidgen|jq|python3?|openssl|xxd|wget|httpie)\b/);
    for (const tool of ["curl", "node", "cat", "date"]) {
      expect(spawnSync("bash", ["-c", `command -v ${tool}`]).status, `${tool} is on PATH`).toBe(0);
    }
  });

  it("run as written against the running server, creates a payment and prints its checkout URL", async () => {
    const output = execFileSync("bash", ["-c", block], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? "", HOME: dir, PORT: String(server.ports.main) },
      encoding: "utf8",
      timeout: 30_000,
    });
    const lines = output.trim().split("\n");
    const payment = JSON.parse(lines[0]!) as { id: string; status: string; amount: number; checkout_url: string };
    expect(payment.id).toMatch(/^pay_/);
    expect(payment.status).toBe("created");
    expect(payment.amount).toBe(1050);
    expect(lines.at(-1)).toBe(payment.checkout_url);
    expect(payment.checkout_url).toMatch(new RegExp(`^http://localhost:${server.ports.main}/pay/${payment.id}\\?client_secret=`));

    // The link opens the page that sends the shopper to (the sandbox's) Fiuu.
    const page = await fetch(payment.checkout_url.replace("localhost", "127.0.0.1"));
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain("<form");
    // And the sandbox's hosted page takes that form as Fiuu would (no P03 signature or P04 buyer error).
    const hosted = await fetch(formAction(html).replace("localhost", "127.0.0.1"), { method: "POST", body: new URLSearchParams(hiddenInputs(html)) });
    expect(hosted.status).toBe(200);
    expect(await hosted.text()).toContain('data-testid="sandbox-approve"');
  });
});
