import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHealthApp } from "../../handlers/health.js";
import { createMetricsApp } from "../../handlers/metrics.js";
import { openPostgres } from "../../lib/adapters/db/client.js";
import { assembleDeps } from "../../lib/app/deps.js";
import { nodeOpeners } from "../../lib/app/node-openers.js";
import { createLogger } from "../../lib/core/logger.js";
import { openRedis } from "../../lib/adapters/redis/index.js";
import { createTestApp, LogCapture, testConfig, type TestContext } from "../support/app.js";
import { createTestDatabase, realPostgresUrl } from "../support/databases.js";
import { startTcpProxy } from "../support/tcp-proxy.js";

async function readiness(app: ReturnType<typeof createHealthApp>) {
  const res = await app.request("/ready");
  return { status: res.status, body: (await res.json()) as { status: string; checks: Record<string, { status: string; detail?: string }> } };
}

describe("health port", () => {
  let t: TestContext;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it("answers /health while the process is alive", async () => {
    const res = await createHealthApp(t.deps).request("/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });

  it("answers /ready 200 when the database is migrated and Redis answers", async () => {
    const { status, body } = await readiness(createHealthApp(t.deps));
    expect(status).toBe(200);
    expect(body.checks.database!.status).toBe("ok");
    expect(body.checks.redis!.status).toBe("ok");
  });

  it("serves Prometheus text with the default process metrics", async () => {
    const res = await createMetricsApp(t.deps).request("/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await res.text();
    expect(text).toContain("process_cpu_seconds_total");
    expect(text).toContain(`fiuu_circuit_breaker_state{merchant_id="${t.deps.config.fiuu.merchantId}"} 0`);
  });

  it("counts requests by route template, not by raw path", async () => {
    await t.app.request("/no/such/route/123");
    const text = await (await createMetricsApp(t.deps).request("/metrics")).text();
    expect(text).toMatch(/http_requests_total\{method="GET",route="unmatched",status_code="404"\} \d+/);
    expect(text).not.toContain("/no/such/route/123");
  });
});

describe("readiness names what fails", () => {
  it("answers 503 naming migrations on a database that was never migrated", async () => {
    const database = await createTestDatabase({ migrated: false });
    const redis = await openRedis({ kind: "memory" });
    const logger = await createLogger({ level: "silent", format: "json" }, new LogCapture());
    const deps = await assembleDeps(testConfig(), nodeOpeners({ logger, database: database.handle, redis, migrate: false }));
    try {
      const { status, body } = await readiness(createHealthApp(deps));
      expect(status).toBe(503);
      expect(body.checks.database!.detail).toMatch(/migrations applied 0 of \d+/);
    } finally {
      await database.drop();
    }
  });

  it("answers 503 naming Redis when Redis is unreachable, while /health stays 200", async () => {
    const t = await createTestApp();
    const deadRedis = await openRedis({ kind: "tcp", host: "127.0.0.1", port: 1, db: 0, maxConnections: 1 });
    try {
      const app = createHealthApp({ ...t.deps, redis: deadRedis.redis });
      const { status, body } = await readiness(app);
      expect(status).toBe(503);
      expect(body.checks.redis!.status).toBe("failing");
      expect(body.checks.database!.status).toBe("ok");
      expect((await app.request("/health")).status).toBe(200);
    } finally {
      await deadRedis.close();
      await t.close();
    }
  });

  it("answers 503 naming an unreachable database, while /health stays 200", async () => {
    const t = await createTestApp({ env: { HEALTH_CHECK_TIMEOUT: "3s" } });
    const unreachable = await openPostgres("postgres://nobody:a-password-never-shown@127.0.0.1:1/none", { ssl: "disable" });
    try {
      const app = createHealthApp({ ...t.deps, database: unreachable });
      const { status, body } = await readiness(app);
      expect(status).toBe(503);
      expect(body.checks.database!.status).toBe("failing");
      expect(body.checks.database!.detail).toMatch(/^host unreachable: connect ECONNREFUSED 127\.0\.0\.1:1/);
      expect(JSON.stringify(body)).not.toContain("a-password-never-shown");
      expect((await app.request("/health")).status).toBe(200);
    } finally {
      await unreachable.close();
      await t.close();
    }
  });

  it.skipIf(!realPostgresUrl)(
    "turns 503 when Postgres is cut off and 200 again by itself when it returns (needs TEST_DATABASE_URL: a real PostgreSQL behind a TCP proxy; runs in CI's real-servers pass)",
    async () => {
      const database = await createTestDatabase();
      const target = new URL(database.url!);
      const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
      target.host = `127.0.0.1:${proxy.port}`;
      const viaProxy = await openPostgres(target.toString(), { ssl: "disable", max: 2 });
      const t = await createTestApp({ env: { HEALTH_CHECK_TIMEOUT: "2s" } });
      try {
        const app = createHealthApp({ ...t.deps, database: viaProxy });
        expect((await readiness(app)).status).toBe(200);
        proxy.cut();
        const down = await readiness(app);
        expect(down.status).toBe(503);
        expect(down.body.checks.database!.status).toBe("failing");
        expect(down.body.checks.database!.detail).toMatch(/^host unreachable: |^no answer within/);
        proxy.restore();
        let status = 0;
        for (let i = 0; i < 20 && status !== 200; i++) {
          status = (await readiness(app)).status;
          if (status !== 200) await new Promise((r) => setTimeout(r, 250));
        }
        expect(status).toBe(200);
      } finally {
        await viaProxy.close();
        await proxy.close();
        await t.close();
        await database.drop();
      }
    },
  );
});
