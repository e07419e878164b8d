import { createHash, createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { keyIdOf } from "../../lib/core/crypto.js";
import { createEmailHasher, normaliseEmail } from "../../lib/domain/retention/email-hash.js";

describe("customer email hash", () => {
  const key = randomBytes(32);
  const hasher = createEmailHasher(key);

  it("normalises before hashing: case, surrounding space and Unicode form do not matter", () => {
    expect(normaliseEmail("  Mei.Ling@Example.MY \n")).toBe("mei.ling@example.my");
    expect(hasher.hash("Mei.Ling@Example.MY")).toBe(hasher.hash(" mei.ling@example.my "));
    // "é" composed and decomposed.
    expect(hasher.hash("jos\u00e9@example.my")).toBe(hasher.hash("jose\u0301@example.my"));
    expect(hasher.hash("mei@example.my")).not.toBe(hasher.hash("mei2@example.my"));
  });

  it("is an HMAC under a key derived from ENCRYPTION_KEY, never the key itself and never an unkeyed hash", () => {
    const [version, keyId, hex] = hasher.hash("mei@example.my").split(".");
    expect(version).toBe("h1");
    expect(keyId).toBe(keyIdOf(key));
    expect(hex).toMatch(/^[0-9a-f]{64}$/);
    expect(hex).not.toBe(createHash("sha256").update("mei@example.my").digest("hex"));
    expect(hex).not.toBe(createHmac("sha256", key).update("mei@example.my").digest("hex"));
  });

  it("looks up across a key rotation: hashes made with ENCRYPTION_KEY_PREVIOUS are candidates too", () => {
    const next = randomBytes(32);
    const rotated = createEmailHasher(next, [key]);
    const old = hasher.hash("mei@example.my");
    expect(rotated.candidates("mei@example.my")).toEqual([rotated.hash("mei@example.my"), old]);
    expect(rotated.isCurrent(old)).toBe(false);
    expect(rotated.isCurrent(rotated.hash("mei@example.my"))).toBe(true);
  });
});
