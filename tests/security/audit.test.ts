import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sealAuditLog } from "../../lib/audit.js";
import { describeAuditChain, verifyAuditChain } from "../../lib/audit-verify.js";
import { queryRows } from "../../lib/db/client.js";
import { bearer, createTestApp, newKey, type TestContext } from "../support/app.js";
import { realPostgresUrl } from "../support/databases.js";
import { createPayment } from "../support/flow.js";

// The audit log's hash chain, checked by `npm run audit:verify` (lib/audit-verify.ts), and the
// database roles that keep it append-only. Breaking the chain needs a superuser who switches the
// append-only triggers off: the tests do exactly that and expect the verifier to name the row.

const root = fileURLToPath(new URL("../../", import.meta.url));

let t: TestContext;
beforeAll(async () => {
  t = await createTestApp();
  const service = await bearer(t);
  for (let i = 0; i < 3; i++) {
    const payment = await createPayment(t);
    if (i === 1) await t.app.request(`/v1/payments/${payment.id}/cancel`, { method: "POST", headers: { ...service, "Idempotency-Key": newKey() } });
  }
  await sealAuditLog(t.database.handle.db);
}, 60_000);
afterAll(() => t.close());

const rows = <T>(query: ReturnType<typeof sql>) => queryRows<T>(t.database.handle.db, query);
const sealedCount = async () => (await rows<{ n: number }>(sql`select count(*)::int as n from audit_log where seq is not null`))[0]!.n;

/** Runs statements as a superuser with the append-only triggers off, as an attacker with that power would. */
async function asSuperuserWithoutTriggers(statements: string) {
  await t.database.handle.db.transaction(async (tx) => {
    await tx.execute(sql.raw("alter table audit_log disable trigger user"));
    // The statements here hold no semicolon inside a literal, so splitting on it is safe.
    for (const statement of statements.split(";").map((s) => s.trim()).filter(Boolean)) await tx.execute(sql.raw(statement));
    await tx.execute(sql.raw("alter table audit_log enable trigger user"));
  });
}

/** Tampers, checks, and puts every row back exactly as it was (from a copy taken first). */
async function withTampering<T>(statements: string, check: () => Promise<T>): Promise<T> {
  await t.database.handle.db.execute(sql`drop table if exists audit_log_copy`);
  await t.database.handle.db.execute(sql`create table audit_log_copy as select * from audit_log`);
  try {
    await asSuperuserWithoutTriggers(statements);
    return await check();
  } finally {
    // seq is unique: clear it first, so rows that swapped places can take their own back.
    await asSuperuserWithoutTriggers(`
      update audit_log set seq = null;
      update audit_log a set seq = c.seq, at = c.at, actor = c.actor, action = c.action, entity_type = c.entity_type,
        entity_id = c.entity_id, request_id = c.request_id, data = c.data, prev_hash = c.prev_hash, hash = c.hash
        from audit_log_copy c where a.id = c.id;
      insert into audit_log select * from audit_log_copy c where not exists (select 1 from audit_log a where a.id = c.id);
      drop table audit_log_copy`);
  }
}

