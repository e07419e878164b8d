import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/process.js";

// `npm start` itself, in a copy of the sources (so its build does not touch this checkout's dist/):
// a second start rebuilds nothing and is ready within seconds, a taken port is named, and a signal to
// npm leaves no server process behind.

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), "npm-start-"));
  for (const entry of ["lib", "handlers", "drizzle", "package.json", "tsconfig.json", "tsconfig.build.json"]) {
    cpSync(entry, path.join(dir, entry), { recursive: true });
  }
  symlinkSync(path.resolve("node_modules"), path.join(dir, "node_modules"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Started {
  npm: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  /** Resolves with ms from spawn to the "payment service listening" line, or rejects when npm exits first. */
  ready: Promise<number>;
}

async function npmStart(env: Record<string, string> = {}): Promise<Started> {
  const ports = { PORT: String(await freePort()), HEALTH_CHECK_PORT: String(await freePort()), METRICS_PORT: String(await freePort()) };
  const began = Date.now();
  const npm = spawn("npm", ["start"], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? dir, DATA_DIR: path.join(dir, ".data"), ...ports, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  npm.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => npm.once("exit", (code) => resolve(code)));
  const ready = new Promise<number>((resolve, reject) => {
    npm.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('"msg":"payment service listening"')) resolve(Date.now() - began);
    });
    void exited.then((code) => reject(new Error(`npm start exited with ${code}: ${stderr}`)));
  });
  ready.catch(() => {});
  return { npm, stdout: () => stdout, stderr: () => stderr, exited, ready };
}

/** Processes whose working directory is the copy: npm, its shell, the server. */
function processesInCopy(): number[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        return readlinkSync(`/proc/${pid}/cwd`) === dir;
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function gone(timeoutMs = 15_000): Promise<number[]> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until && processesInCopy().length > 0) await new Promise((r) => setTimeout(r, 100));
  return processesInCopy();
}

const compiled = () => statSync(path.join(dir, "dist/lib/app/server.js")).mtimeMs;

describe("npm start", () => {
  it("builds once; the second start in a row recompiles nothing and is ready within seconds; SIGTERM to npm leaves no process", async () => {
    const first = await npmStart();
    const coldMs = await first.ready;
    const builtAt = compiled();
    expect(processesInCopy().length, "npm and the server are running").toBeGreaterThan(0);
    first.npm.kill("SIGTERM");
    await first.exited; // npm ends by the same signal once its child has exited
    expect(await gone(), "no process left after SIGTERM to npm").toEqual([]);

    const second = await npmStart();
    const warmMs = await second.ready;
    expect(compiled(), "dist/ not rebuilt").toBe(builtAt);
    // The bound is 10 s; a loaded CI machine gets slack, the rebuild check above is the strict one.
    expect(warmMs).toBeLessThan(30_000);
    if (process.env.RELIABILITY_FIGURES) console.log(`npm start: first (building) ready in ${coldMs} ms, second in ${warmMs} ms`);
    second.npm.kill("SIGTERM");
    await second.exited;
    expect(await gone(), "no process left after SIGTERM to npm").toEqual([]);
  }, 180_000);

  it("leaves no process behind after SIGINT to npm (Ctrl-C)", async () => {
    const started = await npmStart();
    await started.ready;
    expect(processesInCopy().length).toBeGreaterThan(0);
    started.npm.kill("SIGINT");
    await started.exited;
    expect(await gone()).toEqual([]);
  }, 120_000);

  for (const variable of ["PORT", "HEALTH_CHECK_PORT", "METRICS_PORT"]) {
    it(`stops with a message naming ${variable} when its port is taken, without a stack trace`, async () => {
      const taken = net.createServer();
      await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
      const port = (taken.address() as net.AddressInfo).port;
      try {
        const started = await npmStart({ [variable]: String(port) });
        expect(await started.exited).not.toBe(0);
        expect(started.stderr()).toContain(`Cannot start: ${variable}=${port}: port ${port} on 127.0.0.1 is already in use`);
        expect(started.stderr()).not.toMatch(/^\s+at /m);
        expect(await gone()).toEqual([]);
      } finally {
        taken.close();
      }
    }, 120_000);
  }
});
