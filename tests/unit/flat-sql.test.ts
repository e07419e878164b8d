import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { sql, type SQL } from "drizzle-orm";
import { PgDialect, pgSchema, pgTable, text } from "drizzle-orm/pg-core";
import { describe, expect, it } from "vitest";
import { payments } from "../../drizzle/schema.js";
import { auditInsert } from "../../lib/domain/audit.js";
import { combinedWrites } from "../../lib/adapters/db/batch.js";
import { flattenSql } from "../../lib/adapters/db/flat.js";
import { columnsOf } from "../../lib/adapters/db/rows.js";
import { eventInserts } from "../../lib/domain/webhooks/events.js";
import { jobInsert } from "../../lib/domain/job-queue.js";
import { gatewayMessageUpsert } from "../../lib/domain/payments/reports.js";
import type { PaymentRow } from "../../lib/domain/payments/resource.js";
import { paymentCreate, paymentLockByGatewayOrder, paymentUpdate } from "../../lib/domain/payments/statements.js";

// flattenSql must build exactly what Drizzle's own builder builds, or decline.
const drizzleBuilds = (query: SQL) => {
  const { sql: text, params } = new PgDialect().sqlToQuery(query);
  return { sql: text, params };
};

/** The writes of a report that settles a payment, as applyVerified combines them. */
function reportWrites(): SQL {
  const now = new Date("2026-11-26T12:00:00.000Z");
  return combinedWrites([
    paymentUpdate("pay_1", { status: "succeeded", tranId: "30012345", appcode: null, paidChannel: "fpx_mb2u", updatedAt: now }),
    ...eventInserts(["https://shop.example/hooks", "https://erp.example/hooks"], {
      type: "payment.succeeded",
      paymentId: "pay_1",
      data: { amount: 1050, note: `it's "quoted" $1` },
      now,
    }).statements,
    jobInsert({ kind: "ipn_echo", payload: { fields: { a: "1" } }, dedupeKey: "ipn_echo:1", runAt: now, maxAttempts: 100 }),
    jobInsert({ kind: "requery", payload: { paymentId: "pay_1" }, dedupeKey: "requery:pay_1", runAt: now, sooner: true }),
    auditInsert({ actor: "fiuu:notification", action: "payment.succeeded", entityType: "payment", entityId: "pay_1", data: { from: "created" } }),
  ]);
}

describe("flattenSql", () => {
  it("runs on the drizzle-orm version package.json pins exactly (flat.ts reads its internals; see docs/performance.md)", () => {
    const pinned = (JSON.parse(readFileSync("package.json", "utf8")) as { dependencies: Record<string, string> }).dependencies["drizzle-orm"];
    // drizzle-orm exports no package.json: found beside its entry point.
    let dir = path.dirname(createRequire(import.meta.url).resolve("drizzle-orm"));
    while (!dir.endsWith(`${path.sep}drizzle-orm`) && dir !== path.dirname(dir)) dir = path.dirname(dir);
    const installed = (JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as { version: string }).version;
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
    expect(installed).toBe(pinned);
  });

  it("builds the hot path's statements exactly as Drizzle does: the create, the locking read, the gateway message", () => {
    const now = new Date("2026-11-26T12:00:00.000Z");
    const row = {
      id: "pay_1",
      orderId: "ORDER-1",
      amount: 1050,
      currency: "MYR",
      status: "created",
      channel: null,
      description: "Nasi lemak",
      customerName: "v1.x",
      customerEmail: "v1.y",
      customerMobile: null,
      customerEmailHash: "h",
      returnUrl: null,
      metadata: { table: "7" },
      clientSecretHash: "s",
      gatewayOrderId: "pay1",
      createdBy: "service:shop",
      expiresAt: now,
      createdAt: now,
      updatedAt: now,
    } as Partial<PaymentRow> as PaymentRow;
    const message = {
      kind: "notification",
      fields: { tranID: "30012345", orderid: "pay1", status: "00" },
      signatureValid: true,
      outcome: "applied",
      detail: "created → succeeded",
      paymentId: "pay_1",
      now,
    } as const;
    for (const query of [
      paymentCreate(row, { actor: "service:shop", requestId: "req_1" }),
      paymentLockByGatewayOrder("pay1"),
      gatewayMessageUpsert(message),
    ]) {
      const flat = flattenSql(query);
      expect(flat).toBeDefined();
      expect(flat).toEqual(drizzleBuilds(query));
    }
  });

  it("builds a report's combined writes exactly as Drizzle does", () => {
    const query = reportWrites();
    const flat = flattenSql(query);
    expect(flat).toEqual(drizzleBuilds(query));
    expect(flat!.params.length).toBeGreaterThan(20);
  });

  it("builds the locking select and tables by name as Drizzle does", () => {
    for (const query of [
      sql`select ${columnsOf(payments)} from payments where gateway_order_id = ${"ord-1"} and amount = ${1050} and live = ${true} limit 1 for update`,
      sql`update ${payments} set metadata = ${null} where id = ${"pay_1"}`,
      sql`select ${sql.raw("1")} as one, ${sql.join([sql`${1}`, sql`${"two"}`], sql`, `)}`,
    ]) {
      expect(flattenSql(query)).toEqual(drizzleBuilds(query));
    }
  });

  it("declines what it does not build: columns, arrays, inlined values, tables in a schema", () => {
    const elsewhere = pgSchema("billing");
    const invoices = elsewhere.table("invoices", { id: text("id") });
    const plain = pgTable("notes", { id: text("id") });
    for (const query of [
      sql`select * from payments where ${payments.id} = ${"pay_1"}`,
      sql`select * from payments where id in ${["a", "b"]}`,
      sql`select ${"x"}`.inlineParams(),
      sql`select * from ${invoices}`,
      sql`select ${new Date(0)}`,
    ]) {
      expect(flattenSql(query)).toBeUndefined();
    }
    expect(flattenSql(sql`select * from ${plain}`)).toEqual(drizzleBuilds(sql`select * from ${plain}`));
  });
});
