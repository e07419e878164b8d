import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { FiuuProtocolError } from "../../lib/adapters/fiuu/client-errors.js";
import { classifyRequeryCode, parseAnswer, readRequeryAnswers, type RequeryBy } from "../../lib/adapters/fiuu/requery-answers.js";

// Requery answers as Fiuu writes them (FIUU.md §3): type=0 plain text (`Key=Value` from gate-query,
// `Key: Value` from q_by_tid / q_by_oid), type=2 JSON with Amount as a JSON number, and the error
// codes of §3's table. Every VrfKey is recomputed here with node:crypto from FIUU.md's formula.

const md5 = (text: string) => createHash("md5").update(text, "utf8").digest("hex");
const keys = { merchantId: "SB_unitshop", secretKey: "sk_unit_0123456789" };
const byOrder: RequeryBy = { by: "order", orderId: "ORD20261201A" };
const byTran: RequeryBy = { by: "tranID", tranId: "30012345678" };
const vrfByOrder = (amount: string, statCode: string, orderId = "ORD20261201A") =>
  md5(amount + keys.secretKey + keys.merchantId + orderId + statCode);
const vrfByTran = (amount: string, statCode: string, tranId = "30012345678") => md5(amount + keys.secretKey + keys.merchantId + tranId + statCode);

/** Parses a body and reads it as the answer to `query`. */
const read = (body: string, query: RequeryBy = byOrder) => {
  const parsed = parseAnswer(body);
  if (!parsed) throw new Error("unparsable");
  return readRequeryAnswers(parsed, query, keys);
};
const refusalOf = (body: string, query: RequeryBy = byOrder) => {
  try {
    read(body, query);
  } catch (error) {
    if (error instanceof FiuuProtocolError) return { code: error.code, refusal: error.refusal, retryable: error.retryable };
    throw error;
  }
  throw new Error("the answer was accepted");
};

/** A q_by_oid type=0 answer, `Key: Value` lines. */
const qByOidText = (statCode: string, overrides: Record<string, string> = {}) =>
  `${Object.entries({
    StatCode: statCode,
    StatName: statCode === "00" ? "captured" : statCode === "22" ? "pending" : "failed",
    OrderID: "ORD20261201A",
    Amount: "30.00",
    TranID: "30012345678",
    Domain: keys.merchantId,
    BillingDate: "2026-12-01 10:15:00",
    BillingName: "Mei Ling",
    VrfKey: vrfByOrder("30.00", statCode),
    Channel: "FPX_MB2U",
    Currency: "MYR",
    ErrorCode: "",
    ErrorDesc: "",
    ...overrides,
  })
    .map(([name, value]) => `${name}: ${value}`)
    .join("\n")}\n`;

