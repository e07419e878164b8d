import { readFileSync } from "node:fs";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryRows } from "../../lib/adapters/db/client.js";
import { drizzleDir } from "../../lib/adapters/db/migrate.js";
import { isCardChannel, isKnownChannel } from "../../lib/adapters/fiuu/channels.js";
import { createTestDatabase, type TestDatabase } from "../support/databases.js";

// Migration 0005 corrects the catalogue an older seed.sql wrote; the seed then adds what is new.
// A database upgraded that way must hold what a new database holds, and keep an operator's changes.

const migration0005 = readFileSync(`${drizzleDir}migrations/0005_channel_catalogue.sql`, "utf8");
const seed = readFileSync(`${drizzleDir}seed.sql`, "utf8");

/** The rows drizzle/seed.sql wrote before migration 0005, as they were. */
const oldSeed = `
INSERT INTO payment_methods (code, name, type, currencies, min_amount, max_amount, enabled, sort_order) VALUES
  ('credit',          'Credit / debit card',          'card',           '{MYR,USD,SGD}', 100,  NULL,       true,  10),
  ('fpx',             'FPX online banking (all banks)', 'online_banking', '{MYR}',       100,  3000000,    true,  20),
  ('FPX_MB2U',        'Maybank2u (FPX)',              'online_banking', '{MYR}',         100,  3000000,    true,  21),
  ('FPX_CIMBCLICKS',  'CIMB Clicks (FPX)',            'online_banking', '{MYR}',         100,  3000000,    true,  22),
  ('FPX_PBB',         'Public Bank (FPX)',            'online_banking', '{MYR}',         100,  3000000,    true,  23),
  ('FPX_HLB',         'Hong Leong Bank (FPX)',        'online_banking', '{MYR}',         100,  3000000,    true,  24),
  ('FPX_RHB',         'RHB Now (FPX)',                'online_banking', '{MYR}',         100,  3000000,    true,  25),
  ('FPX_AMB',         'AmOnline (FPX)',               'online_banking', '{MYR}',         100,  3000000,    true,  26),
  ('FPX_BIMB',        'Bank Islam (FPX)',             'online_banking', '{MYR}',         100,  3000000,    true,  27),
  ('FPX_B2B_MB2U',    'Maybank2e (FPX B2B)',          'online_banking', '{MYR}',         200,  100000000,  true,  30),
  ('FPX_B2B_CIMB',    'CIMB BizChannel (FPX B2B)',    'online_banking', '{MYR}',         200,  100000000,  true,  31),
  ('TNG-EWALLET',     'Touch ''n Go eWallet',         'ewallet',        '{MYR}',         100,  500000,     true,  40),
  ('BOOST',           'Boost',                        'ewallet',        '{MYR}',         100,  500000,     true,  41),
  ('GrabPay',         'GrabPay',                      'ewallet',        '{MYR}',         100,  500000,     true,  42),
  ('ShopeePay',       'ShopeePay',                    'ewallet',        '{MYR}',         100,  500000,     true,  43),
  ('MB2U_QRPay-Push', 'Maybank QRPay',                'ewallet',        '{MYR}',         100,  500000,     true,  44),
  ('RPP_DuitNowQR',   'DuitNow QR',                   'qr',             '{MYR}',         100,  500000,     true,  50),
  ('cash',            '7-Eleven cash',                'cash',           '{MYR}',         100,  150000,     true,  60),
  ('jompay',          'JomPAY',                       'cash',           '{MYR}',         100,  3000000,    true,  61),
  ('Atome',           'Atome (buy now, pay later)',   'bnpl',           '{MYR}',         100,  500000,     true,  70)
ON CONFLICT (code) DO NOTHING;`;

interface Method {
  code: string;
  name: string;
  type: string;
  currencies: string[];
  min_amount: number;
  max_amount: number | null;
  enabled: boolean;
  sort_order: number;
}

async function catalogue(database: TestDatabase): Promise<Method[]> {
  const rows = await queryRows<Method>(database.handle.db, sql`select * from payment_methods order by code`);
  return rows.map((r) => ({ ...r, min_amount: Number(r.min_amount), max_amount: r.max_amount === null ? null : Number(r.max_amount) }));
}

/** A migrated database whose catalogue is the old seed's, as a database deployed before 0005 holds it. */
async function databaseWithOldCatalogue(): Promise<TestDatabase> {
  const database = await createTestDatabase();
  await database.handle.exec(`DELETE FROM payment_methods; ${oldSeed}`);
  return database;
}

/** What a start of the new build does to that database: migration 0005 (not yet applied there), then the seed. */
async function upgrade(database: TestDatabase) {
  await database.handle.exec(migration0005);
  await database.handle.exec(seed);
}

let fresh: TestDatabase;
let freshCatalogue: Method[];
beforeAll(async () => {
  fresh = await createTestDatabase();
  freshCatalogue = await catalogue(fresh);
});
afterAll(() => fresh.drop());

