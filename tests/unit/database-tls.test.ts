import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { ConfigError, loadConfig, loadDatabaseConfig, resolveFileVariables } from "../../lib/core/config.js";
import { connectionName, describeDatabaseError, withoutCredentials } from "../../lib/adapters/db/errors.js";
import { postgresTls, type PostgresTls, type TlsSettings } from "../../lib/adapters/db/tls.js";
import workerEntry from "../../lib/entry/worker.js";
import { workerTlsProblems } from "../../lib/app/worker-config.js";

// The one TLS rule every PostgreSQL connection takes (lib/adapters/db/tls.ts), as a table: which sslmode
// wins, what each mode asks of postgres.js and of the certificate, and what is refused.

const PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUY2E=\n-----END CERTIFICATE-----\n";
const url = "postgres://payment_app:s3cret-pw@db.internal:5432/payments";

function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

/** What a resolution amounts to, without the functions in it. */
function shape(tls: PostgresTls) {
  const ssl = typeof tls.ssl === "object" ? { ...tls.ssl, checkServerIdentity: typeof tls.ssl.checkServerIdentity } : tls.ssl;
  return { mode: tls.mode, verify: tls.verify, plaintextFirst: tls.plaintextFirst, ssl };
}

describe("postgresTls: which sslmode applies", () => {
  it.each<[string, string, TlsSettings, string, string]>([
    ["DB_SSL_MODE when the URL names none", url, { mode: "require" }, "require", "DB_SSL_MODE=require"],
    ["prefer when nothing names one (libpq's default)", url, {}, "prefer", "DB_SSL_MODE=prefer"],
    [
      "the URL's sslmode over DB_SSL_MODE",
      `${url}?sslmode=verify-full`,
      { mode: "disable", ca: PEM },
      "verify-full",
      "sslmode=verify-full in DATABASE_URL",
    ],
    [
      "the URL's weaker sslmode over a stronger DB_SSL_MODE",
      `${url}?sslmode=disable`,
      { mode: "verify-full" },
      "disable",
      "sslmode=disable in DATABASE_URL",
    ],
    [
      "verify-full for sslrootcert=system without an sslmode (libpq)",
      `${url}?sslrootcert=system`,
      { mode: "prefer" },
      "verify-full",
      "sslrootcert=system in DATABASE_URL",
    ],
  ])("takes %s", (_name, target, settings, mode, from) => {
    const tls = postgresTls(target, settings);
    expect(tls.mode).toBe(mode);
    expect(tls.modeFrom).toBe(from);
  });

  it("takes libpq's TLS parameters out of the URL it hands postgres.js (it would send them to the server as settings)", () => {
    expect(postgresTls(`${url}?sslmode=require&application_name=x`).url).toBe(`${url}?application_name=x`);
    expect(postgresTls(`${url}?sslmode=verify-full&sslrootcert=system`).url).toBe(url);
    expect(postgresTls(url, { mode: "require" }).url).toBe(url);
  });
});

describe("postgresTls: what each mode asks", () => {
  it.each<[string, TlsSettings, ReturnType<typeof shape>]>([
    ["disable", { mode: "disable" }, { mode: "disable", verify: "nothing", plaintextFirst: false, ssl: false }],
    ["allow", { mode: "allow" }, { mode: "allow", verify: "nothing", plaintextFirst: true, ssl: false }],
    ["prefer", { mode: "prefer" }, { mode: "prefer", verify: "nothing", plaintextFirst: false, ssl: "prefer" }],
    ["require", { mode: "require" }, { mode: "require", verify: "nothing", plaintextFirst: false, ssl: "require" }],
    [
      "require with a CA (checks the chain, as libpq's require with a root certificate)",
      { mode: "require", ca: PEM },
      { mode: "require", verify: "chain", plaintextFirst: false, ssl: { ca: PEM, rejectUnauthorized: true, checkServerIdentity: "function" } },
    ],
    [
      "verify-ca",
      { mode: "verify-ca", ca: PEM },
      { mode: "verify-ca", verify: "chain", plaintextFirst: false, ssl: { ca: PEM, rejectUnauthorized: true, checkServerIdentity: "function" } },
    ],
    [
      "verify-full",
      { mode: "verify-full", ca: PEM },
      {
        mode: "verify-full",
        verify: "chain and host name",
        plaintextFirst: false,
        ssl: { ca: PEM, rejectUnauthorized: true, checkServerIdentity: "function" },
      },
    ],
  ])("%s", (_name, settings, expected) => {
    expect(shape(postgresTls(url, settings))).toEqual(expected);
  });

  it("verify-full with sslrootcert=system trusts the system's CAs (no ca option)", () => {
    const tls = postgresTls(`${url}?sslrootcert=system`);
    expect(shape(tls)).toEqual({
      mode: "verify-full",
      verify: "chain and host name",
      plaintextFirst: false,
      ssl: { rejectUnauthorized: true, checkServerIdentity: "function" },
    });
    expect(tls.trust).toBe("system");
  });

  it("verify-ca skips the host name; verify-full checks the URL's host, even for an IP address", () => {
    const cert = { subject: { CN: "localhost" }, subjectaltname: "DNS:localhost, IP Address:127.0.0.1" } as never;
    const check = (target: string, mode: "verify-ca" | "verify-full") => {
      const { ssl } = postgresTls(target, { mode, ca: PEM });
      return (ssl as { checkServerIdentity: (host: string, cert: never) => Error | undefined }).checkServerIdentity("localhost", cert);
    };
    expect(check("postgres://a@127.0.0.1:5432/db", "verify-full")).toBeUndefined();
    expect(check("postgres://a@localhost:5432/db", "verify-full")).toBeUndefined();
    expect(check("postgres://a@127.0.0.2:5432/db", "verify-full")).toBeInstanceOf(Error);
    expect(check("postgres://a@db.other:5432/db", "verify-full")).toBeInstanceOf(Error);
    expect(check("postgres://a@127.0.0.2:5432/db", "verify-ca")).toBeUndefined();
  });
});

