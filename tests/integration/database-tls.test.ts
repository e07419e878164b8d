import { readFileSync, writeFileSync } from "node:fs";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHealthApp } from "../../handlers/health.js";
import { ConfigError, loadConfig, resolveFileVariables } from "../../lib/core/config.js";
import { openDatabase, openPostgres, queryRows, type DatabaseHandle } from "../../lib/adapters/db/client.js";
import { describeDatabaseError } from "../../lib/adapters/db/errors.js";
import { assembleDeps } from "../../lib/app/deps.js";
import { nodeOpeners } from "../../lib/app/node-openers.js";
import { createLogger } from "../../lib/core/logger.js";
import { openRedis } from "../../lib/adapters/redis/index.js";
import type { SslMode } from "../../lib/adapters/db/tls.js";
import { LogCapture, testConfig } from "../support/app.js";
import { realPostgresUrl } from "../support/databases.js";
import { run } from "../support/roles.js";
import { skipTlsCluster, startTlsCluster, type TlsCluster } from "../support/tls-cluster.js";

// TLS really checked, against a PostgreSQL cluster of this test's own with TLS on and pg_hba.conf
// accepting only TLS (SCRAM passwords), built as .ci/production-smoke builds one; and against the
// shared server without TLS where that is the point. Each connection goes through the service's
// own openPostgres, so the one TLS rule (lib/adapters/db/tls.ts) is what is tested.

let cluster: TlsCluster;
const opened: DatabaseHandle[] = [];
beforeAll(async () => {
  if (skipTlsCluster) return;
  cluster = await startTlsCluster();
}, 120_000);
afterAll(async () => {
  await Promise.allSettled(opened.map((h) => h.close()));
  await cluster?.drop();
}, 60_000);

/** The server without TLS, when the suite was given one (TEST_DATABASE_URL). */
const plainServer = realPostgresUrl;

async function connect(url: string, ssl: SslMode, ca?: string) {
  const handle = await openPostgres(url, { ssl, ...(ca ? { ca } : {}), max: 1 });
  opened.push(handle);
  return handle;
}

/** Whether the connection is in TLS, or the cause of its failure as the service names it. */
async function outcome(url: string, ssl: SslMode, ca?: string): Promise<{ tls: boolean } | { cause: string; message: string }> {
  const handle = await connect(url, ssl, ca);
  try {
    const [row] = await queryRows<{ tls: boolean }>(
      handle.db,
      sql`select coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false) as tls`,
    );
    return { tls: Boolean(row!.tls) };
  } catch (error) {
    const { cause, message } = describeDatabaseError(error);
    return { cause, message };
  } finally {
    await handle.close();
  }
}

const at = (host: string, database = "postgres", password = cluster.password) =>
  `postgres://postgres:${password}@${host}:${cluster.port}/${database}`;

