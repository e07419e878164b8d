import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPostgres, queryRows, type DatabaseHandle } from "../../lib/adapters/db/client.js";
import { sealAuditLog } from "../../lib/domain/audit.js";
import { appliedMigrationCount, drizzleDir, expectedMigrationCount, migrateDatabase } from "../../lib/adapters/db/migrate.js";
import { createTestDatabase, realPostgresUrl, type TestDatabase } from "../support/databases.js";
import { applyRoles, asRole } from "../support/roles.js";

// Runs on whichever database the suite was given: PGlite by default, the real Postgres in CI.
let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase({ migrated: false });
});
afterAll(() => database.drop());

const rows = <T>(query: ReturnType<typeof sql>) => queryRows<T>(database.handle.db, query);

describe("migrations", () => {
  it("create every table of the design on an empty database", async () => {
    expect(await appliedMigrationCount(database.handle)).toBe(0);
    await migrateDatabase(database.handle);
    const tables = await rows<{ table_name: string }>(
      sql`select table_name from information_schema.tables where table_schema = 'public' order by table_name`,
    );
    expect(tables.map((t) => t.table_name)).toEqual([
      "audit_log",
      "event_deliveries",
      "events",
      "gateway_messages",
      "jobs",
      "payment_methods",
      "payments",
      "refunds",
    ]);
    expect(await appliedMigrationCount(database.handle)).toBe(expectedMigrationCount());
  });

  it("are idempotent: running them again changes nothing", async () => {
    await migrateDatabase(database.handle);
    expect(await appliedMigrationCount(database.handle)).toBe(expectedMigrationCount());
    const { count } = (await rows<{ count: number }>(sql`select count(*)::int as count from payment_methods`))[0]!;
    expect(count).toBe(44);
  });

  it("seed the Malaysian channels with the spec's limits (above RM 1.00, Atome above RM 10.00, no invented maxima)", async () => {
    const methods = await rows<{ code: string; min_amount: string | number; max_amount: string | number | null }>(
      sql`select code, min_amount, max_amount from payment_methods where code in ('fpx', 'FPX_M2E', 'TNG-EWALLET', 'credit', 'Atome') order by code`,
    );
    expect(methods.map((m) => [m.code, Number(m.min_amount), m.max_amount === null ? null : Number(m.max_amount)])).toEqual([
      ["Atome", 1001, null],
      ["FPX_M2E", 200, 100000000],
      ["TNG-EWALLET", 101, null],
      ["credit", 101, null],
      ["fpx", 101, null],
    ]);
  });

  it("refuse a payment with a non-positive amount or two open payments for one order", async () => {
    const insert = (id: string, orderId: string, amount: number, gatewayOrderId: string) =>
      database.handle.db.execute(sql`insert into payments (id, order_id, amount, currency, description, customer_name,
        customer_email, client_secret_hash, gateway_order_id, created_by, expires_at)
        values (${id}, ${orderId}, ${amount}, 'MYR', 'x', 'n', 'e', 'h', ${gatewayOrderId}, 'test', now())`);
    await expect(insert("pay_zero", "order-0", 0, "zero")).rejects.toThrow();
    await insert("pay_a", "order-1", 100, "gwa");
    await expect(insert("pay_b", "order-1", 100, "gwb")).rejects.toThrow();
    await expect(insert("pay_c", "order-2", 100, "not-alphanumeric!")).rejects.toThrow();
  });
});