describe("postgresTls: settings that cannot mean what they say are refused, naming the variable", () => {
  it.each<[string, string, TlsSettings, RegExp]>([
    ["verify-full without a CA", url, { mode: "verify-full" }, /^DB_SSL_CA: required with DB_SSL_MODE=verify-full/],
    ["verify-ca without a CA, from the URL", `${url}?sslmode=verify-ca`, {}, /^DB_SSL_CA: required with sslmode=verify-ca in DATABASE_URL/],
    ["a CA with prefer, which never checks it", url, { mode: "prefer", ca: PEM }, /^DB_SSL_CA: given, but DB_SSL_MODE=prefer never checks/],
    ["a CA with disable", url, { mode: "disable", ca: PEM }, /^DB_SSL_CA: given/],
    [
      "a file name instead of a PEM in DB_SSL_CA",
      url,
      { mode: "verify-full", ca: "/etc/ssl/db-ca.crt" },
      /^DB_SSL_CA: not a PEM certificate .* use DB_SSL_CA_FILE/,
    ],
    ["an unknown sslmode", `${url}?sslmode=sometimes`, {}, /^DATABASE_URL: sslmode=sometimes is not one of/],
    [
      "sslrootcert naming a file",
      `${url}?sslmode=verify-full&sslrootcert=/root.crt`,
      {},
      /^DATABASE_URL: sslrootcert=\/root.crt is not read; give the CA certificate as DB_SSL_CA/,
    ],
    ["sslrootcert=system with a weaker sslmode", `${url}?sslmode=require&sslrootcert=system`, {}, /sslrootcert=system needs sslmode=verify-full/],
    ["client certificates", `${url}?sslmode=require&sslcert=/c.crt`, {}, /^DATABASE_URL: sslcert is not supported/],
    ["ssl=, which is not libpq's", `${url}?ssl=true`, {}, /^DATABASE_URL: ssl=true is not a libpq parameter; use sslmode/],
    ["verify-full with several hosts", "postgres://a@h1,h2:5432/db", { mode: "verify-full", ca: PEM }, /several hosts/],
  ])("%s", (_name, target, settings, message) => {
    const problems = problemsOf(() => postgresTls(target, settings));
    expect(
      problems.some((p) => message.test(p)),
      problems.join("\n"),
    ).toBe(true);
    for (const problem of problems) expect(problem).not.toContain("s3cret-pw");
  });

  it("names the variable the URL came from", () => {
    expect(problemsOf(() => postgresTls(`${url}?sslmode=verify-ca`, {}, "MIGRATION_DATABASE_URL"))[0]).toMatch(
      /sslmode=verify-ca in MIGRATION_DATABASE_URL/,
    );
  });
});

