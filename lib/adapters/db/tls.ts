import * as nodeTls from "node:tls";
import { ConfigError } from "../../core/config.js";

/** libpq's sslmode values, weakest first. */
export const sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const;
export type SslMode = (typeof sslModes)[number];

/** What configuration says about TLS: DB_SSL_MODE and DB_SSL_CA (PEM; DB_SSL_CA_FILE gives it from a file). */
export interface TlsSettings {
  mode?: SslMode;
  ca?: string;
}

/** The `ssl` option postgres.js takes: off, its own unverified modes, or Node TLS options. */
export type PostgresSsl = false | "prefer" | "require" | nodeTls.ConnectionOptions;

/** Every connection's TLS, resolved once from a URL and the settings by postgresTls. */
export interface PostgresTls {
  /** The URL without libpq's TLS parameters (postgres.js would send those to the server as settings). */
  url: string;
  mode: SslMode;
  /** Where the mode came from, for messages: the URL's sslmode or DB_SSL_MODE. */
  modeFrom: string;
  /** What the client checks of the server's certificate. */
  verify: "nothing" | "chain" | "chain and host name";
  /** postgres.js's ssl option. */
  ssl: PostgresSsl;
  /** allow: plain text first, TLS only if the server refuses a connection without it (lib/adapters/db/allow-socket.ts). */
  plaintextFirst: boolean;
  /** The CA certificates trusted: DB_SSL_CA, or the system's store (sslrootcert=system). */
  trust?: "DB_SSL_CA" | "system";
}

// libpq's TLS parameters a postgres:// URL may carry. sslmode and sslrootcert=system are read;
// the others name files or client certificates, which the service takes another way or not at all.
const tlsParameters = ["sslmode", "sslrootcert", "sslsni"];

/**
 * The one TLS rule of every PostgreSQL connection the service opens (the app's pool, migrations
 * and their lock connection, audit:verify, the Workers build), with libpq's meaning of sslmode:
 * the URL's `sslmode` when it has one, else DB_SSL_MODE (default prefer).
 * - disable: plain text. allow: plain text, TLS if the server requires it. prefer: TLS if the
 *   server offers it, else plain text. None of the three checks the certificate.
 * - require: TLS or nothing; the certificate is not checked unless DB_SSL_CA is given, which makes
 *   it verify-ca (as a root certificate does for libpq).
 * - verify-ca: TLS, the certificate chain checked against DB_SSL_CA. verify-full: also the host name.
 *   Both need DB_SSL_CA (PEM), or `sslrootcert=system` in the URL for a certificate from a public CA.
 * A setting that cannot mean what it says is refused with a ConfigError naming the variable.
 * `urlVariable` names the variable the URL came from (DATABASE_URL, MIGRATION_DATABASE_URL).
 */
