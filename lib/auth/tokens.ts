import { sign } from "hono/jwt";

export const roles = ["service", "admin", "system"] as const;
export type Role = (typeof roles)[number];

/** Signs an HS256 access token with the claims the API checks: sub, role, exp. */
export async function signToken(secret: string, claims: { sub: string; role: Role; ttlSeconds: number; now?: Date }) {
  const issuedAt = Math.floor((claims.now ?? new Date()).getTime() / 1000);
  return sign({ sub: claims.sub, role: claims.role, iat: issuedAt, exp: issuedAt + claims.ttlSeconds }, secret, "HS256");
}
