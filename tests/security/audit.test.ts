import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sealAuditLog } from "../../lib/domain/audit.js";
import { describeAuditChain, verifyAuditChain } from "../../lib/domain/audit-verify.js";
import { queryRows, type Database } from "../../lib/adapters/db/client.js";
import { bearer, createTestApp, newKey, type TestContext } from "../support/app.js";
import { createTestDatabase, realPostgresUrl, type TestDatabase } from "../support/databases.js";
import { createPayment } from "../support/flow.js";
import { applyRoles, asRole as roleUrl, rolePasswords } from "../support/roles.js";

// The audit log's hash chain, checked by `npm run audit:verify` (lib/domain/audit-verify.ts), and the
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
    for (const statement of statements
      .split(";")
      .map((s) => s.trim())
      .filter(Boolean))
      await tx.execute(sql.raw(statement));
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
    const broken = await withTampering(`update audit_log set action = 'payment.refunded' where seq = 4`, () =>
      verifyAuditChain(t.database.handle.db, { batchSize: 2 }),
    );
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
    [
      "two rows swapped places",
      `update audit_log set seq = -seq where seq in (2, 3); update audit_log set seq = 5 + seq where seq in (-2, -3)`,
      2,
      "prev_hash mismatch",
    ],
  ])("names the first broken link when %s", async (_name, statements, seq, reason) => {
    const result = await withTampering(statements, () => verifyAuditChain(t.database.handle.db));
    expect(result).toMatchObject({ intact: false, seq, reason });
    expect(describeAuditChain(result)).toBe(`audit chain broken at seq ${seq}: ${reason}`);
    expect(await verifyAuditChain(t.database.handle.db)).toMatchObject({ intact: true });
  });
});