describe("audit log", () => {
  const append = (action: string, entityId: string) =>
    database.handle.db.execute(sql`insert into audit_log (actor, action, entity_type, entity_id, request_id, data)
      values ('service:shop', ${action}, 'payment', ${entityId}, 'req-1', ${JSON.stringify({ amount: 100 })}::jsonb)`);

  it("inserts rows unsealed, then seals them into one chain, each row linked to the one before", async () => {
    await append("payment.created", "pay_1");
    await append("payment.cancelled", "pay_1");
    await append("payment.created", "pay_2");
    const unsealed = await rows<{ n: number }>(sql`select count(*)::int as n from audit_log where seq is null and hash is null`);
    expect(unsealed[0]!.n).toBe(3);
    expect(await sealAuditLog(database.handle.db)).toBe(3);
    expect(await sealAuditLog(database.handle.db)).toBe(0);
    const chain = await rows<{ seq: string | number; prev_hash: string; hash: string; recomputed: string }>(
      sql`select seq, prev_hash, hash, audit_log_row_hash(prev_hash, seq, at, actor, action, entity_type, entity_id, request_id, data) as recomputed
          from audit_log order by seq`,
    );
    expect(chain.map((r) => Number(r.seq))).toEqual([1, 2, 3]);
    expect(chain[0]!.prev_hash).toBe("");
    for (let i = 1; i < chain.length; i++) expect(chain[i]!.prev_hash).toBe(chain[i - 1]!.hash);
    for (const row of chain) {
      expect(row.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(row.recomputed).toBe(row.hash);
    }
  });

  it("refuses to seal a sealed row again, even with the sealing flag set", async () => {
    const error = await database.handle.db
      .transaction(async (tx) => {
        await tx.execute(sql`select set_config('audit_log.sealing', 'on', true)`);
        await tx.execute(sql`update audit_log set seq = 99, hash = 'forged' where seq = 1`);
      })
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect((error?.cause as Error | undefined)?.message ?? error?.message).toMatch(/append-only/);
  });

  it.each([
    ["UPDATE", sql`update audit_log set action = 'tampered'`],
    ["DELETE", sql`delete from audit_log`],
    ["TRUNCATE", sql`truncate audit_log`],
  ])("refuses %s", async (_name, statement) => {
    const error = await database.handle.db.execute(statement).then(
      () => undefined,
      (e: Error) => e,
    );
    expect((error?.cause as Error | undefined)?.message).toMatch(/append-only/);
    const { count } = (await rows<{ count: number }>(sql`select count(*)::int as count from audit_log`))[0]!;
    expect(count).toBe(3);
  });
});

describe.skipIf(!realPostgresUrl)(
  "migrations as payment_owner, the runtime as payment_app (drizzle/roles.sql, needs TEST_DATABASE_URL: real PostgreSQL roles and logins; runs in CI's real-servers pass)",
  () => {
    // The README's order: roles.sql by a superuser, `migrate up` as the owner, the service as
    // payment_app. The shared server trusts local logins, so the roles connect without passwords
    // here; tests/integration/database-tls.test.ts does the same with SCRAM over verify-full.
    const databases: TestDatabase[] = [];
    const sessions: DatabaseHandle[] = [];
    afterAll(async () => {
      await Promise.allSettled(sessions.map((s) => s.close()));
      await Promise.allSettled(databases.map((d) => d.drop()));
    });
    const open = async (url: string) => {
      const handle = await openPostgres(url, { ssl: "disable", max: 2 });
      sessions.push(handle);
      return handle;
    };
    /** What payment_app can do that the service does: create a payment with its audit row, seal, read. */
    async function appWorks(url: string) {
      const app = await open(asRole(url, "payment_app"));
      const id = `pay_${Math.random().toString(36).slice(2, 10)}`;
      await app.db.execute(sql`insert into payments (id, order_id, amount, currency, description, customer_name, customer_email, client_secret_hash, gateway_order_id, created_by, expires_at)
      values (${id}, ${id}, 100, 'MYR', 'x', 'n', 'e', 'h', ${id.replace("_", "")}, 'test', now())`);
      await app.db.execute(
        sql`insert into audit_log (actor, action, entity_type, entity_id, data) values ('service:test', 'payment.created', 'payment', ${id}, '{}')`,
      );
      expect(await sealAuditLog(app.db)).toBeGreaterThanOrEqual(1);
      expect(await appliedMigrationCount(app)).toBe(expectedMigrationCount());
      const denied = await app.db.execute(sql`update audit_log set action = 'x'`).then(
        () => undefined,
        (e: { cause?: { code?: string } }) => e.cause?.code,
      );
      expect(denied).toBe("42501");
    }
    const notOwnedByOwner = async (handle: DatabaseHandle) =>
      rowsOf<{ name: string }>(
        handle,
        sql`select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname in ('public', 'drizzle') and c.relkind in ('r', 'S', 'v') and pg_get_userbyid(c.relowner) <> 'payment_owner'
      union all select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = 'public' and pg_get_userbyid(p.proowner) <> 'payment_owner'`,
      );
    const rowsOf = <T>(handle: DatabaseHandle, query: ReturnType<typeof sql>) => queryRows<T>(handle.db, query);

    it("on a fresh database: roles first, then every migration as the owner, who owns everything", async () => {
      const fresh = await createTestDatabase({ migrated: false });
      databases.push(fresh);
      await applyRoles(fresh.url!);
      const owner = await open(asRole(fresh.url!, "payment_owner"));
      await migrateDatabase(owner);
      expect(await appliedMigrationCount(owner)).toBe(expectedMigrationCount());
      expect(await notOwnedByOwner(owner)).toEqual([]);
      await appWorks(fresh.url!);
      // Up to date: the same again changes nothing and still works as the owner.
      await migrateDatabase(owner);
      expect(await appliedMigrationCount(owner)).toBe(expectedMigrationCount());
      await appWorks(fresh.url!);
    });

    it("on a database an earlier release migrated as another role: roles.sql hands it to the owner, who applies the rest", async () => {
      const earlier = await createTestDatabase({ migrated: false });
      databases.push(earlier);
      // The release before this one: every migration but the last, applied by a superuser.
      const folder = mkdtempSync(path.join(tmpdir(), "migrations-"));
      try {
        cpSync(`${drizzleDir}migrations`, folder, { recursive: true });
        const journal = JSON.parse(readFileSync(`${folder}/meta/_journal.json`, "utf8")) as { entries: { tag: string }[] };
        const last = journal.entries.pop()!;
        writeFileSync(`${folder}/meta/_journal.json`, JSON.stringify(journal));
        rmSync(`${folder}/${last.tag}.sql`);
        const { migrate } = await import("drizzle-orm/postgres-js/migrator");
        await migrate(earlier.handle.db as never, { migrationsFolder: folder });
      } finally {
        rmSync(folder, { recursive: true, force: true });
      }
      await earlier.handle.exec(readFileSync(`${drizzleDir}seed.sql`, "utf8"));
      expect(await appliedMigrationCount(earlier.handle)).toBe(expectedMigrationCount() - 1);

      await applyRoles(earlier.url!);
      const owner = await open(asRole(earlier.url!, "payment_owner"));
      expect(await notOwnedByOwner(owner)).toEqual([]);
      await migrateDatabase(owner);
      expect(await appliedMigrationCount(owner)).toBe(expectedMigrationCount());
      await appWorks(earlier.url!);
    });

    it("gives a table a later migration adds to payment_app and payment_analytics without roles.sql again", async () => {
      const database = await createTestDatabase({ migrated: false });
      databases.push(database);
      await applyRoles(database.url!);
      const owner = await open(asRole(database.url!, "payment_owner"));
      await migrateDatabase(owner);
      await owner.db.execute(sql`create table later_table (id bigserial primary key, note text)`);
      const app = await open(asRole(database.url!, "payment_app"));
      await app.db.execute(sql`insert into later_table (note) values ('from the app')`);
      await app.db.execute(sql`update later_table set note = 'changed'`);
      const analytics = await open(asRole(database.url!, "payment_analytics"));
      expect(await rowsOf<{ note: string }>(analytics, sql`select note from later_table`)).toEqual([{ note: "changed" }]);
      const refused = await analytics.db.execute(sql`delete from later_table`).then(
        () => undefined,
        (e: { cause?: { code?: string } }) => e.cause?.code,
      );
      expect(["25006", "42501"]).toContain(refused);
    });
  },
);
