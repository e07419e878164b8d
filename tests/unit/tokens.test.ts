import { createHmac } from "node:crypto";
import { sign } from "hono/jwt";
import { describe, expect, it } from "vitest";
import { createTokenVerifier, signToken, verifyHs256 } from "../../lib/http/auth/tokens.js";

const secret = "s".repeat(32);
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const hs256 = (input: string, key = secret) => createHmac("sha256", key).update(input).digest("base64url");

describe("verifyHs256", () => {
  it("returns the claims of a token signed by signToken (hono/jwt)", async () => {
    const token = await signToken(secret, { sub: "shop-1", role: "service", ttlSeconds: 60, now: new Date(1_000_000_000) });
    expect(verifyHs256(token, secret)).toEqual({ sub: "shop-1", role: "service", iat: 1_000_000, exp: 1_000_060 });
  });

  it("refuses a token signed with another secret", async () => {
    const token = await sign({ sub: "shop-1" }, "t".repeat(32), "HS256");
    expect(() => verifyHs256(token, secret)).toThrow(/signature/);
  });

  it.each([
    ["alg none, unsigned", { alg: "none", typ: "JWT" }, ""],
    ["alg none with a valid HS256 signature", { alg: "none", typ: "JWT" }, "sign"],
    ["HS512", { alg: "HS512", typ: "JWT" }, "sign"],
    ["RS256 on an HS256 signature", { alg: "RS256", typ: "JWT" }, "sign"],
    ["no alg", { typ: "JWT" }, "sign"],
  ])("refuses a header naming %s", (_name, header, signature) => {
    const unsigned = `${b64url(header)}.${b64url({ sub: "shop-1" })}`;
    const token = `${unsigned}.${signature === "sign" ? hs256(unsigned) : ""}`;
    expect(() => verifyHs256(token, secret)).toThrow(/HS256/);
  });

  it("refuses a second spelling of a valid signature (trailing bits changed)", () => {
    const unsigned = `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url({ sub: "shop-1" })}`;
    const signature = hs256(unsigned);
    // 32 bytes are 43 base64url characters; the last one carries 4 unused bits.
    // The canonical last character has those bits clear; the next letter sets one, same bytes.
    const last = signature.at(-1)!;
    expect("AEIMQUYcgkosw048").toContain(last);
    const sibling = String.fromCharCode(last.charCodeAt(0) + 1);
    expect(Buffer.from(`${signature.slice(0, -1)}${sibling}`, "base64url").equals(Buffer.from(signature, "base64url"))).toBe(true);
    expect(verifyHs256(`${unsigned}.${signature}`, secret)).toEqual({ sub: "shop-1" });
    expect(() => verifyHs256(`${unsigned}.${signature.slice(0, -1)}${sibling}`, secret)).toThrow(/signature/);
  });

  it.each([
    ["two parts", "a.b"],
    ["four parts", "a.b.c.d"],
    ["a header that is not JSON", `${Buffer.from("nope").toString("base64url")}.${b64url({})}.x`],
    ["a header that is a JSON array", `${b64url(["HS256"])}.${b64url({})}.x`],
  ])("refuses %s", (_name, token) => {
    expect(() => verifyHs256(token, secret)).toThrow();
  });

  it("refuses a signed payload that is not a JSON object", () => {
    const unsigned = `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url("shop-1")}`;
    expect(() => verifyHs256(`${unsigned}.${hs256(unsigned)}`, secret)).toThrow(/object/);
  });

  it("remembers a verified token under its own secret only", async () => {
    const verify = createTokenVerifier();
    const token = await signToken(secret, { sub: "shop-2", role: "service", ttlSeconds: 60 });
    const claims = verify(token, secret);
    expect(verify(token, secret)).toBe(claims);
    expect(Object.isFrozen(claims)).toBe(true);
    expect(() => verify(token, "u".repeat(32))).toThrow(/signature/);
  });

  it("remembers nothing another verifier (another app's) verified", async () => {
    const token = await signToken(secret, { sub: "shop-3", role: "service", ttlSeconds: 60 });
    const mine = createTokenVerifier();
    const claims = mine(token, secret);
    expect(createTokenVerifier()(token, secret)).not.toBe(claims);
    expect(mine(token, secret)).toBe(claims);
  });

  it("checks a token again once more than a thousand others have verified since", async () => {
    const verify = createTokenVerifier();
    const first = await signToken(secret, { sub: "shop-first", role: "service", ttlSeconds: 60 });
    const claims = verify(first, secret);
    for (let i = 0; i < 1000; i++) verify(await signToken(secret, { sub: `other-shop-${i}`, role: "service", ttlSeconds: 60 }), secret);
    const again = verify(first, secret);
    expect(again).toEqual(claims);
    expect(again).not.toBe(claims);
  });
});