describe.skipIf(skipTlsCluster)(
  "PostgreSQL over TLS (a TLS cluster of the test's own; needs root and Debian's postgresql-common to create it; required in CI)",
  () => {
    it("connects with verify-full and the CA, by IP address and by name", async () => {
      expect(await outcome(at("127.0.0.1"), "verify-full", cluster.ca)).toEqual({ tls: true });
      expect(await outcome(at("localhost"), "verify-full", cluster.ca)).toEqual({ tls: true });
    });

    it("refuses verify-full for a host the certificate does not name", async () => {
      expect(await outcome(at("127.0.0.2"), "verify-full", cluster.ca)).toMatchObject({ cause: "certificate does not match the host" });
    });

    it("accepts that host with verify-ca, which checks the chain only", async () => {
      expect(await outcome(at("127.0.0.2"), "verify-ca", cluster.ca)).toEqual({ tls: true });
    });

    it("refuses a certificate another CA signed", async () => {
      expect(await outcome(at("127.0.0.1"), "verify-full", cluster.otherCa)).toMatchObject({ cause: "certificate not trusted" });
      expect(await outcome(at("127.0.0.1"), "verify-ca", cluster.otherCa)).toMatchObject({ cause: "certificate not trusted" });
      // require with a CA checks the chain too (libpq's require with a root certificate).
      expect(await outcome(at("127.0.0.1"), "require", cluster.otherCa)).toMatchObject({ cause: "certificate not trusted" });
    });

    it("refuses verify-full with no CA: at start-up without DB_SSL_CA, on connecting with only the system's CAs", async () => {
      await expect(openPostgres(at("127.0.0.1"), { ssl: "verify-full" })).rejects.toThrow(ConfigError);
      await expect(openPostgres(at("127.0.0.1"), { ssl: "verify-full" })).rejects.toThrow(/DB_SSL_CA: required with DB_SSL_MODE=verify-full/);
      expect(await outcome(`${at("127.0.0.1")}?sslrootcert=system`, "disable")).toMatchObject({ cause: "certificate not trusted" });
    });

    it("encrypts without checking the certificate with require, prefer and allow", async () => {
      expect(await outcome(at("127.0.0.2"), "require")).toEqual({ tls: true });
      expect(await outcome(at("127.0.0.1"), "prefer")).toEqual({ tls: true });
      // allow tries without TLS first; this server refuses that (hostssl only), so TLS it is.
      expect(await outcome(at("127.0.0.1"), "allow")).toEqual({ tls: true });
    });

    it("says TLS is required when the server accepts only TLS and sslmode is disable", async () => {
      const result = await outcome(at("127.0.0.1"), "disable");
      expect(result).toMatchObject({ cause: "TLS required by the server" });
      expect((result as { message: string }).message).toMatch(/no encryption/);
    });

    it("takes the URL's sslmode over DB_SSL_MODE", async () => {
      expect(await outcome(`${at("127.0.0.1")}?sslmode=verify-full`, "disable", cluster.ca)).toEqual({ tls: true });
      expect(await outcome(`${at("127.0.0.1")}?sslmode=disable`, "verify-full")).toMatchObject({ cause: "TLS required by the server" });
    });

    it("takes the CA from DB_SSL_CA_FILE through the configuration, as the manifests mount it", async () => {
      const env = resolveFileVariables(
        { DATABASE_URL: at("localhost"), DB_SSL_MODE: "verify-full", DB_SSL_CA_FILE: cluster.caFile, DB_MAX_CONNECTIONS: "1" },
        (file) => readFileSync(file, "utf8"),
      );
      const handle = await openDatabase(loadConfig(env).database);
      opened.push(handle);
      const [row] = await queryRows<{ tls: boolean }>(handle.db, sql`select ssl as tls from pg_stat_ssl where pid = pg_backend_pid()`);
      expect(row!.tls).toBe(true);
      expect(handle.tlsResolved).toMatchObject({ mode: "verify-full", verify: "chain and host name", trust: "DB_SSL_CA" });
    });

    it("names a wrong password as an authentication failure, without the password", async () => {
      const result = await outcome(at("127.0.0.1", "postgres", "not-the-password-4711"), "verify-full", cluster.ca);
      expect(result).toMatchObject({ cause: "authentication failed" });
      expect((result as { message: string }).message).not.toContain("not-the-password-4711");
    });

    it("names a missing database", async () => {
      expect(await outcome(at("127.0.0.1", "no_such_database"), "verify-full", cluster.ca)).toMatchObject({ cause: "database missing" });
    });

    it("names an unreachable and an unknown host", async () => {
      expect(await outcome("postgres://postgres:x@127.0.0.1:1/postgres", "verify-full", cluster.ca)).toMatchObject({ cause: "host unreachable" });
      expect(await outcome("postgres://postgres:x@db.invalid:5432/postgres", "verify-full", cluster.ca)).toMatchObject({ cause: "host not found" });
    });

    it("answers /ready 503 naming the cause, and logs it at start-up, without a secret", async () => {
      const capture = new LogCapture();
      const logger = await createLogger({ level: "info", format: "json" }, capture);
      const config = testConfig({
        DATABASE_URL: at("127.0.0.1", "postgres", "wrong-password-0815"),
        DB_SSL_MODE: "verify-full",
        DB_SSL_CA: cluster.ca,
        HEALTH_CHECK_TIMEOUT: "5s",
      });
      const deps = await assembleDeps(config, nodeOpeners({ logger, redis: await openRedis({ kind: "memory" }), migrate: false }));
      try {
        const res = await createHealthApp(deps).request("/ready");
        expect(res.status).toBe(503);
        const body = (await res.json()) as { checks: { database: { detail: string } } };
        expect(body.checks.database.detail).toMatch(/^authentication failed: password authentication failed for user "postgres" \(28P01\)/);
        const line = capture.lines.find((l) => /database not reachable at start-up/.test(String(l.msg)));
        expect(line).toMatchObject({
          level: "error",
          cause: "authentication failed",
          code: "28P01",
          sslmode: "verify-full",
          database: `postgres@127.0.0.1:${cluster.port}/postgres`,
        });
        expect(JSON.stringify(capture.lines) + JSON.stringify(body)).not.toContain("wrong-password-0815");
      } finally {
        await deps.close();
      }
    });

    it("logs at start-up whom it connected as and that TLS is in use", async () => {
      const capture = new LogCapture();
      const logger = await createLogger({ level: "info", format: "json" }, capture);
      const config = testConfig({ DATABASE_URL: at("localhost"), DB_SSL_MODE: "verify-full", DB_SSL_CA: cluster.ca });
      const deps = await assembleDeps(config, nodeOpeners({ logger, redis: await openRedis({ kind: "memory" }), migrate: false }));
      try {
        const line = capture.lines.find((l) => l.msg === "database connected");
        expect(line).toMatchObject({ role: "postgres", tls: true, sslmode: "verify-full", certificate_checked: "chain and host name" });
      } finally {
        await deps.close();
      }
    });
  },
);