describe("configuration feeds the rule", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "db-ca-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("takes the CA as PEM from DB_SSL_CA", () => {
    const config = loadConfig({ DATABASE_URL: url, DB_SSL_MODE: "verify-full", DB_SSL_CA: PEM });
    expect(config.database).toMatchObject({ kind: "postgres", ssl: "verify-full", ca: PEM.trim(), urlVariable: "DATABASE_URL" });
    const database = config.database as { url: string; ssl: "verify-full"; ca: string };
    expect((postgresTls(database.url, { mode: database.ssl, ca: database.ca }).ssl as { ca: string }).ca).toBe(PEM.trim());
  });

  it("takes the CA from the file DB_SSL_CA_FILE names (the NAME_FILE convention, as the manifests mount it)", () => {
    const file = path.join(dir, "ca.crt");
    writeFileSync(file, PEM);
    const env = resolveFileVariables({ DB_HOST: "db", DB_SSL_MODE: "verify-full", DB_SSL_CA_FILE: file }, (p) => readFileSync(p, "utf8"));
    const config = loadConfig(env);
    expect(config.database).toMatchObject({ kind: "postgres", ca: PEM.trim(), urlVariable: "DB_HOST" });
    expect(problemsOf(() => resolveFileVariables({ DB_SSL_CA_FILE: path.join(dir, "missing.crt") }, (p) => readFileSync(p, "utf8")))[0]).toMatch(
      /^DB_SSL_CA_FILE: cannot read/,
    );
  });

  it("gives migrations MIGRATION_DATABASE_URL when set, else the app's database, with the same TLS settings", () => {
    const both = loadDatabaseConfig({
      DATABASE_URL: url,
      MIGRATION_DATABASE_URL: "postgres://payment_owner:x@db.internal/payments",
      DB_SSL_MODE: "verify-full",
      DB_SSL_CA: PEM,
    });
    expect(both.database).toMatchObject({ url, urlVariable: "DATABASE_URL" });
    expect(both.migrationDatabase).toMatchObject({
      url: "postgres://payment_owner:x@db.internal/payments",
      urlVariable: "MIGRATION_DATABASE_URL",
      ssl: "verify-full",
      ca: PEM.trim(),
    });
    const appOnly = loadDatabaseConfig({ DB_HOST: "db", DB_USER: "payment_app" });
    expect(appOnly.migrationDatabase).toEqual(appOnly.database);
    expect(loadDatabaseConfig({}).migrationDatabase).toEqual({ kind: "embedded", dataDir: ".data" });
  });

  it("lets the CLIs run on the database settings alone, and refuses production without a database or with a placeholder", () => {
    expect(
      loadDatabaseConfig({ ENVIRONMENT: "production", MIGRATION_DATABASE_URL: "postgres://payment_owner:pw@db/payments" }).migrationDatabase,
    ).toMatchObject({ kind: "postgres" });
    expect(problemsOf(() => loadDatabaseConfig({ ENVIRONMENT: "production" }))[0]).toMatch(/^DATABASE_URL: required when ENVIRONMENT=production/);
    expect(
      problemsOf(() =>
        loadDatabaseConfig({ ENVIRONMENT: "production", MIGRATION_DATABASE_URL: "postgres://payment_owner:<password>@db/payments" }),
      )[0],
    ).toMatch(/^MIGRATION_DATABASE_URL: holds a template placeholder/);
  });
});

describe("describeDatabaseError names the cause, never a secret", () => {
  it.each<[string, unknown, string]>([
    ["a wrong password", { code: "28P01", message: 'password authentication failed for user "payment_app"' }, "authentication failed"],
    [
      "a role pg_hba.conf refuses",
      { code: "28000", message: 'no pg_hba.conf entry for host "10.0.0.1", user "x", database "y", SSL encryption' },
      "TLS refused by the server",
    ],
    [
      "TLS required by pg_hba.conf",
      { code: "28000", message: 'no pg_hba.conf entry for host "10.0.0.1", user "x", database "y", no encryption' },
      "TLS required by the server",
    ],
    ["a role without LOGIN", { code: "28000", message: 'role "x" is not permitted to log in' }, "authentication failed"],
    [
      "a server without TLS",
      { code: "SSL_NOT_SUPPORTED", message: "SSL_NOT_SUPPORTED: The server does not support SSL connections" },
      "TLS refused by the server",
    ],
    ["a self-signed certificate", { code: "DEPTH_ZERO_SELF_SIGNED_CERT", message: "self-signed certificate" }, "certificate not trusted"],
    [
      "a chain to an unknown CA",
      { code: "SELF_SIGNED_CERT_IN_CHAIN", message: "self-signed certificate in certificate chain" },
      "certificate not trusted",
    ],
    [
      "a certificate for another host",
      { code: "ERR_TLS_CERT_ALTNAME_INVALID", message: "Hostname/IP does not match certificate's altnames" },
      "certificate does not match the host",
    ],
    ["a refused connection", { code: "ECONNREFUSED", message: "connect ECONNREFUSED 127.0.0.1:1" }, "host unreachable"],
    ["a connect timeout", { code: "CONNECT_TIMEOUT", message: "write CONNECT_TIMEOUT db:5432" }, "host unreachable"],
    ["an unknown host", { code: "ENOTFOUND", message: "getaddrinfo ENOTFOUND db.invalid" }, "host not found"],
    ["a missing database", { code: "3D000", message: 'database "payments" does not exist' }, "database missing"],
    ["a missing privilege", { code: "42501", message: "permission denied for schema public" }, "permission denied"],
    [
      "a TLS handshake cut off",
      { code: "ECONNRESET", message: "Client network socket disconnected before secure TLS connection was established" },
      "TLS handshake failed",
    ],
  ])("%s", (_name, error, cause) => {
    const wrapped = Object.assign(new Error("Failed query: select 1\nparams: "), {
      cause: Object.assign(new Error((error as { message: string }).message), error),
    });
    for (const given of [error, wrapped]) {
      const problem = describeDatabaseError(given);
      expect(problem.cause).toBe(cause);
      expect(problem.message.startsWith(`${cause}: `)).toBe(true);
    }
  });

  it("blanks credentials a message might carry", () => {
    expect(withoutCredentials("connect to postgres://payment_app:s3cret-pw@db:5432/payments failed")).toBe(
      "connect to postgres://payment_app:***@db:5432/payments failed",
    );
    expect(describeDatabaseError(new Error("bad postgres://u:s3cret-pw@h/d")).message).not.toContain("s3cret-pw");
    expect(connectionName(url)).toBe("payment_app@db.internal:5432/payments");
  });
});

