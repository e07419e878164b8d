import { createHmac, timingSafeEqual } from "node:crypto";
import { sign } from "hono/jwt";

export const roles = ["service", "admin", "system"] as const;
export type Role = (typeof roles)[number];

/** Signs an HS256 access token with the claims the API checks: sub, role, exp. */
export async function signToken(secret: string, claims: { sub: string; role: Role; ttlSeconds: number; now?: Date }) {
  const issuedAt = Math.floor((claims.now ?? new Date()).getTime() / 1000);
  return sign({ sub: claims.sub, role: claims.role, iat: issuedAt, exp: issuedAt + claims.ttlSeconds }, secret, "HS256");
}

/**
 * Verifies an HS256 JWT's header and signature and returns its claims (frozen), or throws. The
 * algorithm is pinned: a header naming none, RS256 or anything else is refused before any key is
 * used. Synchronous HMAC from node:crypto: WebCrypto's verify would cost a key import and a
 * thread-pool round trip per request. The claims themselves (exp, sub, role) are the caller's to
 * check, on every request.
 */
export function verifyHs256(token: string, secret: string): Readonly<Record<string, unknown>> {
  return Object.freeze(verifySignature(token, secret));
}

/** verifyHs256 with a memory of the tokens that verified (see createTokenVerifier). */
export type TokenVerifier = (token: string, secret: string) => Readonly<Record<string, unknown>>;

/** How many verified tokens are remembered per secret (the oldest is forgotten first). */
const maxVerifiedTokens = 1000;

/**
 * A verifyHs256 that remembers a token that verified by its exact text, under its secret, so one
 * token sent for many requests is checked once. Each app's dependency set holds its own
 * (lib/app/deps.ts): two apps in one process share no memory.
 */
export function createTokenVerifier(): TokenVerifier {
  const verifiedBySecret = new Map<string, Map<string, Readonly<Record<string, unknown>>>>();
  const verifiedTokens = (secret: string) => {
    let cache = verifiedBySecret.get(secret);
    if (!cache) {
      // An app has one secret; a few are kept so a changed one cannot grow this without bound.
      if (verifiedBySecret.size >= 8) verifiedBySecret.clear();
      cache = new Map();
      verifiedBySecret.set(secret, cache);
    }
    return cache;
  };
  return (token, secret) => {
    const cache = verifiedTokens(secret);
    const known = cache.get(token);
    if (known) return known;
    const claims = verifyHs256(token, secret);
    if (cache.size >= maxVerifiedTokens) cache.delete(cache.keys().next().value!);
    cache.set(token, claims);
    return claims;
  };
}

function verifySignature(token: string, secret: string): Record<string, unknown> {
  const parts = token.split(".");
  if (parts.length !== 3) throw new Error("A JWT has three parts");
  const [header, payload, signature] = parts as [string, string, string];
  const { alg } = decodePart(header);
  if (alg !== "HS256") throw new Error("The token's algorithm is not HS256");
  const expected = createHmac("sha256", secret).update(`${header}.${payload}`).digest();
  const given = Buffer.from(signature, "base64url");
  // Only the canonical encoding is accepted, so one signature has one spelling.
  if (given.length !== expected.length || given.toString("base64url") !== signature || !timingSafeEqual(given, expected)) {
    throw new Error("The token's signature does not match");
  }
  return decodePart(payload);
}

function decodePart(part: string): Record<string, unknown> {
  const value: unknown = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("A JWT part must be a JSON object");
  return value as Record<string, unknown>;
}