describe("reading a transaction's status", () => {
  it("verifies a q_by_oid type=0 answer written as `Key: Value` lines", () => {
    expect(read(qByOidText("00"))).toMatchObject({
      found: true,
      statCode: "00",
      tranId: "30012345678",
      amount: "30.00",
      currency: "MYR",
      channel: "FPX_MB2U",
      orderId: "ORD20261201A",
      fields: { BillingDate: "2026-12-01 10:15:00" },
    });
  });

  it("verifies a gate-query type=0 answer written as `Key=Value` lines, by tranID", () => {
    const body = [
      "StatCode=22",
      "StatName=pending",
      "TranID=30012345678",
      "Amount=30.00",
      `Domain=${keys.merchantId}`,
      "Channel=cash",
      `VrfKey=${vrfByTran("30.00", "22")}`,
      "Currency=MYR",
      "ErrorCode=",
      "ErrorDesc=",
    ].join("\r\n");
    expect(read(body, byTran)).toMatchObject({ found: true, statCode: "22", tranId: "30012345678", amount: "30.00" });
  });

  it('verifies a type=2 JSON answer whose Amount is the JSON number 30.00, over the text "30.00"', () => {
    const body = `{"StatCode":"00","StatName":"captured","OrderID":"ORD20261201A","Amount":30.00,"TranID":30012345678,"Domain":"${keys.merchantId}","VrfKey":"${vrfByOrder("30.00", "00")}","Channel":"credit","Currency":"MYR","ErrorCode":null,"ErrorDesc":null}`;
    // What a plain JSON parser makes of it: 30, and the VrfKey over "30" would not match.
    expect((JSON.parse(body) as { Amount: unknown }).Amount).toBe(30);
    expect(read(body)).toMatchObject({ found: true, statCode: "00", amount: "30.00", tranId: "30012345678", errorCode: "" });
  });

  it("reads a declined payment as 11 with the bank's error, not as a query error", () => {
    const answer = read(qByOidText("11", { ErrorCode: "FPX_1A", ErrorDesc: "Declined by bank", VrfKey: vrfByOrder("30.00", "11") }));
    expect(answer).toMatchObject({ found: true, statCode: "11", errorCode: "FPX_1A", errorDesc: "Declined by bank" });
  });

  it.each([
    ["a forged VrfKey", { VrfKey: md5("forged") }],
    ["a declined payment turned into 00", { StatCode: "00", VrfKey: vrfByOrder("30.00", "11") }],
    ["a changed amount", { Amount: "3.00" }],
    ["no VrfKey", { VrfKey: "" }],
    ["an upper-case VrfKey", { VrfKey: vrfByOrder("30.00", "00").toUpperCase() }],
    ["a VrfKey over another merchant's answer", { Domain: "SB_othershop", VrfKey: md5(`30.00${keys.secretKey}SB_othershopORD20261201A00`) }],
    ["a genuine answer about another order", { OrderID: "ORDOTHER", VrfKey: vrfByOrder("30.00", "00", "ORDOTHER") }],
    ["an amount that is not a Fiuu amount", { Amount: "1,030.00", VrfKey: vrfByOrder("1,030.00", "00") }],
    ["an unknown StatCode", { StatCode: "33", VrfKey: vrfByOrder("30.00", "33") }],
  ])("never believes an answer with %s", (_name, overrides) => {
    expect(refusalOf(qByOidText("00", overrides))).toEqual({ code: undefined, refusal: undefined, retryable: false });
  });

  it("picks the success from a list of attempts, and refuses the list if one entry is forged", () => {
    const entry = (statCode: string, tranId: string) => ({
      StatCode: statCode,
      TranID: tranId,
      Amount: "30.00",
      Domain: keys.merchantId,
      OrderID: "ORD20261201A",
      Currency: "MYR",
      VrfKey: vrfByOrder("30.00", statCode),
    });
    expect(read(JSON.stringify([entry("11", "1"), entry("00", "2"), entry("22", "3")]))).toMatchObject({ statCode: "00", tranId: "2" });
    expect(refusalOf(JSON.stringify([entry("11", "1"), { ...entry("11", "2"), StatCode: "00" }])).code).toBeUndefined();
  });
});

