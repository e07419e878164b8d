import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  key0,
  refundAnswerSignature,
  refundSignature,
  refundStatusSignature,
  requerySkey,
  safeEqualHex,
  skey,
  verifySkey,
  vcode,
  vrfKey,
} from "../../lib/adapters/fiuu/signatures.js";

// Expected values come from FIUU.md §6 (public vectors) or from md5 recomputed here by hand, never
// from the functions under test.
const md5 = (text: string) => createHash("md5").update(text, "utf8").digest("hex");

const report = {
  tranID: "000001",
  orderid: "20160331082207680000",
  status: "00",
  domain: "test4321",
  amount: "10.00",
  currency: "MYR",
  paydate: "2016-03-29 04:02:21",
  appcode: "abcdefg",
};
const secretKey = "hilklmn";

describe("vcode", () => {
  it.each([
    {
      name: "FIUU.md vector",
      input: { amount: "10.00", merchantId: "test1234", orderId: "20160331082207680000", verifyKey: "abcdefg" },
      expected: "f3d5496b444ae3d11e09fa92a753ac60",
    },
    {
      name: "currency ignored unless extended",
      input: { amount: "10.00", merchantId: "test1234", orderId: "20160331082207680000", verifyKey: "abcdefg", currency: "MYR" },
      expected: "f3d5496b444ae3d11e09fa92a753ac60",
    },
    {
      name: "extended appends the currency",
      input: { amount: "10.00", merchantId: "test1234", orderId: "20160331082207680000", verifyKey: "abcdefg", currency: "MYR", extended: true },
      expected: md5("10.00test123420160331082207680000abcdefgMYR"),
    },
    {
      name: "hashes the amount string as given",
      input: { amount: "10.0", merchantId: "test1234", orderId: "20160331082207680000", verifyKey: "abcdefg" },
      expected: md5("10.0test123420160331082207680000abcdefg"),
    },
    {
      name: "UTF-8 bytes",
      input: { amount: "1.00", merchantId: "SB_kedai", orderId: "A1", verifyKey: "kunci-ñ" },
      expected: createHash("md5").update(Buffer.from("1.00SB_kedaiA1kunci-ñ", "utf8")).digest("hex"),
    },
  ])("$name", ({ input, expected }) => {
    expect(vcode(input)).toBe(expected);
  });

  it("the extended and plain forms differ", () => {
    const base = { amount: "10.00", merchantId: "test1234", orderId: "1", verifyKey: "abcdefg", currency: "MYR" };
    expect(vcode({ ...base, extended: true })).not.toBe(vcode(base));
  });

  it("refuses an extended vcode without a currency", () => {
    expect(() => vcode({ amount: "10.00", merchantId: "m", orderId: "1", verifyKey: "k", extended: true })).toThrow();
  });
});

describe("key0 and skey", () => {
  it.each([
    { status: "00", key0: "757b28d146ab39e0ca7940eaa3baf9a8", skey: "2e684713b97a79721e347492ef75765e" },
    { status: "22", key0: md5("00000120160331082207680000" + "22" + "test432110.00MYR"), skey: "7f5b456722717f87ae37810d641742cb" },
  ])("FIUU.md vector with status $status", (vector) => {
    const fields = { ...report, status: vector.status };
    expect(key0(fields)).toBe(vector.key0);
    expect(skey(fields, secretKey)).toBe(vector.skey);
  });
});

