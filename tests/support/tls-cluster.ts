import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

// A PostgreSQL cluster of the test's own with TLS on, built the way .ci/production-smoke builds
// one: pg_createcluster, a self-signed certificate from openssl for 127.0.0.1 and localhost,
// `ssl = on`, pg_hba.conf accepting only TLS connections with SCRAM passwords, started with
// pg_ctlcluster and dropped with pg_dropcluster. It needs root and Debian's postgresql-common;
// without them the tests skip, except in CI, where they must run.

export interface TlsCluster {
  port: number;
  /** The server's certificate (self-signed: it is its own CA), as PEM, and the file holding it. */
  ca: string;
  caFile: string;
  /** A self-signed certificate that did not sign the server's. */
  otherCa: string;
  /** The superuser's password (SCRAM over TLS). */
  password: string;
  /** A superuser URL over TLS checked against the CA. */
  adminUrl(database?: string): string;
  drop(): Promise<void>;
}

/** Why the cluster cannot be made here, or undefined. */
export function tlsClusterUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (pg_createcluster, pg_ctlcluster)";
  for (const tool of ["pg_createcluster", "pg_ctlcluster", "pg_dropcluster", "openssl"]) {
    try {
      execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    } catch {
      return `${tool} is not installed`;
    }
  }
  return undefined;
}

/** Skip outside CI when the cluster cannot be made; in CI that is a failure. */
export const skipTlsCluster = (() => {
  const reason = tlsClusterUnavailable();
  if (reason && process.env.CI === "true") throw new Error(`CI must run the TLS PostgreSQL tests, but the cluster ${reason}`);
  return reason !== undefined;
})();

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.once("error", reject);
  });
}

const sh = (command: string, args: string[]) => execFileSync(command, args, { stdio: ["ignore", "pipe", "pipe"] }).toString();

/** Creates and starts the cluster; call drop() when done. */
export async function startTlsCluster(): Promise<TlsCluster> {
  const version = sh("sh", ["-c", "ls /usr/lib/postgresql | sort -n | tail -1"]).trim();
  const name = `tlstest_${process.pid}_${Math.random().toString(36).slice(2, 7)}`;
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), "tls-cluster-"));
  const conf = `/etc/postgresql/${version}/${name}`;
  const password = `tls-admin-${Math.random().toString(36).slice(2, 12)}`;
  let created = false;
  const drop = async () => {
    if (created) {
      try {
        sh("pg_dropcluster", ["--stop", version, name]);
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const cert = (file: string, cn: string, san: string) =>
      sh("openssl", [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        `/CN=${cn}`,
        "-addext",
        `subjectAltName=${san}`,
        "-keyout",
        `${dir}/${file}.key`,
        "-out",
        `${dir}/${file}.crt`,
      ]);
    cert("server", "localhost", "DNS:localhost,IP:127.0.0.1");
    cert("other", "localhost", "DNS:localhost,IP:127.0.0.1");
    sh("pg_createcluster", [version, name, "-p", String(port)]);
    created = true;
    sh("install", ["-o", "postgres", "-g", "postgres", "-m", "0600", `${dir}/server.key`, `${conf}/server.key`]);
    sh("install", ["-o", "postgres", "-g", "postgres", "-m", "0644", `${dir}/server.crt`, `${conf}/server.crt`]);
    writeFileSync(
      `${conf}/conf.d/tls.conf`,
      [
        "ssl = on",
        `ssl_cert_file = '${conf}/server.crt'`,
        `ssl_key_file = '${conf}/server.key'`,
        // 127.0.0.2 reaches the same server under an address its certificate does not name.
        "listen_addresses = '127.0.0.1,127.0.0.2'",
        "password_encryption = 'scram-sha-256'",
        "fsync = off",
        "",
      ].join("\n"),
    );
    writeFileSync(`${conf}/pg_hba.conf`, ["local all postgres peer", "hostssl all all 127.0.0.0/8 scram-sha-256", ""].join("\n"));
    sh("pg_ctlcluster", ["--skip-systemctl-redirect", version, name, "start"]);
    sh("runuser", ["-u", "postgres", "--", "psql", "-p", String(port), "-qc", `ALTER ROLE postgres PASSWORD '${password}'`]);
  } catch (error) {
    await drop();
    throw error;
  }
  return {
    port,
    ca: readFileSync(`${dir}/server.crt`, "utf8"),
    caFile: `${dir}/server.crt`,
    otherCa: readFileSync(`${dir}/other.crt`, "utf8"),
    password,
    adminUrl: (database = "postgres") => `postgres://postgres:${password}@127.0.0.1:${port}/${database}`,
    drop,
  };
}
