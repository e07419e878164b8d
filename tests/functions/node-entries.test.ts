import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryRows } from "../../lib/adapters/db/client.js";
import { signToken } from "../../lib/http/auth/tokens.js";
import { createTestDatabase, realPostgresUrl, type TestDatabase } from "../support/databases.js";
import { deploymentEnv } from "../support/replicas.js";

// The Lambda and Vercel entries as their platforms call them: the Vercel one as a Node request
// listener behind a real socket, the Lambda one's scheduled `jobs` handler as EventBridge calls it.
// Both compose from process.env, on a real PostgreSQL and Redis (the functions build has no
// embedded database), and run a job group's batch directly, as POST /jobs/<group> does.

const cronSecret = randomBytes(24).toString("hex");

describe.skipIf(!realPostgresUrl || !process.env.TEST_REDIS_HOST)(
  "the Lambda and Vercel entries (needs TEST_DATABASE_URL and TEST_REDIS_HOST: the functions build runs on PostgreSQL only; runs in CI's real-servers pass)",
  () => {
    let database: TestDatabase;
    let env: Record<string, string>;
    let server: Server;
    let origin: string;

    beforeAll(async () => {
      database = await createTestDatabase();
      env = deploymentEnv({
        databaseUrl: database.url!,
        extra: { FIUU_LOCAL_SANDBOX: "false", PAYMENT_TTL: "1s", CRON_SECRET: cronSecret },
      });
      // The entries read their environment on their first event, as on the platforms.
      Object.assign(process.env, env);
      const vercel = (await import("../../lib/entry/vercel.js")).default;
      server = createServer(vercel);
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      await new Promise((resolve) => server?.close(resolve));
      await database?.drop();
    });

    /** A payment created through the Vercel entry's API, then left to pass its PAYMENT_TTL (1 s). */
    async function expiredPayment(): Promise<string> {
      const token = await signToken(env.JWT_SECRET!, { sub: "shop-1", role: "service", ttlSeconds: 60 });
      const res = await fetch(`${origin}/v1/payments`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "idempotency-key": randomBytes(8).toString("hex") },
        body: JSON.stringify({
          order_id: `FN-${randomBytes(6).toString("hex")}`,
          amount: 2590,
          currency: "MYR",
          description: "Teh tarik set",
          customer: { name: "Mei Ling", email: "mei@example.my", mobile: "+60174823915" },
        }),
      });
      expect(res.status).toBe(201);
      const { id } = (await res.json()) as { id: string };
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      return id;
    }

    const statusOf = async (id: string) =>
      (await queryRows<{ status: string }>(database.handle.db, sql`select status from payments where id = ${id}`))[0]?.status;

    it("Vercel Cron's GET /jobs/<group> with CRON_SECRET runs the group's batch and answers its counts", async () => {
      const id = await expiredPayment();
      const res = await fetch(`${origin}/jobs/expire`, { headers: { authorization: `Bearer ${cronSecret}` } });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ job: "expire", claimed: 1, done: 1, retried: 0, failed: 0 });
      expect(await statusOf(id)).toBe("expired");
    });

    it("refuses a cron call without CRON_SECRET, and a group that does not exist", async () => {
      const wrong = await fetch(`${origin}/jobs/expire`, { headers: { authorization: "Bearer not-the-secret" } });
      expect(wrong.status).toBe(401);
      expect(wrong.headers.get("content-type")).toContain("application/problem+json");
      const unknown = await fetch(`${origin}/jobs/nope`, { headers: { authorization: `Bearer ${cronSecret}` } });
      expect(unknown.status).toBe(404);
      expect(((await unknown.json()) as { code: string }).code).toBe("not_found");
    });

    it("Lambda's jobs handler runs the group named in the EventBridge input, and names the groups for an unknown one", async () => {
      const { jobs } = await import("../../lib/entry/lambda.js");
      const id = await expiredPayment();
      expect(await jobs({ group: "expire" })).toEqual({ job: "expire", claimed: 1, done: 1, retried: 0, failed: 0 });
      expect(await statusOf(id)).toBe("expired");
      expect(await jobs({ group: "reconcile" })).toMatchObject({ job: "reconcile", failed: 0 });
      await expect(jobs({ group: "nope" })).rejects.toThrow(/unknown job group "nope"; expected one of reconcile, expire, deliver, retention/);
    });
  },
);
