import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { payments } from "../../drizzle/schema.js";
import { executeSql, isUniqueViolation, queryRows } from "../../lib/adapters/db/client.js";
import { driverQueryOf, flattenSql } from "../../lib/adapters/db/flat.js";
import { executeAll, executeIfUnchanged } from "../../lib/adapters/db/batch.js";
import { findPaymentVersionByGatewayOrder } from "../../lib/domain/payments/queries.js";
import { paymentLockIfUnchanged, paymentUpdateIfUnchanged } from "../../lib/domain/payments/statements.js";
import { columnsOf, rowOf, updateById } from "../../lib/adapters/db/rows.js";
import { eventInserts } from "../../lib/domain/webhooks/events.js";
import { createTestDatabase, type TestDatabase } from "../support/databases.js";

// The helpers behind the hot statements written as sql templates, on whichever database the suite
// runs against (PGlite, or the real Postgres with TEST_DATABASE_URL).
let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.drop());

const insertPayment = (id: string, gatewayOrderId: string) =>
  database.handle.db.insert(payments).values({
    id,
    orderId: `ORDER-${id}`,
    amount: 2590,
    currency: "MYR",
    description: "Nasi lemak",
    customerName: "x",
    customerEmail: "x",
    metadata: { table: "7" },
    clientSecretHash: "h",
    gatewayOrderId,
    createdBy: "test",
    expiresAt: new Date("2026-11-26T12:30:00.000Z"),
    createdAt: new Date("2026-11-26T12:00:00.123Z"),
  });

describe("rowOf and columnsOf", () => {
  it("read a raw select of every column back as the row Drizzle's own select returns", async () => {
    await insertPayment("pay_rowof1", "payrowof1");
    const [raw] = await queryRows<Record<string, unknown>>(
      database.handle.db,
      sql`select ${columnsOf(payments)} from payments where id = 'pay_rowof1'`,
    );
    const [viaDrizzle] = await database.handle.db.select().from(payments).where(eq(payments.id, "pay_rowof1"));
    const row = rowOf(payments, raw!);
    expect(row).toEqual(viaDrizzle);
    expect(row).toMatchObject({ amount: 2590, metadata: { table: "7" }, tranId: null, createdAt: new Date("2026-11-26T12:00:00.123Z") });
  });
});