describe("the catalogue of a new database", () => {
  it("holds Fiuu's request codes only, each known to the channel names", () => {
    expect(freshCatalogue.map((m) => m.code)).toContain("FPX_M2E");
    expect(freshCatalogue.map((m) => m.code)).not.toContain("FPX_B2B_MB2U");
    for (const method of freshCatalogue) {
      expect(isKnownChannel(method.code), method.code).toBe(true);
      expect(isCardChannel(method.code), method.code).toBe(method.type === "card");
    }
  });

  it("stores the spec's '> 1.00' as an inclusive 101, Atome's 'above RM 10.00' as 1001, and maxima only for FPX B2B", () => {
    for (const method of freshCatalogue) {
      const b2b = method.code.startsWith("FPX_B2B_") || method.code === "FPX_M2E";
      const expected = b2b ? [200, 100_000_000] : method.code === "Atome" ? [1001, null] : [101, null];
      expect([method.min_amount, method.max_amount], method.code).toEqual(expected);
      expect(method.currencies, method.code).toEqual(method.code === "credit" ? ["MYR", "USD", "SGD"] : ["MYR"]);
    }
  });

  it("is not changed by migration 0005 and the seed running again", async () => {
    await upgrade(fresh);
    expect(await catalogue(fresh)).toEqual(freshCatalogue);
  });
});

describe("migration 0005 on a database the old seed filled", () => {
  it("leaves, with the seed after it, the same catalogue as a new database", async () => {
    const old = await databaseWithOldCatalogue();
    try {
      expect((await catalogue(old)).map((m) => m.code)).toContain("FPX_B2B_MB2U");
      await upgrade(old);
      expect(await catalogue(old)).toEqual(freshCatalogue);
    } finally {
      await old.drop();
    }
  });

  it("renames FPX_B2B_MB2U to FPX_M2E keeping its enabled flag and order, and keeps a shop's own limits", async () => {
    const old = await databaseWithOldCatalogue();
    try {
      await old.handle.exec(`
        UPDATE payment_methods SET enabled = false, sort_order = 5 WHERE code = 'FPX_B2B_MB2U';
        UPDATE payment_methods SET max_amount = 300000 WHERE code = 'TNG-EWALLET';
        UPDATE payment_methods SET min_amount = 500, max_amount = 2000000 WHERE code = 'GrabPay';
        UPDATE payment_methods SET min_amount = 5000 WHERE code = 'Atome';
        UPDATE payment_methods SET enabled = false WHERE code = 'cash';`);
      await upgrade(old);
      const byCode = new Map((await catalogue(old)).map((m) => [m.code, m]));
      expect(byCode.has("FPX_B2B_MB2U")).toBe(false);
      expect(byCode.get("FPX_M2E")).toEqual({
        code: "FPX_M2E",
        name: "Maybank2E (FPX B2B)",
        type: "online_banking",
        currencies: ["MYR"],
        min_amount: 200,
        max_amount: 100_000_000,
        enabled: false,
        sort_order: 5,
      });
      // The shop's own limits survive; the minimum the spec raises is raised all the same.
      expect(byCode.get("TNG-EWALLET")).toMatchObject({ min_amount: 101, max_amount: 300000 });
      expect(byCode.get("GrabPay")).toMatchObject({ min_amount: 500, max_amount: 2000000 });
      expect(byCode.get("Atome")).toMatchObject({ min_amount: 5000, max_amount: null });
      expect(byCode.get("cash")).toMatchObject({ enabled: false, min_amount: 101, max_amount: null });
      // Seeded values are corrected.
      expect(byCode.get("fpx")).toMatchObject({ min_amount: 101, max_amount: null });
      expect(byCode.get("jompay")).toMatchObject({ min_amount: 101, max_amount: null });
      expect(byCode.get("credit")).toMatchObject({ min_amount: 101, max_amount: null });
      expect(byCode.get("FPX_B2B_CIMB")).toMatchObject({ min_amount: 200, max_amount: 100_000_000 });
      // Channels the old seed lacked come from the seed.
      for (const code of ["FPX_OCBC", "FPX_B2B_HSBC", "ShopBack", "cash99"]) expect(byCode.has(code), code).toBe(true);
    } finally {
      await old.drop();
    }
  });

  it("moves unpaid payments on FPX_B2B_MB2U to FPX_M2E and leaves finished ones as they were", async () => {
    const old = await databaseWithOldCatalogue();
    try {
      const insert = (id: string, status: string) =>
        old.handle.db.execute(sql`insert into payments (id, order_id, amount, currency, status, channel, description, customer_name,
          customer_email, client_secret_hash, gateway_order_id, created_by, expires_at)
          values (${id}, ${`order-${id}`}, 5000, 'MYR', ${status}, 'FPX_B2B_MB2U', 'x', 'n', 'e', 'h', ${id.replace("_", "")}, 'test', now())`);
      await insert("pay_open", "created");
      await insert("pay_failed", "failed");
      await upgrade(old);
      const channels = await queryRows<{ id: string; channel: string }>(old.handle.db, sql`select id, channel from payments order by id`);
      expect(channels).toEqual([
        { id: "pay_failed", channel: "FPX_B2B_MB2U" },
        { id: "pay_open", channel: "FPX_M2E" },
      ]);
    } finally {
      await old.drop();
    }
  });

  it("keeps an FPX_M2E row an operator added by hand and drops the invented one", async () => {
    const old = await databaseWithOldCatalogue();
    try {
      await old.handle.exec(`INSERT INTO payment_methods (code, name, type, currencies, min_amount, max_amount, enabled, sort_order)
        VALUES ('FPX_M2E', 'Maybank2E', 'online_banking', '{MYR}', 200, 100000000, true, 33);`);
      await upgrade(old);
      const rows = (await catalogue(old)).filter((m) => m.code === "FPX_M2E" || m.code === "FPX_B2B_MB2U");
      expect(rows).toEqual([expect.objectContaining({ code: "FPX_M2E", name: "Maybank2E", sort_order: 33 })]);
    } finally {
      await old.drop();
    }
  });
});
