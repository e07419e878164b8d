import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../context.js";
import { ApiError } from "../../core/errors.js";
import { roles as knownRoles, type Role } from "./tokens.js";

/** Longest client secret considered at all; anything longer is not one of ours. */
const maxClientSecretLength = 512;

export interface AuthenticateOptions {
  /** Roles whose tokens may pass; a valid token with another role is answered 403. */
  roles: readonly Role[];
  /** Whether a checkout page's client secret (`X-Client-Secret` or `?client_secret=`) is accepted instead of a token. */
  clientSecret?: boolean;
}

/**
 * Authenticates the caller and sets `c.get("principal")`: a bearer JWT (HS256 with JWT_SECRET only,
 * claims sub, role and exp all required), or, where allowed and no Authorization header is sent,
 * a client secret that the route itself must check against the payment it names.
 */
export function authenticate(options: AuthenticateOptions) {
  const allowed = new Set<string>(options.roles);
  return createMiddleware<AppEnv>(async (c, next) => {
    const authorization = c.req.header("Authorization");
    if (authorization === undefined) {
      const secret = options.clientSecret ? clientSecretOf(c) : undefined;
      if (secret === undefined) throw unauthenticated(c, "Send Authorization: Bearer <token>.");
      c.set("principal", { kind: "client", secret });
      return next();
    }

    const match = /^Bearer[ \t]+([A-Za-z0-9_.=-]+)[ \t]*$/i.exec(authorization);
    if (!match) throw unauthenticated(c, "The Authorization header must be Bearer <token>.", "invalid_request");
    const deps = c.get("deps");

    let claims: Record<string, unknown>;
    try {
      // The algorithm is pinned to HS256. Time claims are checked below against the app's clock.
      claims = deps.verifyToken(match[1]!, deps.config.jwtSecret);
    } catch {
      throw unauthenticated(c, "The token is invalid.", "invalid_token");
    }

    const now = Math.floor(deps.now().getTime() / 1000);
    const { sub, role, exp, nbf } = claims;
    if (typeof exp !== "number" || !Number.isFinite(exp)) throw unauthenticated(c, "The token has no expiry.", "invalid_token");
    if (exp <= now) throw unauthenticated(c, "The token has expired.", "invalid_token");
    if (nbf !== undefined && (typeof nbf !== "number" || !Number.isFinite(nbf) || nbf > now)) {
      throw unauthenticated(c, "The token is not valid yet.", "invalid_token");
    }
    if (typeof sub !== "string" || sub.length === 0) throw unauthenticated(c, "The token names no subject.", "invalid_token");
    if (typeof role !== "string" || !(knownRoles as readonly string[]).includes(role)) {
      throw unauthenticated(c, "The token carries no known role.", "invalid_token");
    }
    if (!allowed.has(role)) throw new ApiError("forbidden", `The role ${role} may not call this endpoint.`);

    c.set("principal", { kind: "token", sub, role: role as Role });
    return next();
  });
}

/** The subject of the calling token; a checkout page's client secret is refused with 403. */
export function requireTokenSub(c: Context<AppEnv>): string {
  const principal = c.get("principal") as AppEnv["Variables"]["principal"] | undefined;
  if (!principal) throw new ApiError("unauthenticated", "Authentication required.");
  if (principal.kind !== "token") throw new ApiError("forbidden", "This endpoint needs a service token, not a client secret.");
  return principal.sub;
}

function clientSecretOf(c: Context<AppEnv>): string | undefined {
  const secret = c.req.header("X-Client-Secret") || c.req.query("client_secret");
  if (!secret || secret.length > maxClientSecretLength) return undefined;
  return secret;
}

/** A 401 with the RFC 6750 challenge, so clients know a bearer token is what is missing. */
function unauthenticated(c: Context<AppEnv>, detail: string, bearerError?: "invalid_request" | "invalid_token"): ApiError {
  c.header("WWW-Authenticate", bearerError ? `Bearer error="${bearerError}"` : "Bearer");
  return new ApiError("unauthenticated", detail);
}
