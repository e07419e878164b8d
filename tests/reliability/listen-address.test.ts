import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServiceProcess, type ServiceProcess } from "../support/process.js";
import { eventually } from "../support/timing.js";

// `npm start` with nothing configured serves the demo and the local Fiuu sandbox, whose control
// routes take no token: it must not be reachable from the network unless HOST says so (issue #18
// item 6). Checked from this machine's own non-loopback addresses; without one, from 127.0.0.2,
// which reaches a server bound to 0.0.0.0 but not one bound to 127.0.0.1.

const external = Object.values(networkInterfaces())
  .flat()
  .filter((i) => i !== undefined && i.family === "IPv4" && !i.internal)
  .map((i) => i!.address);
const elsewhere = external.length > 0 ? external : ["127.0.0.2"];

/** "answers" when an HTTP request to host:port gets any answer, else the connection error's code. */
const reach = (host: string, port: number) =>
  new Promise<string>((resolve) => {
    const socket = net.connect({ host, port, timeout: 5_000 });
    socket.once("connect", () => socket.write(`GET /health HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    socket.once("data", (chunk: Buffer) => {
      socket.destroy();
      resolve(chunk.toString().startsWith("HTTP/1.1 ") ? "answers" : "garbled");
    });
    socket.once("timeout", () => {
      socket.destroy();
      resolve("timeout");
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });

describe(`the development server's address (checked from ${elsewhere.join(", ")})`, () => {
  const dataDirs: string[] = [];
  let unconfigured: ServiceProcess;
  let opened: ServiceProcess;

  beforeAll(async () => {
    const start = (extra: Record<string, string>) => {
      const dataDir = mkdtempSync(path.join(tmpdir(), "payment-host-"));
      dataDirs.push(dataDir);
      return startServiceProcess({ PORT: "0", HEALTH_CHECK_PORT: "0", METRICS_PORT: "0", DATA_DIR: dataDir, ...extra });
    };
    [unconfigured, opened] = await Promise.all([start({}), start({ HOST: "0.0.0.0" })]);
  }, 120_000);

  afterAll(async () => {
    for (const service of [unconfigured, opened]) service?.child.kill("SIGKILL");
    await Promise.all([unconfigured?.exited, opened?.exited]);
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  });

  const portsOf = (service: ServiceProcess) => [service.ports.main, service.ports.health, service.ports.metrics!];

  it("with nothing configured, listens on 127.0.0.1 only: every port answers there and refuses from the network", async () => {
    for (const port of portsOf(unconfigured)) {
      expect(await reach("127.0.0.1", port)).toBe("answers");
      for (const address of elsewhere) expect(await reach(address, port), `${address}:${port}`).toBe("ECONNREFUSED");
    }
    expect(unconfigured.host).toBe("127.0.0.1");
  });

  it("says where it listens in the banner", async () => {
    // The banner follows the "listening" log line.
    await eventually(() => unconfigured.stderr().includes("Service token") && opened.stderr().includes("Service token"));
    expect(unconfigured.stderr()).toMatch(/Listening\s+127\.0\.0\.1 only \(this machine\); HOST=0\.0\.0\.0 accepts connections from the network/);
    expect(opened.stderr()).toMatch(/Listening\s+every interface \(HOST=0\.0\.0\.0\)/);
  });

  it("with HOST=0.0.0.0 (as the image and the manifests set), answers from the network", async () => {
    for (const port of portsOf(opened)) {
      for (const address of elsewhere) expect(await reach(address, port), `${address}:${port}`).toBe("answers");
    }
    expect(opened.host).toBe("0.0.0.0");
  });
});