describe("verifyAuditChain", () => {
  it("finds the chain the service wrote intact, every row counted", async () => {
    const result = await verifyAuditChain(t.database.handle.db);
    const sealed = await sealedCount();
    expect(sealed).toBeGreaterThanOrEqual(4);
    expect(result).toEqual({ intact: true, rows: sealed, unsealed: 0 });
    expect(describeAuditChain(result)).toBe(`audit chain intact: ${sealed} rows`);
  });

  it("walks a chain longer than one batch", async () => {
    expect(await verifyAuditChain(t.database.handle.db, { batchSize: 2 })).toEqual({ intact: true, rows: await sealedCount(), unsealed: 0 });
    const broken = await withTampering(`update audit_log set action = 'payment.refunded' where seq = 4`, () => verifyAuditChain(t.database.handle.db, { batchSize: 2 }));
    expect(broken).toMatchObject({ intact: false, seq: 4, reason: "hash mismatch" });
  });

  it("counts rows not sealed yet without judging them", async () => {
    await createPayment(t);
    const result = await verifyAuditChain(t.database.handle.db);
    expect(result).toMatchObject({ intact: true, unsealed: 1 });
    expect(describeAuditChain(result)).toMatch(/^audit chain intact: \d+ rows \(1 not sealed yet\)$/);
    await sealAuditLog(t.database.handle.db);
    expect(await verifyAuditChain(t.database.handle.db)).toMatchObject({ intact: true, unsealed: 0 });
  });

  it.each([
    ["a row's data was changed", `update audit_log set data = '{"amount": 1}' where seq = 3`, 3, "hash mismatch"],
    ["a row's time was changed", `update audit_log set at = at - interval '1 day' where seq = 2`, 2, "hash mismatch"],
    ["a row's actor was changed", `update audit_log set actor = 'admin:mallory' where seq = 1`, 1, "hash mismatch"],
    [
      "a row was changed and its own hash recomputed",
      `update audit_log set data = '{"amount": 1}' where seq = 3;
       update audit_log set hash = audit_log_row_hash(prev_hash, seq, at, actor, action, entity_type, entity_id, request_id, data) where seq = 3`,
      4,
      "prev_hash mismatch",
    ],
    ["a row was deleted", `delete from audit_log where seq = 2`, 2, "gap"],
    ["the first row was deleted", `delete from audit_log where seq = 1`, 1, "gap"],
    ["two rows swapped places", `update audit_log set seq = -seq where seq in (2, 3); update audit_log set seq = 5 + seq where seq in (-2, -3)`, 2, "prev_hash mismatch"],
  ])("names the first broken link when %s", async (_name, statements, seq, reason) => {
    const result = await withTampering(statements, () => verifyAuditChain(t.database.handle.db));
    expect(result).toMatchObject({ intact: false, seq, reason });
    expect(describeAuditChain(result)).toBe(`audit chain broken at seq ${seq}: ${reason}`);
    expect(await verifyAuditChain(t.database.handle.db)).toMatchObject({ intact: true });
  });
});

/** Runs `npm run audit:verify`'s command against a database URL. */
function runCli(databaseUrl: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "lib/entry/audit-verify.ts"], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: databaseUrl, DB_SSL_MODE: "disable", ENVIRONMENT: "development", LOG_LEVEL: "silent" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(!realPostgresUrl)("npm run audit:verify (real Postgres)", () => {
  it("prints the intact chain's length and exits 0", async () => {
    const { code, stdout } = await runCli(t.database.url!);
    expect(stdout).toBe(`audit chain intact: ${await sealedCount()} rows\n`);
    expect(code).toBe(0);
  });

  it("names the row a superuser changed and exits 1", async () => {
    const { code, stdout, stderr } = await withTampering(`update audit_log set data = '{"refunded": true}' where seq = 3`, () => runCli(t.database.url!));
    expect(stderr).toBe("audit chain broken at seq 3: hash mismatch\n");
    expect(stdout).toBe("");
    expect(code).toBe(1);
  });
});