export function postgresTls(url: string, settings: TlsSettings = {}, urlVariable = "DATABASE_URL"): PostgresTls {
  const problems: string[] = [];
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError([`${urlVariable}: not a valid postgres:// URL`]);
  }
  const query = parsed.searchParams;
  const urlMode = query.get("sslmode") ?? undefined;
  const rootCert = query.get("sslrootcert") ?? undefined;
  for (const name of ["sslcert", "sslkey", "sslpassword", "sslcrl", "sslcrldir"]) {
    if (query.has(name)) problems.push(`${urlVariable}: ${name} is not supported (client certificates and revocation lists are not read)`);
  }
  if (query.has("ssl")) problems.push(`${urlVariable}: ssl=${query.get("ssl")} is not a libpq parameter; use sslmode`);
  if (urlMode !== undefined && !(sslModes as readonly string[]).includes(urlMode)) {
    problems.push(`${urlVariable}: sslmode=${urlMode} is not one of ${sslModes.join(", ")}`);
  }
  if (rootCert !== undefined && rootCert !== "system") {
    problems.push(`${urlVariable}: sslrootcert=${rootCert} is not read; give the CA certificate as DB_SSL_CA (PEM) or DB_SSL_CA_FILE (a file)`);
  }
  if (rootCert === "system" && settings.ca !== undefined) {
    problems.push(`${urlVariable}: sslrootcert=system and DB_SSL_CA both name the trusted CA; keep one`);
  }
  if (settings.ca !== undefined && !settings.ca.includes("-----BEGIN CERTIFICATE-----")) {
    problems.push("DB_SSL_CA: not a PEM certificate (-----BEGIN CERTIFICATE-----); to name a file, use DB_SSL_CA_FILE");
  }
  if (problems.length > 0) throw new ConfigError(problems);

  // libpq: sslrootcert=system makes verify-full the default and refuses anything weaker.
  const mode = (urlMode ?? (rootCert === "system" ? "verify-full" : (settings.mode ?? "prefer"))) as SslMode;
  const modeFrom =
    urlMode !== undefined
      ? `sslmode=${mode} in ${urlVariable}`
      : rootCert === "system"
        ? `sslrootcert=system in ${urlVariable}`
        : `DB_SSL_MODE=${mode}`;
  const trust: PostgresTls["trust"] = rootCert === "system" ? "system" : settings.ca !== undefined ? "DB_SSL_CA" : undefined;
  if (rootCert === "system" && mode !== "verify-full") {
    problems.push(`${urlVariable}: sslrootcert=system needs sslmode=verify-full (it has ${modeFrom})`);
  }
  if ((mode === "verify-ca" || mode === "verify-full") && trust === undefined) {
    problems.push(
      `DB_SSL_CA: required with ${modeFrom}: the CA certificate as PEM (or DB_SSL_CA_FILE naming a file), or sslrootcert=system in ${urlVariable} for a certificate from a public CA`,
    );
  }
  if (settings.ca !== undefined && (mode === "disable" || mode === "allow" || mode === "prefer")) {
    problems.push(`DB_SSL_CA: given, but ${modeFrom} never checks the server's certificate; use verify-full (or verify-ca)`);
  }
  if (mode === "verify-full" && parsed.hostname.includes(",")) {
    problems.push(`${urlVariable}: verify-full with several hosts is not supported; name one host`);
  }
  if (problems.length > 0) throw new ConfigError(problems);

  // The URL is passed on as given unless it carried TLS parameters to take out.
  const carried = tlsParameters.filter((name) => query.has(name));
  for (const name of carried) query.delete(name);
  const base = { url: carried.length > 0 ? parsed.toString() : url, mode, modeFrom, ...(trust ? { trust } : {}) };
  const ca = settings.ca !== undefined ? { ca: settings.ca } : {};
  const chainChecked = (): PostgresTls => ({
    ...base,
    verify: "chain",
    ssl: { ...ca, rejectUnauthorized: true, checkServerIdentity: () => undefined },
    plaintextFirst: false,
  });
  switch (mode) {
    case "disable":
      return { ...base, verify: "nothing", ssl: false, plaintextFirst: false };
    case "allow":
      return { ...base, verify: "nothing", ssl: false, plaintextFirst: true };
    case "prefer":
      return { ...base, verify: "nothing", ssl: "prefer", plaintextFirst: false };
    case "require":
      if (settings.ca === undefined) return { ...base, verify: "nothing", ssl: "require", plaintextFirst: false };
      // require with a CA given checks the chain, as libpq's require does with a root certificate.
      return chainChecked();
    case "verify-ca":
      return chainChecked();
    case "verify-full": {
      // postgres.js gives Node no host name for an IP address, and Node then checks the
      // certificate against "localhost": the host is named here, so 127.0.0.2 is not taken for it.
      const host = decodeURIComponent(parsed.hostname).replace(/^\[(.*)\]$/, "$1");
      return {
        ...base,
        verify: "chain and host name",
        ssl: {
          ...ca,
          rejectUnauthorized: true,
          checkServerIdentity: (_name: string, cert: nodeTls.PeerCertificate) => nodeTls.checkServerIdentity(host, cert),
        },
        plaintextFirst: false,
      };
    }
  }
}
