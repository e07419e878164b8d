import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawConnection, slowHeaderFlood } from "../support/connections.js";
import { createTestDatabase, realPostgresUrl, type TestDatabase } from "../support/databases.js";
import { startServiceProcess, type ServiceProcess } from "../support/process.js";
import { deploymentEnv } from "../support/replicas.js";
import { figure, sleep } from "../support/timing.js";

// Slow and idle clients against the Node server as it runs in production (its own process, on the
// real PostgreSQL and Redis when TEST_DATABASE_URL and TEST_REDIS_HOST are set, else embedded).
// Issue #18: ~20,000 slow-header connections exhausted the process's 20,000 descriptors and the
// API, /health and /metrics all stopped answering. Here the process gets `ulimit -n 512` and the
// default HTTP_MAX_CONNECTIONS (4096), and 600 such connections, reopened as the server closes
// them: a few hundred reproduce what 20,000 did.

const openFileLimit = 512;
const realServers = Boolean(realPostgresUrl && process.env.TEST_REDIS_HOST);

/** Rejects when `promise` takes longer than ms: a bound on a test step, not a measured latency. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms)));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe(`slow and idle clients (${realServers ? "real PostgreSQL and Redis" : "embedded; TEST_DATABASE_URL and TEST_REDIS_HOST run it on the real servers"})`, () => {
  let service: ServiceProcess;
  let database: TestDatabase | undefined;
  let dataDir: string | undefined;

  beforeAll(async () => {
    const limits = {
      HTTP_HEADERS_TIMEOUT: "2s",
      HTTP_REQUEST_TIMEOUT: "3s",
      HTTP_KEEP_ALIVE_TIMEOUT: "1s",
      HEALTH_CHECK_MAX_CONNECTIONS: "16",
      METRICS_MAX_CONNECTIONS: "16",
      LOG_LEVEL: "info",
    };
    let env: Record<string, string>;
    if (realServers) {
      database = await createTestDatabase();
      env = { ...deploymentEnv({ databaseUrl: database.url! }), ...limits };
    } else {
      dataDir = mkdtempSync(path.join(tmpdir(), "payment-slow-clients-"));
      env = { PORT: "0", HEALTH_CHECK_PORT: "0", METRICS_PORT: "0", DATA_DIR: dataDir, ...limits };
    }
    service = await startServiceProcess(env, { openFileLimit });
  }, 90_000);

  afterAll(async () => {
    service?.child.kill("SIGKILL");
    await service?.exited;
    await database?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("caps the API's connections below the open-files limit by itself, and says so", () => {
    const lowered = service.logs().find((l) => l.msg === "HTTP_MAX_CONNECTIONS lowered to stay below the open-files limit");
    expect(lowered, service.stdout.join("\n")).toMatchObject({ configured: 4096, open_file_limit: openFileLimit });
    // Room is left for the health and metrics listeners (16 each), the descriptors open at start
    // (an embedded database keeps ~150 files open) and 128 more.
    expect(lowered!.max_connections as number).toBeLessThanOrEqual(openFileLimit - 32 - 128);
  });

  it("keeps /health, /ready and /metrics answering while slow-header connections saturate the API, then closes every one of them at its headers deadline", async () => {
    const { main, health, metrics } = service.ports;
    const flood = slowHeaderFlood(main, 600);
    let maxDescriptors = 0;
    const sampleDescriptors = setInterval(() => (maxDescriptors = Math.max(maxDescriptors, service.openDescriptors() ?? 0)), 100);
    try {
      // Saturated: the API holds its cap and closes every connection beyond it at once.
      await within(
        15_000,
        "the API refusing connections at its cap",
        (async () => {
          while (flood.dropped < 50) await sleep(50);
        })(),
      );

      // Probe the other two ports for longer than the headers deadline, so that connections the
      // server times out are replaced by new slow ones and the API stays saturated throughout.
      const answers: { path: string; status: number | string }[] = [];
      const until = Date.now() + 3_500;
      while (Date.now() < until) {
        for (const url of [`http://127.0.0.1:${health}/health`, `http://127.0.0.1:${health}/ready`, `http://127.0.0.1:${metrics}/metrics`]) {
          const status = await fetch(url, { signal: AbortSignal.timeout(10_000) }).then(
            async (res) => (await res.arrayBuffer(), res.status),
            (error: Error) => `${error.name}: ${String((error.cause as Error | undefined)?.message ?? error.message)}`,
          );
          answers.push({ path: new URL(url).pathname, status });
        }
      }
      const saturatedDrops = flood.dropped;
      flood.stopReopening();
      figure(
        `slow clients: ${flood.opened} slow-header connections opened, ${saturatedDrops} refused at the cap, ${flood.timedOut} timed out (408); ${answers.length} health/metrics answers; at most ${maxDescriptors} descriptors open of ${openFileLimit}`,
      );

      expect(answers.filter((a) => a.status !== 200)).toEqual([]);
      expect(answers.length).toBeGreaterThanOrEqual(9);
      // The headers deadline holds even for a client that keeps sending header lines.
      expect(flood.timedOut).toBeGreaterThan(0);
      expect(service.logs().some((l) => typeof l.msg === "string" && l.msg.startsWith("api listener at its connection cap"))).toBe(true);

      // Every slow connection is closed by the server: none is held past its deadline.
      await within(15_000, "the server closing every slow-header connection", flood.allClosed());
      // Descriptors to spare throughout: at least the health and metrics caps.
      if (service.openDescriptors() !== undefined) expect(maxDescriptors).toBeLessThanOrEqual(openFileLimit - 32);

      // And the API answers again.
      const res = await fetch(`http://127.0.0.1:${main}/v1/payment-methods`);
      expect(res.status).toBe(200);
    } finally {
      clearInterval(sampleDescriptors);
      flood.stopReopening();
    }
  }, 60_000);

  it("answers 408 to a body that does not arrive within the request deadline, and closes an idle keep-alive connection", async () => {
    const { main } = service.ports;
    // Headers complete, then the 100 kB body one byte at a time: HTTP_REQUEST_TIMEOUT (3 s) ends it.
    const slowBody = rawConnection(
      main,
      `POST /v1/payments HTTP/1.1\r\nHost: payments.test\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n`,
    );
    const trickle = setInterval(() => slowBody.socket.writable && slowBody.socket.write(" "), 200);
    // One request answered, then nothing: HTTP_KEEP_ALIVE_TIMEOUT (1 s) closes the connection.
    const idle = rawConnection(main, `GET /v1/payment-methods HTTP/1.1\r\nHost: payments.test\r\n\r\n`);
    try {
      const [body, kept] = await within(15_000, "both connections closed by the server", Promise.all([slowBody.ended, idle.ended]));
      expect(body.received).toMatch(/^HTTP\/1\.1 408 /);
      expect(kept.received).toMatch(/^HTTP\/1\.1 200 /);
      expect(kept.how).toBe("fin");
    } finally {
      clearInterval(trickle);
      slowBody.socket.destroy();
      idle.socket.destroy();
    }
  }, 30_000);
});