describe.skipIf(!realPostgresUrl)("database roles (real Postgres)", () => {
  let admin: postgres.Sql;
  beforeAll(async () => {
    admin = postgres(t.database.url!, { max: 1, onnotice: () => {} });
    // Roles are cluster-wide and roles.sql is idempotent, but two test runs applying it at once may
    // collide on the catalog; try again.
    const rolesSql = readFileSync(`${root}drizzle/roles.sql`, "utf8");
    for (let attempt = 1; ; attempt++) {
      try {
        await admin.unsafe(rolesSql);
        break;
      } catch (error) {
        if (attempt >= 5) throw error;
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  });
  afterAll(() => admin?.end());

  class Rollback extends Error {}
  /** Runs one statement as a role in a transaction that is always rolled back; the error code if it failed. */
  async function asRole(role: "payment_app" | "payment_analytics", statement: string): Promise<{ ok: true } | { ok: false; code: string }> {
    try {
      await admin.begin(async (tx) => {
        await tx.unsafe(`set local role ${role}`);
        await tx.unsafe(statement);
        throw new Rollback();
      });
    } catch (error) {
      if (error instanceof Rollback) return { ok: true };
      return { ok: false, code: (error as { code?: string }).code ?? String(error) };
    }
    return { ok: true };
  }
  const denied = { ok: false, code: "42501" };
  const appendRow = `insert into audit_log (actor, action, entity_type, entity_id, data) values ('test', 'test.append', 'payment', 'pay_x', '{}')`;

  it("lets payment_analytics read every table and write none", async () => {
    for (const table of ["payments", "refunds", "audit_log", "gateway_messages", "events", "jobs", "payment_methods"]) {
      expect(await asRole("payment_analytics", `select count(*) from ${table}`), table).toEqual({ ok: true });
    }
    expect(await asRole("payment_analytics", `insert into payments (id) values ('pay_x')`)).toEqual(denied);
    expect(await asRole("payment_analytics", `update payments set status = 'succeeded'`)).toEqual(denied);
    expect(await asRole("payment_analytics", `delete from refunds`)).toEqual(denied);
    expect(await asRole("payment_analytics", `update payment_methods set enabled = false`)).toEqual(denied);
    expect(await asRole("payment_analytics", appendRow)).toEqual(denied);
    expect(await asRole("payment_analytics", `update audit_log set action = 'x'`)).toEqual(denied);
    expect(await asRole("payment_analytics", `truncate jobs`)).toEqual(denied);
  });

  it("makes every session of payment_analytics read-only", async () => {
    const url = new URL(t.database.url!);
    url.username = "payment_analytics";
    url.password = "";
    const analytics = postgres(url.toString(), { max: 1, onnotice: () => {} });
    try {
      const [setting] = await analytics`show default_transaction_read_only`;
      expect(setting!.default_transaction_read_only).toBe("on");
      const error = await analytics.unsafe(appendRow).then(() => undefined, (e: { code?: string }) => e);
      expect(["25006", "42501"]).toContain(error?.code);
      const [{ n }] = (await analytics`select count(*)::int as n from audit_log`) as unknown as [{ n: number }];
      expect(n).toBeGreaterThan(0);
    } finally {
      await analytics.end();
    }
  });

  it("lets payment_app append to the audit log but not change, delete or truncate it", async () => {
    expect(await asRole("payment_app", appendRow)).toEqual({ ok: true });
    expect(await asRole("payment_app", `select count(*) from audit_log`)).toEqual({ ok: true });
    expect(await asRole("payment_app", `update audit_log set action = 'tampered' where seq = 1`)).toEqual(denied);
    expect(await asRole("payment_app", `update audit_log set hash = null`)).toEqual(denied);
    expect(await asRole("payment_app", `delete from audit_log where seq = 1`)).toEqual(denied);
    expect(await asRole("payment_app", `truncate audit_log`)).toEqual(denied);
  });

  it("lets payment_app do its work on the other tables", async () => {
    expect(await asRole("payment_app", `update payments set updated_at = now() where false`)).toEqual({ ok: true });
    expect(await asRole("payment_app", `delete from jobs where false`)).toEqual({ ok: true });
    expect(await asRole("payment_app", `select count(*) from drizzle.__drizzle_migrations`)).toEqual({ ok: true });
  });

  it("lets payment_app seal what it appended, through audit_log_seal only", async () => {
    await admin.begin(async (tx) => {
      await tx.unsafe(`set local role payment_app`);
      await tx.unsafe(appendRow);
      const [{ sealed }] = (await tx.unsafe(`select audit_log_seal() as sealed`)) as unknown as [{ sealed: number }];
      expect(sealed).toBeGreaterThanOrEqual(1);
      throw new Rollback();
    }).catch((error: unknown) => {
      if (!(error instanceof Rollback)) throw error;
    });
    expect(await verifyAuditChain(t.database.handle.db)).toMatchObject({ intact: true, unsealed: 0 });
  });
});