describe.skipIf(!plainServer)(
  "PostgreSQL without TLS (the shared server; needs TEST_DATABASE_URL: a real PostgreSQL without TLS; runs in CI's real-servers pass)",
  () => {
    const plain = () => plainServer!;

    it("falls back to plain text with prefer and allow, as libpq does", async () => {
      expect(await outcome(plain(), "prefer")).toEqual({ tls: false });
      expect(await outcome(plain(), "allow")).toEqual({ tls: false });
    });

    it("refuses require, saying the server does not support TLS", async () => {
      const result = await outcome(plain(), "require");
      expect(result).toMatchObject({ cause: "TLS refused by the server" });
      expect((result as { message: string }).message).toMatch(/the server does not support TLS/);
    });
  },
);

describe.skipIf(skipTlsCluster)(
  "migrate up and audit:verify over verify-full, as the roles of drizzle/roles.sql (needs root and Debian's postgresql-common for the TLS cluster; required in CI)",
  () => {
    // The README's production steps on the TLS cluster: roles.sql by the superuser with psql checking
    // the certificate, `migrate up` as payment_owner, the audit log read by payment_analytics.
    const passwords = { owner: "owner-tls-password-0001", app: "app-tls-password-000001", analytics: "analytics-tls-password1" };
    const psqlEnv = () => ({ PGSSLMODE: "verify-full", PGSSLROOTCERT: cluster.caFile, PGPASSWORD: cluster.password });
    const db = (role: string, password: string) => `postgres://${role}:${password}@127.0.0.1:${cluster.port}/payments`;
    const cli = (entry: string, env: Record<string, string>) =>
      run(process.execPath, ["--import", "tsx", entry, ...(entry.endsWith("migrate.ts") ? ["up"] : [])], {
        ENVIRONMENT: "production",
        DB_SSL_MODE: "verify-full",
        DB_SSL_CA_FILE: cluster.caFile,
        DATABASE_URL: "",
        MIGRATION_DATABASE_URL: "",
        ...env,
      });

    beforeAll(async () => {
      const created = await run("psql", [`postgres://postgres@127.0.0.1:${cluster.port}/postgres`, "-qc", "CREATE DATABASE payments"], psqlEnv());
      expect(created.stderr).toBe("");
      const roles = await run(
        "psql",
        [
          `postgres://postgres@127.0.0.1:${cluster.port}/payments`,
          "-q",
          "-v",
          "ON_ERROR_STOP=1",
          "-v",
          `owner_password=${passwords.owner}`,
          "-v",
          `app_password=${passwords.app}`,
          "-v",
          `analytics_password=${passwords.analytics}`,
          "-f",
          "drizzle/roles.sql",
        ],
        psqlEnv(),
      );
      expect(roles.code, roles.stderr).toBe(0);
    }, 60_000);

    it("migrates a fresh database as payment_owner over verify-full, and leaves an up-to-date one as it is", async () => {
      const first = await cli("lib/entry/migrate.ts", { MIGRATION_DATABASE_URL: db("payment_owner", passwords.owner) });
      expect(first.stderr).toBe("");
      expect(first.stdout).toMatch(
        new RegExp(
          `^migrations applied: \\d+ \\(as payment_owner on payment_owner@127\\.0\\.0\\.1:${cluster.port}/payments, sslmode verify-full, certificate checked: chain and host name\\)\\n$`,
        ),
      );
      expect(first.code).toBe(0);
      const again = await cli("lib/entry/migrate.ts", { MIGRATION_DATABASE_URL: db("payment_owner", passwords.owner) });
      expect(again.stdout).toBe(first.stdout);
      expect(again.code).toBe(0);
      const owner = postgres(db("payment_owner", passwords.owner), { max: 1, ssl: { ca: cluster.ca }, onnotice: () => {} });
      try {
        const notOwned = await owner`select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname in ('public', 'drizzle') and pg_get_userbyid(c.relowner) <> 'payment_owner'`;
        expect(notOwned).toEqual([]);
      } finally {
        await owner.end();
      }
    });

    it("lets the service run as payment_app over TLS: it appends audit rows, seals them and reads the catalogue", async () => {
      const handle = await openPostgres(db("payment_app", passwords.app), { ssl: "verify-full", ca: cluster.ca, max: 1 });
      opened.push(handle);
      await handle.db.execute(
        sql`insert into audit_log (actor, action, entity_type, entity_id, data) values ('service:shop', 'payment.created', 'payment', 'pay_tls', '{}')`,
      );
      const [sealed] = await queryRows<{ n: number }>(handle.db, sql`select audit_log_seal() as n`);
      expect(Number(sealed!.n)).toBe(1);
      const [methods] = await queryRows<{ n: number }>(handle.db, sql`select count(*)::int as n from payment_methods`);
      expect(methods!.n).toBeGreaterThan(0);
      await handle.close();
      const verified = await cli("lib/entry/audit-verify.ts", { DATABASE_URL: db("payment_analytics", passwords.analytics) });
      expect(verified).toMatchObject({ code: 0, stdout: "audit chain intact: 1 rows\n", stderr: "" });
    });

    it("names the cause when migrate cannot run: a wrong password, no TLS trust, a role without the privilege", async () => {
      const wrong = await cli("lib/entry/migrate.ts", { MIGRATION_DATABASE_URL: db("payment_owner", "wrong-owner-password-1") });
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(
        /^migrate: payment_owner@127\.0\.0\.1:\d+\/payments: authentication failed: password authentication failed for user "payment_owner" \(28P01\)/,
      );
      expect(wrong.stderr + wrong.stdout).not.toContain("wrong-owner-password-1");

      const otherCa = `${cluster.caFile}.other`;
      writeFileSync(otherCa, cluster.otherCa);
      const untrusted = await cli("lib/entry/migrate.ts", { MIGRATION_DATABASE_URL: db("payment_owner", passwords.owner), DB_SSL_CA_FILE: otherCa });
      expect(untrusted.code).toBe(1);
      expect(untrusted.stderr).toMatch(/: certificate not trusted: /);

      const noTls = await cli("lib/entry/migrate.ts", {
        MIGRATION_DATABASE_URL: `${db("payment_owner", passwords.owner)}?sslmode=disable`,
        DB_SSL_CA_FILE: "",
      });
      expect(noTls.code).toBe(1);
      expect(noTls.stderr).toMatch(/: TLS required by the server: /);

      // payment_app may create nothing (not even Drizzle's journal schema): migrate says whose job it is.
      const asApp = await cli("lib/entry/migrate.ts", { MIGRATION_DATABASE_URL: db("payment_app", passwords.app) });
      expect(asApp.code).toBe(1);
      expect(asApp.stderr).toMatch(/permission denied: .*\(42501\).*migrations run as the owner role \(MIGRATION_DATABASE_URL naming payment_owner/);
    });

    it("refuses a configuration whose TLS cannot mean what it says, naming the variable", async () => {
      const result = await cli("lib/entry/migrate.ts", { MIGRATION_DATABASE_URL: db("payment_owner", passwords.owner), DB_SSL_CA_FILE: "" });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/DB_SSL_CA: required with DB_SSL_MODE=verify-full/);
    });

    it("keeps payment_analytics read-only and refuses payment_app the owner's password", async () => {
      const analytics = postgres(db("payment_analytics", passwords.analytics), { max: 1, ssl: { ca: cluster.ca }, onnotice: () => {} });
      try {
        const error = await analytics`insert into jobs select * from jobs where false`.then(
          () => undefined,
          (e: { code?: string }) => e,
        );
        expect(error?.code).toBe("25006");
      } finally {
        await analytics.end();
      }
      expect(await outcome(db("payment_app", passwords.owner), "verify-full", cluster.ca)).toMatchObject({ cause: "authentication failed" });
    });
  },
);
