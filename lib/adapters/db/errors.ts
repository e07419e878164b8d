/** What went wrong reaching or using PostgreSQL, by cause. */
export type DatabaseFailure =
  | "authentication failed"
  | "TLS refused by the server"
  | "TLS required by the server"
  | "certificate not trusted"
  | "certificate does not match the host"
  | "TLS handshake failed"
  | "host not found"
  | "host unreachable"
  | "database missing"
  | "permission denied"
  | "configuration refused"
  | "query failed";

export interface DatabaseProblem {
  cause: DatabaseFailure;
  /** One line naming the cause and what to check; never a password, a URL or query parameters. */
  message: string;
  /** The driver's or the server's code (SQLSTATE, Node or TLS error code), when there is one. */
  code?: string;
}

interface ErrorLike {
  name?: string;
  code?: string;
  message?: string;
  cause?: unknown;
  problems?: string[];
}

/** The innermost error that carries a code (Drizzle wraps the driver's error as `cause`). */
function rootOf(error: unknown): ErrorLike {
  let found: ErrorLike = (error ?? {}) as ErrorLike;
  for (let e = error as ErrorLike | undefined, depth = 0; e && depth < 6; e = e.cause as ErrorLike | undefined, depth++) {
    if (typeof e !== "object") break;
    if (e.name === "ConfigError" || typeof e.code === "string") return e;
    found = e;
  }
  return found;
}

const untrusted = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_REVOKED",
  "CERT_REJECTED",
  "INVALID_CA",
]);
const unreachable = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "ETIMEDOUT",
  "CONNECT_TIMEOUT",
  "ECONNRESET",
  "EPIPE",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
]);

/** Credentials in a connection URL (postgres://user:password@host) blanked, should a message carry one. */
export function withoutCredentials(text: string): string {
  return text.replace(/(postgres(?:ql)?:\/\/[^:/?#@\s]*):[^@\s]*@/gi, "$1:***@").replace(/(password=)\S+/gi, "$1***");
}

/**
 * Names the cause of a PostgreSQL failure from postgres.js's, Node's and the server's errors:
 * authentication (28P01, 28000), TLS refused (the server has none) or required (pg_hba.conf
 * accepts only TLS), an untrusted certificate or one for another host, an unknown or unreachable
 * host, a missing database (3D000), a missing privilege (42501). The message holds no secret.
 */
export function describeDatabaseError(error: unknown): DatabaseProblem {
  const e = rootOf(error);
  const code = typeof e.code === "string" ? e.code : undefined;
  const text = withoutCredentials(String(e.message ?? error)).split("\n")[0]!;
  const problem = (cause: DatabaseFailure, detail: string): DatabaseProblem => ({ cause, message: `${cause}: ${detail}`, ...(code ? { code } : {}) });

  if (e.name === "ConfigError") return { cause: "configuration refused", message: `configuration refused: ${(e.problems ?? [text]).join("; ")}` };
  switch (code) {
    case "28P01":
      return problem("authentication failed", `${text} (28P01): check the role's password`);
    case "28000":
      if (/no encryption|SSL off/i.test(text))
        return problem(
          "TLS required by the server",
          `${text} (28000): the server accepts this role only over TLS; set sslmode (DB_SSL_MODE) to verify-full`,
        );
      if (/SSL encryption|SSL on|GSS/i.test(text))
        return problem("TLS refused by the server", `${text} (28000): the server refuses this role over TLS (pg_hba.conf hostnossl)`);
      return problem("authentication failed", `${text} (28000): pg_hba.conf or the role's LOGIN attribute refuses it`);
    case "SSL_NOT_SUPPORTED":
      return problem("TLS refused by the server", "the server does not support TLS, but the sslmode (DB_SSL_MODE or the URL's) requires it");
    case "3D000":
      return problem("database missing", `${text} (3D000): create it, or check DB_NAME / the URL's database`);
    case "42501":
      return problem("permission denied", `${text} (42501): the role lacks this privilege (drizzle/roles.sql)`);
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return problem("host not found", `${text}: check DB_HOST / the URL's host`);
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return problem(
        "certificate does not match the host",
        `${text}: the certificate names other hosts; connect by a name it holds, or use verify-ca`,
      );
  }
  if (code && untrusted.has(code)) {
    return problem(
      "certificate not trusted",
      `${text} (${code}): DB_SSL_CA (or DB_SSL_CA_FILE) must hold the CA that signed the server's certificate`,
    );
  }
  if (code?.startsWith("ERR_SSL") || code?.startsWith("ERR_TLS") || /before secure TLS connection was established|TLS|SSL routines/i.test(text)) {
    return problem("TLS handshake failed", text);
  }
  if (code && unreachable.has(code)) return problem("host unreachable", text);
  return problem("query failed", code ? `${text} (${code})` : text);
}

/** `user@host:port/database` of a connection URL, without its password, for messages. */
export function connectionName(url: string | undefined): string {
  if (!url) return "the embedded database";
  try {
    const parsed = new URL(url);
    const user = decodeURIComponent(parsed.username) || "(default user)";
    return `${user}@${parsed.hostname}:${parsed.port || "5432"}${decodeURIComponent(parsed.pathname) || "/"}`;
  } catch {
    return "the configured database";
  }
}
