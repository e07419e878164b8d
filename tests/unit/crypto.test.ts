import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createFieldCipher, hashSecret, keyIdOf, randomToken, safeEqual, secureRandomBytes } from "../../lib/core/crypto.js";

const key = () => randomBytes(32);
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

describe("field cipher", () => {
  it.each([
    ["plain ASCII", "Siti Nurhaliza"],
    ["an email", "siti@example.my"],
    ["unicode and emoji", "Zoë 李小龍 محمد 🙂"],
    ["an empty string", ""],
    ["a long text", "x".repeat(10_000)],
  ])("round-trips %s", (_name, plain) => {
    const cipher = createFieldCipher(key());
    expect(cipher.decrypt(cipher.encrypt(plain))).toBe(plain);
  });

  it("stores v1.<keyId>.<nonce>.<ciphertext>.<tag> with the key's id and a 12-byte nonce", () => {
    const k = key();
    const stored = createFieldCipher(k).encrypt("60123456789");
    const parts = stored.split(".");
    expect(parts).toHaveLength(5);
    expect(parts[0]).toBe("v1");
    expect(parts[1]).toBe(createHash("sha256").update(k).digest("hex").slice(0, 8));
    expect(parts[1]).toBe(keyIdOf(k));
    expect(Buffer.from(parts[2]!, "base64url")).toHaveLength(12);
    expect(Buffer.from(parts[4]!, "base64url")).toHaveLength(16);
    for (const part of parts.slice(2)) expect(part).toMatch(/^[A-Za-z0-9_-]*$/);
  });

  it("gives two different stored values for the same plain text", () => {
    const cipher = createFieldCipher(key());
    const a = cipher.encrypt("siti@example.my");
    const b = cipher.encrypt("siti@example.my");
    expect(a).not.toBe(b);
    expect(a.split(".")[2]).not.toBe(b.split(".")[2]);
  });

  it("does not contain the plain text in any form that is easy to spot", () => {
    const plain = "siti.nurhaliza@example.my";
    const stored = createFieldCipher(key()).encrypt(plain);
    expect(stored).not.toContain(plain);
    expect(stored).not.toContain("siti");
    expect(stored).not.toContain(Buffer.from(plain).toString("base64url"));
    expect(stored).not.toContain(Buffer.from(plain).toString("hex"));
  });

  it("refuses a value changed in any part, character by character", () => {
    const cipher = createFieldCipher(key());
    const stored = cipher.encrypt("Ahmad bin Abdullah");
    let changed = 0;
    for (let i = 0; i < stored.length; i++) {
      if (stored[i] === ".") continue;
      // The smallest change there is: the lowest bit of one base64url character (or of the version/key id).
      const at = alphabet.indexOf(stored[i]!);
      const replacement = at >= 0 ? alphabet[at ^ 1]! : "x";
      const tampered = stored.slice(0, i) + replacement + stored.slice(i + 1);
      expect(() => cipher.decrypt(tampered), `changed character ${i}`).toThrow();
      changed++;
    }
    expect(changed).toBeGreaterThan(40);
  });

  it.each([
    ["a missing part", (s: string) => s.split(".").slice(0, 4).join(".")],
    ["an extra part", (s: string) => `${s}.AAAA`],
    ["another version", (s: string) => s.replace(/^v1\./, "v2.")],
    ["a truncated tag", (s: string) => s.slice(0, -4)],
    [
      "a flipped ciphertext bit",
      (s: string) => {
        const parts = s.split(".");
        const bytes = Buffer.from(parts[3]!, "base64url");
        bytes[0]! ^= 1;
        parts[3] = bytes.toString("base64url");
        return parts.join(".");
      },
    ],
    [
      "swapped ciphertext from another value",
      (s: string, other: string) => {
        const parts = s.split(".");
        parts[3] = other.split(".")[3]!;
        return parts.join(".");
      },
    ],
    ["plain text", () => "Ahmad"],
    ["nothing", () => ""],
  ])("refuses %s", (_name, tamper) => {
    const cipher = createFieldCipher(key());
    const stored = cipher.encrypt("Ahmad bin Abdullah");
    const other = cipher.encrypt("Tan Mei Ling abcdef");
    expect(() => cipher.decrypt(tamper(stored, other))).toThrow();
  });

  it("decrypts values made with a previous key after rotation and encrypts new ones with the current key", () => {
    const oldKey = key();
    const newKey = key();
    const before = createFieldCipher(oldKey).encrypt("Lim Wei Jie");
    const rotated = createFieldCipher(newKey, [oldKey]);
    expect(rotated.decrypt(before)).toBe("Lim Wei Jie");
    const after = rotated.encrypt("Lim Wei Jie");
    expect(after.split(".")[1]).toBe(keyIdOf(newKey));
    expect(createFieldCipher(newKey).decrypt(after)).toBe("Lim Wei Jie");
  });

  it("refuses a value made with a key it does not know", () => {
    const stored = createFieldCipher(key()).encrypt("Lim Wei Jie");
    expect(() => createFieldCipher(key()).decrypt(stored)).toThrow(/unknown key/);
  });

  it("refuses a value whose key id was rewritten to a known key", () => {
    const a = key();
    const b = key();
    const stored = createFieldCipher(a).encrypt("Lim Wei Jie");
    const relabelled = stored.replace(`.${keyIdOf(a)}.`, `.${keyIdOf(b)}.`);
    expect(() => createFieldCipher(b, [a]).decrypt(relabelled)).toThrow();
  });

  it("refuses keys that are not 32 bytes", () => {
    expect(() => createFieldCipher(randomBytes(16))).toThrow(/32 bytes/);
    expect(() => createFieldCipher(key(), [randomBytes(31)])).toThrow(/32 bytes/);
  });
});

