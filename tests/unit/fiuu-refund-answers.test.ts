import { describe, expect, it } from "vitest";
import { FiuuProtocolError } from "../../lib/adapters/fiuu/client-errors.js";
import { parseJsonFields, parseJsonKeepingNumbers } from "../../lib/adapters/fiuu/json.js";
import { classifyRefundRefusal, readRefundAnswer, readRefundStatus } from "../../lib/adapters/fiuu/refund-answers.js";
import { refundStatusCode, verifyRefundNotice } from "../../lib/adapters/fiuu/signatures.js";

// Expected signatures are FIUU.md §6's public vectors, not values the code under test produced.

describe("JSON with numbers kept as written", () => {
  it.each([
    ['{"Amount":30.00}', { Amount: "30.00" }],
    ['{"RefundID":19,"TxnID":25248208}', { RefundID: "19", TxnID: "25248208" }],
    ['{ "a" : -1.50e3 , "b":"x\\"30.00" }', { a: "-1.50e3", b: 'x"30.00' }],
    ['{"ok":true,"none":null,"nested":{"n":1.10}}', { ok: true, none: null, nested: { n: "1.10" } }],
  ])("reads %s", (text, expected) => {
    expect(parseJsonKeepingNumbers(text)).toEqual(expected);
  });

  it("refuses what is not JSON", () => {
    expect(() => parseJsonKeepingNumbers("Amount=30.00")).toThrow(SyntaxError);
    expect(parseJsonFields("StatCode=00\nAmount=1.00")).toBeUndefined();
    expect(parseJsonFields("[1,2]")).toBeUndefined();
  });

  it("reads an object or a list of objects as text fields", () => {
    expect(parseJsonFields('[{"RefID":"a","RefundID":7},{"RefID":"b"}]')).toEqual([{ RefID: "a", RefundID: "7" }, { RefID: "b" }]);
    expect(parseJsonFields('{"Status":"pending","n":null}')).toEqual({ Status: "pending", n: "" });
  });
});

const sent = { refundType: "P", merchantId: "your_merchant_id", refId: "merchant_refund_ref_id", txnId: "25248208", amount: "10.00" };
const secretKey = "your_secret_key";

describe("the refund answer", () => {
  it("verifies FIUU.md's recorded answer: Status the word pending, signed over 22, numbers as JSON numbers", () => {
    const body =
      '{"RefundType":"P","MerchantID":"your_merchant_id","RefID":"merchant_refund_ref_id","RefundID":19,"TxnID":25248208,"Amount":"10.00","Status":"pending","Signature":"816071a1a72a260b87d7570beb0a670a","reason":""}';
    const fields = parseJsonFields(body) as Record<string, string>;
    expect(readRefundAnswer(fields, sent, secretKey)).toEqual({ refundId: "19", status: "pending" });
  });

  it("verifies the same answer with Status as the code 22", () => {
    const fields = {
      RefundType: "P",
      MerchantID: "your_merchant_id",
      RefID: "merchant_refund_ref_id",
      RefundID: "19",
      TxnID: "25248208",
      Amount: "10.00",
      Status: "22",
      Signature: "816071a1a72a260b87d7570beb0a670a",
    };
    expect(readRefundAnswer(fields, sent, secretKey).status).toBe("pending");
  });

  it("refuses it with another Signature, RefID or amount", () => {
    const fields = {
      RefundType: "P",
      MerchantID: "your_merchant_id",
      RefID: "merchant_refund_ref_id",
      RefundID: "19",
      TxnID: "25248208",
      Amount: "10.00",
      Status: "22",
      Signature: "816071a1a72a260b87d7570beb0a670a",
    };
    expect(() => readRefundAnswer({ ...fields, Signature: "0".repeat(32) }, sent, secretKey)).toThrow(FiuuProtocolError);
    expect(() => readRefundAnswer({ ...fields, Status: "00" }, sent, secretKey)).toThrow(/Signature/);
    expect(() => readRefundAnswer(fields, { ...sent, refId: "other" }, secretKey)).toThrow(/another refund/);
  });
});

describe("the refund notice", () => {
  const notice = {
    RefundType: "P",
    MerchantID: "your_merchant_id",
    RefID: "merchant_refund_ref_id",
    RefundID: "19",
    TxnID: "25248208",
    Amount: "10.00",
    Signature: "816071a1a72a260b87d7570beb0a670a",
  };
  it.each(["22", "pending", "Pending", "processing"])("verifies over the code when Status is %s", (status) => {
    expect(verifyRefundNotice({ ...notice, Status: status }, "your_merchant_id", secretKey)).toBe(true);
  });
  it("refuses another merchant, and a Status whose code the Signature does not cover", () => {
    expect(verifyRefundNotice({ ...notice, Status: "22" }, "someone_else", secretKey)).toBe(false);
    expect(verifyRefundNotice({ ...notice, Status: "success" }, "your_merchant_id", secretKey)).toBe(false);
  });
  it("maps words to codes and leaves codes alone", () => {
    expect(["pending", "processing", "success", "rejected", "00", "11", "22"].map(refundStatusCode)).toEqual([
      "22",
      "22",
      "00",
      "11",
      "00",
      "11",
      "22",
    ]);
  });
});

describe("the refund status answer (unsigned)", () => {
  it("picks the entry with this RefID from a list, numbers as strings or JSON numbers", () => {
    const parsed = parseJsonFields(
      '[{"TxnID":25248208,"RefID":"other","RefundID":1,"Status":"success"},{"TxnID":25248208,"RefID":"mine","RefundID":19,"Status":"rejected"}]',
    )!;
    expect(readRefundStatus(parsed, "mine", "m")).toMatchObject({ refId: "mine", refundId: "19", txnId: "25248208", status: "failed" });
  });
  it("reads one object too", () => {
    expect(readRefundStatus({ RefID: "mine", Status: "processing", RefundID: "3" }, "mine", "m").status).toBe("pending");
  });
  it("refuses an answer that lists no refund with this RefID, or an unknown Status", () => {
    expect(() => readRefundStatus([{ RefID: "other", Status: "success" }], "mine", "m")).toThrow(FiuuProtocolError);
    expect(() => readRefundStatus({ RefID: "mine", Status: "maybe" }, "mine", "m")).toThrow(/unknown Status/);
    expect(() => readRefundStatus({ RefID: "mine", Status: "success", MerchantID: "x" }, "mine", "m")).toThrow(/another merchant/);
  });
});

describe("what each PRxxx code means for a refund (FIUU.md §4)", () => {
  it.each([
    ["PR001", "misconfigured"],
    ["PR002", "misconfigured"],
    ["PR003", "misconfigured"],
    ["PR004", "misconfigured"],
    ["PR005", "misconfigured"],
    ["PR006", "misconfigured"],
    ["PR007", "misconfigured"],
    ["PR008", "misconfigured"],
    ["PR009", "final"],
    ["PR010", "retry_if_pending"],
    ["PR011", "final"],
    ["PR012", "final"],
    ["PR013", "final"],
    ["PR014", "final"],
    ["PR015", "retry"],
    ["PR016", "exists"],
    ["PR017", "final"],
    ["PR018", "final"],
    ["PR019", "final"],
    ["PR020", "retry"],
    ["PR999", "unknown"],
  ])("%s is %s", (code, meaning) => {
    expect(classifyRefundRefusal(code)).toBe(meaning);
  });
});