describe("executeSql", () => {
  // The one reach into Drizzle's session (driverQueryOf): if a Drizzle upgrade moves it, these fail
  // rather than every statement quietly taking the slower path.
  it("finds the driver's query function under the database and under a transaction", async () => {
    expect(driverQueryOf(database.handle.db)).toBeTypeOf("function");
    await database.handle.db.transaction(async (tx) => {
      expect(driverQueryOf(tx)).toBeTypeOf("function");
    });
  });

  it("answers a flattened statement with the rows, in the driver's types, that Drizzle's execute gives", async () => {
    await insertPayment("pay_flat1", "payflat1");
    const query = sql`select ${columnsOf(payments)}, ${"text"} as t, ${7}::int as n, ${null}::text as z from payments where id = ${"pay_flat1"}`;
    expect(flattenSql(query)).toBeDefined();
    const viaDrizzle = await database.handle.db.execute(query);
    const flat = await executeSql(database.handle.db, query);
    expect(flat).toEqual(viaDrizzle);
    const inTransaction = await database.handle.db.transaction((tx) => executeSql(tx, query));
    expect(inTransaction).toEqual(viaDrizzle);
    const [raw] = await queryRows<Record<string, unknown>>(database.handle.db, query);
    expect(raw).toMatchObject({ t: "text", n: 7, z: null, amount: expect.anything(), created_at: expect.anything() });
  });

  it("runs a write inside the caller's transaction: rolled back with it", async () => {
    await insertPayment("pay_flat2", "payflat2");
    await expect(
      database.handle.db.transaction(async (tx) => {
        await executeSql(tx, updateById(payments, "pay_flat2", { status: "succeeded" }));
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    const [payment] = await database.handle.db.select().from(payments).where(eq(payments.id, "pay_flat2"));
    expect(payment!.status).toBe("created");
  });
});

describe("isUniqueViolation", () => {
  it("names the constraint a duplicate broke, through Drizzle's wrapping", async () => {
    await insertPayment("pay_unique1", "payunique1");
    const error = await insertPayment("pay_unique2", "payunique1").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeDefined();
    expect(isUniqueViolation(error, "payments_gateway_order_id_key")).toBe(true);
    expect(isUniqueViolation(error, "payments_one_open_per_order")).toBe(false);
  });

  it("is false for other errors", async () => {
    const error = await queryRows(database.handle.db, sql`select 1 / 0`).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeDefined();
    expect(isUniqueViolation(error, "payments_gateway_order_id_key")).toBe(false);
    expect(isUniqueViolation(new Error("plain"), "payments_gateway_order_id_key")).toBe(false);
  });
});

describe("updateById", () => {
  it("sets exactly the given columns, through their mappings (timestamps, jsonb, null), and nothing else", async () => {
    await insertPayment("pay_update1", "payupdate1");
    const [before] = await database.handle.db.select().from(payments).where(eq(payments.id, "pay_update1"));
    const changes = {
      status: "succeeded" as const,
      tranId: "30912345",
      failureCode: null,
      metadata: { table: "9", note: "paid" },
      updatedAt: new Date("2026-11-26T12:05:00.456Z"),
    };
    await database.handle.db.execute(updateById(payments, "pay_update1", changes));
    const [after] = await database.handle.db.select().from(payments).where(eq(payments.id, "pay_update1"));
    expect(after).toEqual({ ...before, ...changes });
  });

  it("refuses a key that is not a column", () => {
    expect(() => updateById(payments, "pay_x", { nope: 1 } as never)).toThrow(/not a column/);
  });
});

describe("executeAll", () => {
  const eventsOf = (paymentId: string) =>
    queryRows<{ id: string; receivers: string[] | null }>(
      database.handle.db,
      sql`select e.id, array_agg(d.receiver) filter (where d.receiver is not null) as receivers
        from events e left join event_deliveries d on d.event_id = e.id where e.payment_id = ${paymentId} group by e.id`,
    );

  it("runs a batch's writes as one statement: an update and inserts that reference each other's rows", async () => {
    await insertPayment("pay_batch1", "paybatch1");
    const statements = [
      updateById(payments, "pay_batch1", { status: "succeeded", tranId: "T-batch-1" }),
      ...eventInserts(["https://shop.example/a", "https://shop.example/b"], {
        type: "payment.succeeded",
        paymentId: "pay_batch1",
        data: {},
        now: new Date(),
      }).statements,
    ];
    expect(statements).toHaveLength(3);
    await database.handle.db.transaction((tx) => executeAll(tx, statements));

    const [payment] = await database.handle.db.select().from(payments).where(eq(payments.id, "pay_batch1"));
    expect(payment).toMatchObject({ status: "succeeded", tranId: "T-batch-1" });
    const events = await eventsOf("pay_batch1");
    expect(events).toHaveLength(1);
    expect(events[0]!.receivers?.sort()).toEqual(["https://shop.example/a", "https://shop.example/b"]);
  });

  it("applies none of the writes when one fails", async () => {
    await insertPayment("pay_batch2", "paybatch2");
    const statements = [
      updateById(payments, "pay_batch2", { status: "succeeded" }),
      ...eventInserts([], { type: "payment.succeeded", paymentId: "pay_batch2", data: {}, now: new Date() }).statements,
      sql`insert into event_deliveries (event_id, receiver, next_attempt_at) values ('evt_none', 'https://shop.example/a', now())`,
    ];
    await expect(database.handle.db.transaction((tx) => executeAll(tx, statements))).rejects.toThrow();

    const [payment] = await database.handle.db.select().from(payments).where(eq(payments.id, "pay_batch2"));
    expect(payment!.status).toBe("created");
    expect(await eventsOf("pay_batch2")).toEqual([]);
  });
});

describe("executeIfUnchanged", () => {
  const eventCount = async (paymentId: string) =>
    (await queryRows<{ n: number }>(database.handle.db, sql`select count(*)::int as n from events where payment_id = ${paymentId}`))[0]!.n;
  const event = (paymentId: string) => eventInserts([], { type: "payment.succeeded", paymentId, data: {}, now: new Date() }).statements;

  it("applies the guard and the writes while the row version is the one read", async () => {
    await insertPayment("pay_guard1", "payguard1");
    const seen = (await findPaymentVersionByGatewayOrder(database.handle.db, "payguard1"))!;
    expect(seen.payment.id).toBe("pay_guard1");
    const guard = paymentUpdateIfUnchanged("pay_guard1", seen.version, { status: "succeeded" });
    expect(await executeIfUnchanged(database.handle.db, guard, event("pay_guard1"))).toBe(true);
    const [payment] = await database.handle.db.select().from(payments).where(eq(payments.id, "pay_guard1"));
    expect(payment!.status).toBe("succeeded");
    expect(await eventCount("pay_guard1")).toBe(1);
  });

  it("writes nothing, and answers false, once anything has written the row since it was read", async () => {
    await insertPayment("pay_guard2", "payguard2");
    const seen = (await findPaymentVersionByGatewayOrder(database.handle.db, "payguard2"))!;
    // Any write makes a new row version, even one that sets a column to the value it had.
    await database.handle.db.update(payments).set({ status: "created" }).where(eq(payments.id, "pay_guard2"));
    const update = paymentUpdateIfUnchanged("pay_guard2", seen.version, { status: "succeeded" });
    expect(await executeIfUnchanged(database.handle.db, update, event("pay_guard2"))).toBe(false);
    const lock = paymentLockIfUnchanged("pay_guard2", seen.version);
    expect(await executeIfUnchanged(database.handle.db, lock, event("pay_guard2"))).toBe(false);
    const [payment] = await database.handle.db.select().from(payments).where(eq(payments.id, "pay_guard2"));
    expect(payment!.status).toBe("created");
    expect(await eventCount("pay_guard2")).toBe(0);
    // Read again, the new version passes.
    const again = (await findPaymentVersionByGatewayOrder(database.handle.db, "payguard2"))!;
    expect(await executeIfUnchanged(database.handle.db, paymentLockIfUnchanged("pay_guard2", again.version), event("pay_guard2"))).toBe(true);
    expect(await eventCount("pay_guard2")).toBe(1);
  });

  it("passes any other error through", async () => {
    await insertPayment("pay_guard3", "payguard3");
    const seen = (await findPaymentVersionByGatewayOrder(database.handle.db, "payguard3"))!;
    const broken = sql`insert into event_deliveries (event_id, receiver, next_attempt_at) values ('evt_none', 'https://shop.example/a', now())`;
    await expect(executeIfUnchanged(database.handle.db, paymentLockIfUnchanged("pay_guard3", seen.version), [broken])).rejects.toThrow();
  });
});