describe("verifyAuditChain on a chain of 5,000 rows", () => {
  // Long enough that seq sorts differently as text ("10" < "2") and spans several batches.
  let big: TestDatabase;
  const db = () => big.handle.db;
  beforeAll(async () => {
    big = await createTestDatabase();
    await db().execute(sql`insert into audit_log (actor, action, entity_type, entity_id, request_id, data)
      select 'service:shop', 'payment.created', 'payment', 'pay_' || i, 'req_' || i, jsonb_build_object('amount', i)
      from generate_series(1, 5000) as i`);
    expect(await sealAuditLog(db(), 5000)).toBe(5000);
  }, 120_000);
  afterAll(() => big?.drop());

  /** Tampers as a superuser with the triggers off, checks, and rolls everything back. */
  async function tampered<T>(statements: string[], check: (tx: Parameters<Parameters<Database["transaction"]>[0]>[0]) => Promise<T>): Promise<T> {
    let result: T | undefined;
    await db()
      .transaction(async (tx) => {
        await tx.execute(sql.raw("alter table audit_log disable trigger user"));
        for (const statement of statements) await tx.execute(sql.raw(statement));
        result = await check(tx);
        throw new Error("rollback");
      })
      .catch((error: Error) => {
        if (error.message !== "rollback") throw error;
      });
    return result!;
  }

  it("finds all 5,000 rows intact", async () => {
    expect(await verifyAuditChain(db())).toEqual({ intact: true, rows: 5000, unsealed: 0 });
    expect(await verifyAuditChain(db(), { batchSize: 777 })).toEqual({ intact: true, rows: 5000, unsealed: 0 });
  });

  it.each([
    ["a row's data was changed", [`update audit_log set data = '{"amount": 1}' where seq = 4321`], 4321, "hash mismatch"],
    ["a row was backdated", [`update audit_log set at = at - interval '1 hour' where seq = 10`], 10, "hash mismatch"],
    ["a row was deleted", [`delete from audit_log where seq = 2500`], 2500, "gap"],
    ["six rows near the end were deleted", [`delete from audit_log where seq between 4990 and 4995`], 4990, "gap"],
    [
      "two rows were reordered",
      [
        `update audit_log set seq = -seq where seq in (1200, 1201)`,
        `update audit_log set seq = case seq when -1200 then 1201 else 1200 end where seq < 0`,
      ],
      1200,
      "prev_hash mismatch",
    ],
    [
      "a row was rewritten with its own hash recomputed",
      [
        `update audit_log set actor = 'admin:mallory' where seq = 3000`,
        `update audit_log set hash = audit_log_row_hash(prev_hash, seq, at, actor, action, entity_type, entity_id, request_id, data) where seq = 3000`,
      ],
      3001,
      "prev_hash mismatch",
    ],
  ])("names the row when %s", async (_name, statements, seq, reason) => {
    const result = await tampered(statements, (tx) => verifyAuditChain(tx as unknown as Database, { batchSize: 1000 }));
    expect(result).toMatchObject({ intact: false, seq, reason });
    expect(describeAuditChain(result)).toBe(`audit chain broken at seq ${seq}: ${reason}`);
  });

  it.skipIf(!realPostgresUrl)(
    "npm run audit:verify prints 5000 rows intact and exits 0 (needs TEST_DATABASE_URL: the CLI connects to a real PostgreSQL; runs in CI's real-servers pass)",
    async () => {
      const { code, stdout } = await runCli(big.url!);
      expect(stdout).toBe("audit chain intact: 5000 rows\n");
      expect(code).toBe(0);
    },
  );

  it("refuses an insert that brings its own time or chain columns, whoever inserts", async () => {
    for (const columns of ["seq", "hash", "prev_hash", "at"]) {
      const value = columns === "at" ? `'2020-01-01'` : columns === "seq" ? "6000" : `'x'`;
      const error = await db()
        .execute(sql.raw(`insert into audit_log (${columns}, actor, action, entity_type, entity_id) values (${value}, 'a', 'b', 'payment', 'c')`))
        .then(
          () => undefined,
          (e: Error) => e,
        );
      expect((error?.cause as Error | undefined)?.message ?? error?.message ?? "", columns).toMatch(/set by the database/);
    }
    expect(await verifyAuditChain(db())).toEqual({ intact: true, rows: 5000, unsealed: 0 });
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

describe.skipIf(!realPostgresUrl)(
  "npm run audit:verify (needs TEST_DATABASE_URL: the CLI connects to a real PostgreSQL; runs in CI's real-servers pass)",
  () => {
    it("prints the intact chain's length and exits 0", async () => {
      const { code, stdout } = await runCli(t.database.url!);
      expect(stdout).toBe(`audit chain intact: ${await sealedCount()} rows\n`);
      expect(code).toBe(0);
    });

    it("names the row a superuser changed and exits 1", async () => {
      const { code, stdout, stderr } = await withTampering(`update audit_log set data = '{"refunded": true}' where seq = 3`, () =>
        runCli(t.database.url!),
      );
      expect(stderr).toBe("audit chain broken at seq 3: hash mismatch\n");
      expect(stdout).toBe("");
      expect(code).toBe(1);
    });
  },
);

describe.skipIf(!realPostgresUrl)(
  "database roles (needs TEST_DATABASE_URL: real logins of each role of drizzle/roles.sql; runs in CI's real-servers pass)",
  () => {
    // drizzle/roles.sql applied as the README says (psql, passwords as -v variables), then real
    // logins as payment_app and payment_analytics: what each may do is what its session can do.
    let app: postgres.Sql;
    let analytics: postgres.Sql;
    beforeAll(async () => {
      await applyRoles(t.database.url!);
      app = postgres(roleUrl(t.database.url!, "payment_app", rolePasswords.app), { max: 1, onnotice: () => {} });
      analytics = postgres(roleUrl(t.database.url!, "payment_analytics", rolePasswords.analytics), { max: 1, onnotice: () => {} });
    }, 60_000);
    afterAll(async () => {
      await app?.end();
      await analytics?.end();
    });

    class Rollback extends Error {}
    /** Runs statements in one transaction of that session, always rolled back; the SQLSTATE if one failed. */
    async function attempt(session: postgres.Sql, ...statements: string[]): Promise<{ ok: true } | { ok: false; code: string }> {
      try {
        await session.begin(async (tx) => {
          for (const statement of statements) await tx.unsafe(statement);
          throw new Rollback();
        });
      } catch (error) {
        if (error instanceof Rollback) return { ok: true };
        return { ok: false, code: (error as { code?: string }).code ?? String(error) };
      }
      return { ok: true };
    }
    const ok = { ok: true };
    const denied = { ok: false, code: "42501" };
    const appendRow = `insert into audit_log (actor, action, entity_type, entity_id, request_id, data) values ('test', 'test.append', 'payment', 'pay_x', 'req', '{}')`;

    it("logs in as payment_app, owning nothing in the database and a member of no role", async () => {
      const [{ role }] = (await app`select current_user as role`) as unknown as [{ role: string }];
      expect(role).toBe("payment_app");
      const owned = await app`
      select 'relation ' || c.oid::regclass::text as object from pg_class c where pg_get_userbyid(c.relowner) = 'payment_app'
      union all select 'function ' || p.oid::regprocedure::text from pg_proc p where pg_get_userbyid(p.proowner) = 'payment_app'
      union all select 'schema ' || nspname from pg_namespace where pg_get_userbyid(nspowner) = 'payment_app'
      union all select 'database ' || datname from pg_database where pg_get_userbyid(datdba) = 'payment_app'`;
      expect(owned).toEqual([]);
      expect(await app`select roleid::regrole::text as role from pg_auth_members where member = 'payment_app'::regrole`).toEqual([]);
      const [{ owner }] = (await app`select tableowner as owner from pg_tables where tablename = 'audit_log'`) as unknown as [{ owner: string }];
      expect(owner).toBe("payment_owner");
    });

    it("lets payment_app append the descriptive columns and read the audit log", async () => {
      expect(await attempt(app, appendRow)).toEqual(ok);
      expect(await attempt(app, "select count(*) from audit_log")).toEqual(ok);
    });

    it.each([
      ["UPDATE a row", "update audit_log set action = 'tampered' where seq = 1"],
      ["UPDATE the chain columns", "update audit_log set hash = null"],
      [
        "UPDATE with the sealer's flag set",
        "select set_config('audit_log.sealing', 'on', true)",
        "update audit_log set seq = 999, hash = 'x' where seq is null",
      ],
      ["DELETE", "delete from audit_log where seq = 1"],
      ["TRUNCATE", "truncate audit_log"],
      ["insert its own seq", "insert into audit_log (seq, actor, action, entity_type, entity_id) values (999, 'a', 'b', 'payment', 'c')"],
      ["insert its own hash", "insert into audit_log (hash, actor, action, entity_type, entity_id) values ('f00d', 'a', 'b', 'payment', 'c')"],
      ["insert its own prev_hash", "insert into audit_log (prev_hash, actor, action, entity_type, entity_id) values ('', 'a', 'b', 'payment', 'c')"],
      [
        "backdate a row (insert its own at)",
        "insert into audit_log (at, actor, action, entity_type, entity_id) values ('2020-01-01', 'a', 'b', 'payment', 'c')",
      ],
      ["insert its own id", "insert into audit_log (id, actor, action, entity_type, entity_id) values (1, 'a', 'b', 'payment', 'c')"],
      ["disable the append-only trigger", "alter table audit_log disable trigger audit_log_no_update_delete"],
      ["disable every trigger of the table", "alter table audit_log disable trigger all"],
      ["skip triggers for its session", "set session_replication_role = replica"],
      ["drop the trigger", "drop trigger audit_log_no_update_delete on audit_log"],
      [
        "replace the trigger's function",
        "create or replace function audit_log_refuse_change() returns trigger language plpgsql as $$ begin return new; end $$",
      ],
      [
        "replace the sealer",
        "create or replace function audit_log_seal(max_rows integer default 1000) returns integer language sql as $$ select 0 $$",
      ],
      ["take the table over", "alter table audit_log owner to payment_app"],
      ["become the owner", "set role payment_owner"],
      ["create a table of its own", "create table public.mine (x int)"],
    ])("refuses payment_app: %s", async (_name, ...statements) => {
      expect(await attempt(app, ...statements)).toEqual(denied);
    });

    it("gives payment_app no way to grant itself rights back", async () => {
      // GRANT by a role without the grant option warns and grants nothing; the UPDATE stays refused.
      expect(
        await attempt(app, "grant update, delete, truncate on audit_log to payment_app", "update audit_log set action = 'x' where seq = 1"),
      ).toEqual(denied);
      expect(await attempt(app, "grant update on audit_log to payment_app", "delete from audit_log")).toEqual(denied);
      const [{ privileges }] = (await app`select array_to_string(array(
      select privilege_type from information_schema.table_privileges where grantee = 'payment_app' and table_name = 'audit_log' order by 1), ',') as privileges`) as unknown as [
        { privileges: string },
      ];
      expect(privileges).toBe("SELECT");
      const columns = await app`select column_name from information_schema.column_privileges
      where grantee = 'payment_app' and table_name = 'audit_log' and privilege_type = 'INSERT' order by 1`;
      expect(columns.map((c) => c.column_name)).toEqual(["action", "actor", "data", "entity_id", "entity_type", "request_id"]);
    });

    it("seals payment_app's rows through audit_log_seal (SECURITY DEFINER) and the chain stays intact", async () => {
      await app.unsafe(appendRow);
      await app.unsafe(appendRow);
      const [{ sealed }] = (await app`select audit_log_seal() as sealed`) as unknown as [{ sealed: number }];
      expect(sealed).toBeGreaterThanOrEqual(2);
      const [{ definer, path }] =
        (await app`select prosecdef as definer, array_to_string(proconfig, ',') as path from pg_proc where proname = 'audit_log_seal'`) as unknown as [
          { definer: boolean; path: string },
        ];
      expect(definer).toBe(true);
      expect(path).toBe("search_path=pg_catalog, pg_temp");
      const chain = await verifyAuditChain(t.database.handle.db);
      expect(chain).toMatchObject({ intact: true, unsealed: 0 });
      const [{ at_set_by_database }] =
        (await app`select bool_and(at > now() - interval '1 minute') as at_set_by_database from audit_log where action = 'test.append'`) as unknown as [
          { at_set_by_database: boolean },
        ];
      expect(at_set_by_database).toBe(true);
    });

    it("lets payment_app do its work on the other tables and read the migrations journal", async () => {
      expect(await attempt(app, "update payments set updated_at = now() where false")).toEqual(ok);
      expect(await attempt(app, "insert into jobs select * from jobs where false")).toEqual(ok);
      expect(await attempt(app, "delete from jobs where false")).toEqual(ok);
      expect(await attempt(app, "select count(*) from drizzle.__drizzle_migrations")).toEqual(ok);
      expect(await attempt(app, "select count(*) from payment_methods")).toEqual(ok);
    });

    it("lets payment_analytics read every table and write none, in read-only sessions", async () => {
      const [setting] = await analytics`show default_transaction_read_only`;
      expect(setting!.default_transaction_read_only).toBe("on");
      for (const table of [
        "payments",
        "refunds",
        "audit_log",
        "gateway_messages",
        "events",
        "event_deliveries",
        "jobs",
        "payment_methods",
        "drizzle.__drizzle_migrations",
      ]) {
        expect(await attempt(analytics, `select count(*) from ${table}`), table).toEqual(ok);
      }
      // Read-only even where a privilege would allow it (25006), and no privilege to write anyway.
      const readOnlyOrDenied = (result: { ok: boolean; code?: string }) => !result.ok && ["25006", "42501"].includes(result.code!);
      for (const statement of [
        appendRow,
        "update payments set status = 'succeeded'",
        "delete from refunds",
        "truncate jobs",
        "select audit_log_seal()",
      ]) {
        expect(readOnlyOrDenied(await attempt(analytics, statement)), statement).toBe(true);
      }
      // With the session's read-only default lifted, the privileges alone still refuse.
      for (const statement of [appendRow, "update payment_methods set enabled = false", "delete from refunds", "select audit_log_seal()"]) {
        expect(await attempt(analytics, "set transaction read write", statement), statement).toEqual(denied);
      }
    });
  },
);