describe("verifySkey", () => {
  const signed = { ...report, skey: "2e684713b97a79721e347492ef75765e", nbcb: "2", channel: "credit" };

  it("accepts the FIUU.md vector, with extra fields around it", () => {
    expect(verifySkey(signed, secretKey)).toBe(true);
  });

  it("accepts the status-22 vector", () => {
    expect(verifySkey({ ...report, status: "22", skey: "7f5b456722717f87ae37810d641742cb" }, secretKey)).toBe(true);
  });

  it.each([
    ["a reformatted amount", { amount: "10.0" }],
    ["another amount", { amount: "100.00" }],
    ["a changed status", { status: "11" }],
    ["a lower-cased currency", { currency: "myr" }],
    ["another tranID", { tranID: "000002" }],
    ["another paydate", { paydate: "2016-03-29 04:02:22" }],
    ["an emptied appcode", { appcode: "" }],
    ["another domain", { domain: "test4322" }],
  ])("rejects %s", (_name, change) => {
    expect(verifySkey({ ...signed, ...change }, secretKey)).toBe(false);
  });

  it.each(["tranID", "orderid", "status", "domain", "amount", "currency", "paydate", "appcode", "skey"])("rejects a report without %s", (name) => {
    const fields: Record<string, string> = { ...signed };
    delete fields[name];
    expect(verifySkey(fields, secretKey)).toBe(false);
  });

  it.each([
    ["an upper-cased skey", "2E684713B97A79721E347492EF75765E"],
    ["a truncated skey", "2e684713b97a79721e347492ef75765"],
    ["a lengthened skey", "2e684713b97a79721e347492ef75765e0"],
    ["an empty skey", ""],
    ["a non-hex skey", "2e684713b97a79721e347492ef75765z"],
    ["a skey with spaces", " 2e684713b97a79721e347492ef75765e"],
  ])("rejects %s", (_name, value) => {
    expect(verifySkey({ ...signed, skey: value }, secretKey)).toBe(false);
  });

  it("rejects the right fields under another secret key", () => {
    expect(verifySkey(signed, "hilklmo")).toBe(false);
  });
});

describe("requery signatures", () => {
  it.each([
    {
      name: "by tranID",
      input: { id: "25248208", domain: "test4321", verifyKey: "abcdefg", amount: "10.00" },
      plain: "25248208test4321abcdefg10.00",
    },
    { name: "by order id", input: { id: "ORD1", domain: "SB_shop", verifyKey: "vk", amount: "1000000.00" }, plain: "ORD1SB_shopvk1000000.00" },
  ])("request skey $name", ({ input, plain }) => {
    expect(requerySkey(input)).toBe(md5(plain));
  });

  it.each([
    {
      name: "by tranID",
      input: { amount: "10.00", secretKey: "sk", domain: "test4321", id: "25248208", statCode: "00" },
      plain: "10.00sktest43212524820800",
    },
    {
      name: "by order id",
      input: { amount: "3899.00", secretKey: "sk", domain: "SB_shop", id: "ORD1", statCode: "11" },
      plain: "3899.00skSB_shopORD111",
    },
  ])("VrfKey $name", ({ input, plain }) => {
    expect(vrfKey(input)).toBe(md5(plain));
  });
});

describe("refund signatures", () => {
  it("FIUU.md refund Signature vector", () => {
    expect(
      refundSignature({
        refundType: "P",
        merchantId: "your_merchant_id",
        refId: "merchant_refund_ref_id",
        txnId: "25248208",
        amount: "10.00",
        secretKey: "your_secret_key",
      }),
    ).toBe("aafbef8720b13a33b37370a1a3b1c238");
  });

  it("answer signature covers RefundID and Status, in order", () => {
    const input = {
      refundType: "P",
      merchantId: "your_merchant_id",
      refId: "merchant_refund_ref_id",
      refundId: "555",
      txnId: "25248208",
      amount: "10.00",
      status: "22",
      secretKey: "your_secret_key",
    };
    expect(refundAnswerSignature(input)).toBe(md5("Pyour_merchant_idmerchant_refund_ref_id5552524820810.0022your_secret_key"));
    expect(refundAnswerSignature({ ...input, status: "00" })).not.toBe(refundAnswerSignature(input));
  });

  it.each([
    ["by RefID", "merchant_refund_ref_id"],
    ["by TxnID", "25248208"],
  ])("status query signature %s", (_name, id) => {
    expect(refundStatusSignature(id, "your_merchant_id", "verify")).toBe(md5(`${id}your_merchant_idverify`));
  });
});

describe("safeEqualHex", () => {
  it.each([
    ["abc123", "abc123", true],
    ["abc123", "abc124", false],
    ["abc123", "abc12", false],
    ["ABC123", "abc123", false],
    ["", "", false],
    ["xyz", "xyz", false],
  ])("%j vs %j → %s", (a, b, expected) => {
    expect(safeEqualHex(a, b)).toBe(expected);
  });
});