describe("secrets", () => {
  it("hashes a secret to SHA-256 hex", () => {
    expect(hashSecret("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(hashSecret("cs_1")).not.toBe(hashSecret("cs_2"));
  });

  it.each([
    ["equal strings", "cs_abcdef", "cs_abcdef", true],
    ["one character different", "cs_abcdef", "cs_abcdeg", false],
    ["a prefix", "cs_abcdef", "cs_abc", false],
    ["different lengths", "a", "a much longer string", false],
    ["empty and non-empty", "", "x", false],
    ["two empty strings", "", "", true],
    ["unicode", "ümlaut", "ümlaut", true],
  ])("compares %s in constant time", (_name, a, b, expected) => {
    expect(safeEqual(a, b)).toBe(expected);
  });

  it("makes random base64url tokens of the requested size", () => {
    const token = randomToken();
    expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(Buffer.from(token, "base64url")).toHaveLength(24);
    expect(Buffer.from(randomToken(32), "base64url")).toHaveLength(32);
    expect(new Set(Array.from({ length: 100 }, () => randomToken())).size).toBe(100);
  });
});

describe("secureRandomBytes", () => {
  it("hands out each pooled byte once: 2,000 draws across several pool refills never repeat a value", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2_000; i++) {
      const bytes = secureRandomBytes(12);
      expect(bytes).toHaveLength(12);
      seen.add(bytes.toString("hex"));
    }
    expect(seen.size).toBe(2_000);
  });

  it("keeps earlier values intact when the pool is replaced", () => {
    const first = secureRandomBytes(16);
    const copy = Buffer.from(first);
    for (let i = 0; i < 1_000; i++) secureRandomBytes(16); // 16 KB: four pools
    expect(first.equals(copy)).toBe(true);
  });

  it("serves large requests straight from the CSPRNG", () => {
    const a = secureRandomBytes(5_000);
    const b = secureRandomBytes(5_000);
    expect(a).toHaveLength(5_000);
    expect(a.equals(b)).toBe(false);
  });
});