describe("FIUU.md §3's error codes", () => {
  it.each(["Q203", "Q303", "Q00005"])("reads %s (transaction record not found) as a result: no transaction, not an error", (code) => {
    expect(read(`ErrorCode: ${code}\nErrorDesc: Transaction record not found\n`)).toEqual({
      found: false,
      code,
      desc: "Transaction record not found",
      fields: { ErrorCode: code, ErrorDesc: "Transaction record not found" },
    });
    expect(read(`{"ErrorCode":"${code}","ErrorDesc":"Transaction record not found"}`)).toMatchObject({ found: false, code });
    expect(read(`ErrorCode=${code}\nErrorDesc=Transaction record not found`, byTran)).toMatchObject({ found: false, code });
  });

  it('reads a StatCode of "-" (the q_by_oids example\'s not found) as no transaction', () => {
    const dashes = [
      "StatCode",
      "StatName",
      "Amount",
      "TranID",
      "Domain",
      "BillingDate",
      "BillingName",
      "VrfKey",
      "Channel",
      "Currency",
      "ErrorCode",
      "ErrorDesc",
    ];
    const body = [...dashes.map((name) => `${name}: -`), "OrderID: ORD20261201A"].join("\n");
    expect(read(body)).toMatchObject({ found: false, code: "" });
    expect(read(`{"StatCode":"-","OrderID":"ORD20261201A","ErrorCode":"Q203","ErrorDesc":"Transaction record not found"}`)).toMatchObject({
      found: false,
      code: "Q203",
    });
  });

  it("reads a bare code with its description as that code", () => {
    expect(read("Q203 - Transaction record not found")).toMatchObject({ found: false, code: "Q203", desc: "Transaction record not found" });
    expect(refusalOf("Q99")).toMatchObject({ code: "Q99", refusal: "blocked" });
  });

  it.each(["Q03", "Q00007", "Q00008", "Q05"])("refuses %s as busy: ask again later", (code) => {
    expect(refusalOf(`ErrorCode: ${code}\nErrorDesc: System is busy now\n`)).toEqual({ code, refusal: "busy", retryable: true });
  });

  it("refuses Q99 as blocked, not to be retried", () => {
    expect(refusalOf("ErrorCode: Q99\nErrorDesc: Service blocked due to massive connection. Please send only 1 request every 5 minutes.\n")).toEqual({
      code: "Q99",
      refusal: "blocked",
      retryable: false,
    });
  });

  it.each(["Q01", "Q00001", "Q02", "Q00002", "Q07", "Q04", "Q00003", "Q101", "Q201", "Q00004", "Q102", "Q202", "Q204", "Q150", "Q299", "Q302"])(
    "refuses %s as a misconfiguration",
    (code) => {
      expect(refusalOf(`{"ErrorCode":"${code}","ErrorDesc":"Invalid Parameter Value"}`)).toEqual({
        code,
        refusal: "misconfigured",
        retryable: false,
      });
    },
  );

  it("refuses Q06 (query period expired) as the end of the payment's window", () => {
    expect(refusalOf("ErrorCode: Q06\nErrorDesc: Query period expired\n")).toEqual({ code: "Q06", refusal: "window_over", retryable: false });
  });

  it.each(["Q42", "Q3000", "E500", "XYZ"])("refuses the unlisted code %s as unknown", (code) => {
    expect(refusalOf(`ErrorCode: ${code}\nErrorDesc: something\n`)).toMatchObject({ code, refusal: "unknown", retryable: false });
  });

  it("lets the code decide on a failed status that carries a query code (a signed 11 with Q04 is a misconfiguration)", () => {
    const signed11 = qByOidText("11", { TranID: "", ErrorCode: "Q04", ErrorDesc: "Merchant info not found.", VrfKey: vrfByOrder("30.00", "11") });
    expect(refusalOf(signed11)).toMatchObject({ code: "Q04", refusal: "misconfigured" });
    expect(read(qByOidText("11", { TranID: "", ErrorCode: "Q203", VrfKey: vrfByOrder("30.00", "11") }))).toMatchObject({
      found: false,
      code: "Q203",
    });
  });

  it("never believes an error answer whose VrfKey does not verify, or that is another merchant's", () => {
    expect(refusalOf(`ErrorCode: Q203\nAmount: 30.00\nDomain: ${keys.merchantId}\nVrfKey: ${md5("forged")}\n`).code).toBeUndefined();
    expect(refusalOf(`ErrorCode: Q203\nDomain: SB_othershop\n`).code).toBeUndefined();
    expect(refusalOf(`ErrorCode: Q203\nOrderID: ORDOTHER\n`).code).toBeUndefined();
  });

  it("refuses an answer with neither StatCode nor ErrorCode, and a body that is no answer", () => {
    expect(refusalOf("StatName: captured\n").code).toBeUndefined();
    expect(parseAnswer("<html><body>Maintenance</body></html>")).toBeUndefined();
    expect(parseAnswer("")).toBeUndefined();
  });
});

describe("classifyRequeryCode", () => {
  it.each([
    ["Q203", "not_found"],
    ["Q303", "not_found"],
    ["Q00005", "not_found"],
    ["Q03", "busy"],
    ["Q00007", "busy"],
    ["Q00008", "busy"],
    ["Q05", "busy"],
    ["Q99", "blocked"],
    ["Q06", "window_over"],
    ["Q01", "misconfigured"],
    ["Q00001", "misconfigured"],
    ["Q02", "misconfigured"],
    ["Q00002", "misconfigured"],
    ["Q07", "misconfigured"],
    ["Q04", "misconfigured"],
    ["Q00003", "misconfigured"],
    ["Q101", "misconfigured"],
    ["Q201", "misconfigured"],
    ["Q00004", "misconfigured"],
    ["Q102", "misconfigured"],
    ["Q202", "misconfigured"],
    ["Q204", "misconfigured"],
    ["Q199", "misconfigured"],
    ["Q08", "unknown"],
    ["", "unknown"],
  ])("classifies %s as %s", (code, meaning) => {
    expect(classifyRequeryCode(code)).toBe(meaning);
  });
});
