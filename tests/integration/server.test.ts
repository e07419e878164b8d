import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The Node server as `npm start` runs it, in a process of its own, with nothing configured but
// free ports and a fresh DATA_DIR: embedded PGlite, the in-process Redis stand-in, dev secrets.
const entry = path.resolve("lib/entry/node.ts");

function startServer(env: Record<string, string>) {
  const child = spawn(process.execPath, ["--import", "tsx", entry], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stdout: string[] = [];
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const listening = new Promise<{ main: number; health: number; metrics: number }>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      stdout.push(line);
      const parsed = JSON.parse(line) as { msg?: string; ports?: { main: number; health: number; metrics: number } };
      if (parsed.msg === "payment service listening") resolve(parsed.ports!);
    });
    child.once("exit", (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, stdout, stderr: () => stderr, listening, exited };
}

describe("npm start with nothing configured", () => {
  let dataDir: string;
  let server: ReturnType<typeof startServer>;
  let ports: { main: number; health: number; metrics: number };

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), "payment-service-"));
    server = startServer({ PORT: "0", HEALTH_CHECK_PORT: "0", METRICS_PORT: "0", DATA_DIR: dataDir });
    ports = await server.listening;
  }, 60_000);
  afterAll(() => {
    server.child.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("is ready on the health port", async () => {
    const res = await fetch(`http://127.0.0.1:${ports.health}/ready`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ready" });
  });

  it("serves Prometheus text on the metrics port", async () => {
    const res = await fetch(`http://127.0.0.1:${ports.metrics}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^# HELP /m);
  });

  it("answers an unknown route with a 404 problem carrying its request id", async () => {
    const res = await fetch(`http://127.0.0.1:${ports.main}/definitely/not/here`);
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    const body = (await res.json()) as { request_id: string };
    expect(body.request_id).toBe(res.headers.get("x-request-id"));
  });

  it("prints a banner with a service token on stderr and only JSON lines on stdout", () => {
    expect(server.stderr()).toMatch(/Service token \(role service, 30 days\):\s+eyJ[\w-]+\.[\w-]+\.[\w-]+/);
    expect(server.stdout.length).toBeGreaterThan(0);
    for (const line of server.stdout) expect(() => JSON.parse(line)).not.toThrow();
  });

  it("exits 0 within 30 s of SIGTERM", async () => {
    const started = Date.now();
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});

describe("production configuration", () => {
  it("refuses to start without JWT_SECRET and names it", async () => {
    const server = startServer({ ENVIRONMENT: "production", DATABASE_URL: "postgres://x@127.0.0.1:1/x", REDIS_HOST: "127.0.0.1" });
    await expect(server.listening).rejects.toThrow(/JWT_SECRET: required when ENVIRONMENT=production/);
    expect(await server.exited).toBe(78);
  });
});
