import { describe, expect, it } from "vitest";
import { findUnstorableText } from "../../lib/core/text.js";

describe("findUnstorableText", () => {
  it("names the path of the first string PostgreSQL cannot store, keys included", () => {
    expect(findUnstorableText({ order_id: "A-1", customer: { name: "Siti", tags: ["ok", "bad\u0000"] } })).toBe("customer.tags.1");
    expect(findUnstorableText({ metadata: { "cart\u0000": "c_1" } })).toBe("metadata.cart\u0000");
    expect(findUnstorableText({ a: { b: "\udc00 lone low surrogate" } })).toBe("a.b");
    expect(findUnstorableText("\ud800")).toBe("");
  });

  it("accepts what can be stored, paired surrogates (an emoji) included", () => {
    expect(findUnstorableText({ description: "2 x Kopi O \u{1F375}", amount: 1050, channel: null, list: [1, true] })).toBeUndefined();
  });

  it("walks any depth without recursion", () => {
    let deep: unknown = "end\u0000";
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(findUnstorableText(deep)?.split(".")).toHaveLength(100_000);
  });
});