describe("the Workers build's TLS", () => {
  const database = (ssl: TlsSettings["mode"], extra: { url?: string; ca?: string } = {}) => ({
    kind: "postgres" as const,
    url: extra.url ?? url,
    ssl: ssl!,
    ...(extra.ca ? { ca: extra.ca } : {}),
    urlVariable: "DATABASE_URL" as const,
    max: 4,
    idle: 0,
    lifetimeMs: 300_000,
  });

  it.each<[string, ReturnType<typeof database>, RegExp | undefined]>([
    ["refuses prefer, the default, naming DB_SSL_MODE", database("prefer"), /^DB_SSL_MODE: DB_SSL_MODE=prefer cannot work in the Workers build/],
    ["refuses allow", database("allow"), /^DB_SSL_MODE: DB_SSL_MODE=allow cannot work/],
    [
      "refuses prefer from the URL",
      database("disable", { url: `${url}?sslmode=prefer` }),
      /^DB_SSL_MODE: sslmode=prefer in DATABASE_URL cannot work/,
    ],
    ["refuses verify-ca", database("verify-ca", { ca: PEM }), /^DB_SSL_MODE: DB_SSL_MODE=verify-ca cannot work/],
    ["refuses a CA of its own", database("verify-full", { ca: PEM }), /^DB_SSL_CA: the Workers build cannot use a CA certificate/],
    ["takes disable", database("disable"), undefined],
    ["takes require", database("require"), undefined],
    ["takes verify-full with sslrootcert=system", database("disable", { url: `${url}?sslrootcert=system` }), undefined],
  ])("%s", (_name, db, message) => {
    const problems = workerTlsProblems(db, postgresTls);
    if (message)
      expect(
        problems.some((p) => message.test(p)),
        problems.join("\n"),
      ).toBe(true);
    else expect(problems).toEqual([]);
  });

  it("answers 503 and logs the refusal when a Worker starts with the default prefer", async () => {
    const logged: string[] = [];
    const spy = vi.spyOn(console, "error").mockImplementation((line: string) => void logged.push(line));
    try {
      const env = {
        DATABASE_URL: url,
        UPSTASH_REDIS_REST_URL: "https://redis.example",
        UPSTASH_REDIS_REST_TOKEN: "token",
        JWT_SECRET: "j".repeat(16) + "k".repeat(16),
        ENCRYPTION_KEY: "ab".repeat(32),
        FIUU_MERCHANT_ID: "merchant",
        FIUU_VERIFY_KEY: "verify-key",
        FIUU_SECRET_KEY: "secret-key",
      };
      const answer = await workerEntry.fetch(new Request("https://worker.example/v1/payment-methods"), env, { waitUntil: () => {} });
      expect(answer.status).toBe(503);
      expect(logged.join("\n")).toMatch(/DB_SSL_MODE: DB_SSL_MODE=prefer cannot work in the Workers build/);
      expect(logged.join("\n")).not.toContain("s3cret-pw");
    } finally {
      spy.mockRestore();
    }
  });
});
