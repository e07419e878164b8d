import { describe, expect, it } from "vitest";
import { isCurrency, parseFiuuAmount, supportedCurrencies, toFiuuAmount } from "../../lib/core/money.js";

describe("toFiuuAmount", () => {
  it.each([
    [0, "0.00"],
    [1, "0.01"],
    [9, "0.09"],
    [10, "0.10"],
    [99, "0.99"],
    [100, "1.00"],
    [1050, "10.50"],
    [389900, "3899.00"],
    [100000, "1000.00"],
    [100000000, "1000000.00"],
    [Number.MAX_SAFE_INTEGER, "90071992547409.91"],
  ])("formats %d minor units as %s", (minor, text) => {
    expect(toFiuuAmount(minor)).toBe(text);
  });

  it.each([[-1], [1.5], [0.1], [Number.NaN], [Number.POSITIVE_INFINITY], [Number.MAX_SAFE_INTEGER + 1]])("refuses %d", (minor) => {
    expect(() => toFiuuAmount(minor)).toThrow(RangeError);
  });

  it("never writes a thousands separator", () => {
    for (const minor of [100000, 123456789, 99999999999]) expect(toFiuuAmount(minor)).not.toContain(",");
  });
});

describe("parseFiuuAmount", () => {
  it.each([
    ["10", 1000],
    ["10.5", 1050],
    ["10.50", 1050],
    ["0.01", 1],
    ["0.5", 50],
    ["0", 0],
    ["3899.00", 389900],
    ["1000000.00", 100000000],
    ["90071992547409.91", Number.MAX_SAFE_INTEGER],
  ])("reads %j as %d minor units", (text, minor) => {
    expect(parseFiuuAmount(text)).toBe(minor);
  });

  it.each([
    "1,000.00",
    "10.505",
    "",
    " 10",
    "10 ",
    "-1",
    "+1",
    "1e3",
    "0x10",
    "10.",
    ".50",
    "01.00",
    "١٠",
    "Infinity",
    "NaN",
    "90071992547409.92",
    "99999999999999999999",
  ])("refuses %j", (text) => {
    expect(parseFiuuAmount(text)).toBeUndefined();
  });

  it("round-trips every formatted amount", () => {
    for (const minor of [0, 1, 10, 99, 100, 1050, 123456, 100000000, Number.MAX_SAFE_INTEGER]) {
      expect(parseFiuuAmount(toFiuuAmount(minor))).toBe(minor);
    }
  });
});

describe("supported currencies", () => {
  it("are the six two-decimal currencies", () => {
    expect([...supportedCurrencies]).toEqual(["MYR", "SGD", "USD", "THB", "PHP", "IDR"]);
  });

  it.each([
    ["MYR", true],
    ["IDR", true],
    ["myr", false],
    ["EUR", false],
    ["", false],
  ])("isCurrency(%j) is %s", (text, expected) => {
    expect(isCurrency(text)).toBe(expected);
  });
});
