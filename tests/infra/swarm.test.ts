import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { createHealthApp } from "../../handlers/health.js";
import * as configModule from "../../lib/core/config.js";
import { configVariables, loadConfig, loadDatabaseConfig, parseDuration } from "../../lib/core/config.js";
import { openPostgres } from "../../lib/adapters/db/client.js";
import { migrateDatabase } from "../../lib/adapters/db/migrate.js";
import { createTestApp, type TestContext } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/databases.js";
import { inCI, locateTool, run } from "./support/prometheus.js";

const stackFile = path.resolve("infra/swarm/stack.yml");

interface SwarmService {
  image: string;
  command?: string[];
  environment?: Record<string, string>;
  secrets?: string[];
  configs?: { source: string; target: string }[];
  ports?: { target: number; published: number; protocol: string; mode: string }[];
  user?: string;
  read_only?: boolean;
  cap_drop?: string[];
  volumes?: ({ type: string; target: string } | string)[];
  stop_grace_period?: string;
  healthcheck?: { test: string[]; interval: string; timeout: string; retries: number; start_period: string };
  networks?: string[];
  deploy?: {
    mode?: string;
    replicas?: number;
    update_config?: Record<string, unknown>;
    rollback_config?: Record<string, unknown>;
    restart_policy?: { condition: string };
    resources?: { limits?: Record<string, string>; reservations?: Record<string, string> };
  };
}
const stack = parse(readFileSync(stackFile, "utf8")) as {
  version: string;
  services: Record<string, SwarmService>;
  secrets: Record<string, { external?: boolean; file?: string }>;
  configs: Record<string, { file: string }>;
  networks: Record<string, { driver: string }>;
};
const service = stack.services["payment-service"]!;

/**
 * NAME_FILE → NAME, as proposed for lib/core/config.ts (`resolveFileVariables`); the real function is
 * used once it exists.
 */
function resolveFiles(source: Record<string, string | undefined>): Record<string, string | undefined> {
  const real = (configModule as Record<string, unknown>).resolveFileVariables;
  if (typeof real === "function") {
    return (real as (s: typeof source, read: (p: string) => string) => typeof source)(source, (p) => readFileSync(p, "utf8"));
  }
  const resolved = { ...source };
  for (const key of configVariables) {
    const file = source[`${key}_FILE`];
    if (file && !source[key]) resolved[key] = readFileSync(file, "utf8").replace(/\r?\n$/, "");
  }
  return resolved;
}

const jwtSecret = "OTFmM2E3YzJlOGQ0YjZmMGExYzVlOWQzYjdmMmE0YzhlNmQwYjFm";

describe("Docker Swarm stack", () => {
  it("runs three replicas of the service, from the same image as its migration", () => {
    expect(Object.keys(stack.services).sort()).toEqual(["alertmanager", "migrate", "payment-service", "prometheus"]);
    expect(service.deploy?.mode).toBe("replicated");
    expect(service.deploy?.replicas).toBe(3);
    expect(stack.services.migrate!.image).toBe(service.image);
    expect(stack.services.migrate!.command).toEqual(["migrate", "up"]);
    expect(stack.services.migrate!.deploy?.restart_policy?.condition).toBe("on-failure");
  });

  it("rolls updates one task at a time, starting the new one first, rolling back on failure", () => {
    expect(service.deploy?.update_config).toMatchObject({ parallelism: 1, order: "start-first", failure_action: "rollback" });
    expect(service.deploy?.rollback_config).toMatchObject({ parallelism: 1 });
    expect(service.deploy?.restart_policy?.condition).toBe("any");
    expect(service.deploy?.resources?.limits?.memory).toBeDefined();
  });

  it("health-checks /ready then /health on the health port, and gives SIGTERM its SHUTDOWN_TIMEOUT", () => {
    const check = service.healthcheck!;
    expect(check.test.slice(0, 3)).toEqual(["CMD", "node", "-e"]);
    expect(check.test[3]).toContain(`"http://127.0.0.1:${service.environment!.HEALTH_CHECK_PORT}"`);
    expect(check.test[3]).toContain('"/ready"');
    expect(check.test[3]).toContain('"/health"');
    expect(check.retries).toBeGreaterThan(0);
    expect(parseDuration(service.stop_grace_period!)!).toBeGreaterThan(parseDuration(service.environment!.SHUTDOWN_TIMEOUT!)!);
  });

  it("publishes only the API port; health and metrics stay on the overlay network", () => {
    expect(service.ports).toEqual([{ target: 8086, published: 8086, protocol: "tcp", mode: "ingress" }]);
    expect(service.environment).toMatchObject({ PORT: "8086", HEALTH_CHECK_PORT: "8087", METRICS_PORT: "9090" });
    expect(stack.networks[service.networks![0]!]?.driver).toBe("overlay");
  });

  it("runs as uid 1001 on a read-only root with a tmpfs /tmp and no capabilities", () => {
    for (const name of ["payment-service", "migrate"]) {
      const s = stack.services[name]!;
      expect(s.user, name).toBe("1001:1001");
      expect(s.read_only, name).toBe(true);
      expect(s.cap_drop, name).toEqual(["ALL"]);
      expect(s.volumes, name).toContainEqual(expect.objectContaining({ type: "tmpfs", target: "/tmp" }));
    }
  });

  it("names only configuration variables, or NAME_FILE for one of them pointing at a secret the service mounts", () => {
    const known = new Set(configVariables);
    for (const name of ["payment-service", "migrate"]) {
      const s = stack.services[name]!;
      for (const [key, value] of Object.entries(s.environment!)) {
        const base = key.endsWith("_FILE") ? key.slice(0, -"_FILE".length) : key;
        expect(known, `${name}: ${key}`).toContain(base);
        if (key.endsWith("_FILE")) {
          const secret = /^\/run\/secrets\/([\w.-]+)$/.exec(value)?.[1];
          expect(secret, `${key} = ${value}`).toBeDefined();
          expect(s.secrets, `${name} mounts ${secret}`).toContain(secret);
          expect(stack.secrets[secret!], secret).toEqual({ external: true });
          // A value and a file for the same variable would be ambiguous.
          expect(s.environment![base], key).toBeUndefined();
        }
      }
    }
  });

  it("connects over verify-full: the service as payment_app, migrate as the owner from a secret only it mounts", () => {
    const migrate = stack.services.migrate!;
    expect(service.environment).toMatchObject({ DB_SSL_MODE: "verify-full", DB_SSL_CA_FILE: "/run/secrets/payment_db_ca", DB_USER: "payment_app" });
    expect(migrate.environment).toMatchObject({ DB_SSL_MODE: "verify-full", DB_SSL_CA_FILE: "/run/secrets/payment_db_ca" });
    expect(migrate.environment!.MIGRATION_DATABASE_URL_FILE).toBe("/run/secrets/payment_migration_database_url");
    expect(migrate.secrets!.sort()).toEqual(["payment_db_ca", "payment_migration_database_url"]);
    expect(service.secrets).toContain("payment_db_ca");
    expect(service.secrets).not.toContain("payment_migration_database_url");
    expect(Object.keys(service.environment!).filter((k) => k.startsWith("MIGRATION_"))).toEqual([]);
  });

  it("keeps every secret of the guide in a Swarm secret, never in plain environment", () => {
    const env = service.environment!;
    for (const key of ["JWT_SECRET", "ENCRYPTION_KEY", "FIUU_VERIFY_KEY", "FIUU_SECRET_KEY", "WEBHOOK_SECRET", "DB_PASSWORD", "REDIS_PASSWORD"]) {
      expect(env[key], key).toBeUndefined();
      expect(env[`${key}_FILE`], key).toBeDefined();
    }
  });

  describe("with the secrets created", () => {
    let secretsDir: string;
    beforeAll(() => {
      secretsDir = mkdtempSync(path.join(tmpdir(), "swarm-secrets-"));
      const values: Record<string, string> = {
        payment_db_ca: "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUY2E=\n-----END CERTIFICATE-----\n",
        payment_db_password: "a-database-password\n",
        payment_migration_database_url: "postgres://payment_owner:an-owner-password@postgres.internal:5432/payments\n",
        payment_redis_password: "a-redis-password\n",
        payment_jwt_secret: `${jwtSecret}\n`,
        payment_encryption_key: "1e6b3f9a2c7d0e4b8f5a1c9d3e7b2f6a0d4c8e1b5f9a3d7c2e6b0f4a8d1c5e9b\n",
        payment_fiuu_merchant_id: "merchant_1\n",
        payment_fiuu_verify_key: "5d2a8f1c6e9b3d7a0f4c8e2b6d1a9f5c\n",
        payment_fiuu_secret_key: "e4b7c1a9d6f2083b5e8a1d4c7f0b3e6a\n",
        // No key rotation under way: a Swarm secret cannot be empty, so it holds an empty line.
        payment_encryption_key_previous: "\n",
        payment_webhook_secret: `whsec_${Buffer.from("2f9c4e7a1b6d3f8e0c5a9d2b7f4e1c6a8d3b0f5e9c2a7d4b1f6e8c3a0d5b9f2e", "hex").toString("base64")}\n`,
      };
      expect(Object.keys(values).sort()).toEqual(Object.keys(stack.secrets).sort());
      for (const [name, value] of Object.entries(values)) writeFileSync(path.join(secretsDir, name), value);
    });
    afterAll(() => rmSync(secretsDir, { recursive: true, force: true }));

    it("is a configuration loadConfig accepts in production", () => {
      const env = Object.fromEntries(Object.entries(service.environment!).map(([k, v]) => [k, v.replace(/^\/run\/secrets\//, `${secretsDir}/`)]));
      const config = loadConfig(resolveFiles(env));
      expect(config.isProduction).toBe(true);
      expect(config.jwtSecret).toBe(jwtSecret);
      expect(config.database).toMatchObject({ kind: "postgres", url: "postgres://payment_app:a-database-password@postgres.internal:5432/payments" });
      expect(config.redis).toMatchObject({ kind: "tcp", password: "a-redis-password" });
      expect(config.fiuu).toMatchObject({ merchantId: "merchant_1", secretKey: "e4b7c1a9d6f2083b5e8a1d4c7f0b3e6a", sandbox: false });
      expect(config.previousEncryptionKeys).toEqual([]);
    });

    it("gives `migrate up` the owner's URL from its own secret, with the service's TLS settings", () => {
      const env = Object.fromEntries(
        Object.entries(stack.services.migrate!.environment!).map(([k, v]) => [k, v.replace(/^\/run\/secrets\//, `${secretsDir}/`)]),
      );
      const { migrationDatabase } = loadDatabaseConfig(resolveFiles(env));
      expect(migrationDatabase).toMatchObject({
        kind: "postgres",
        url: "postgres://payment_owner:an-owner-password@postgres.internal:5432/payments",
        urlVariable: "MIGRATION_DATABASE_URL",
        ssl: service.environment!.DB_SSL_MODE,
        ca: "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUY2E=\n-----END CERTIFICATE-----",
      });
    });

    it("carries ENCRYPTION_KEY_PREVIOUS from its secret during a key rotation", () => {
      const previous = path.join(secretsDir, "rotating_previous");
      writeFileSync(previous, "7c1e9a4f2b6d8e0a3c5f7b9d1e4a6c8f0b2d4e6a8c1f3b5d7e9a2c4f6b8d0e1a\n");
      const env = Object.fromEntries(
        Object.entries(service.environment!).map(([k, v]) => [
          k,
          k === "ENCRYPTION_KEY_PREVIOUS_FILE" ? previous : v.replace(/^\/run\/secrets\//, `${secretsDir}/`),
        ]),
      );
      expect(loadConfig(resolveFiles(env)).previousEncryptionKeys.map((k) => k.toString("hex"))).toEqual([
        "7c1e9a4f2b6d8e0a3c5f7b9d1e4a6c8f0b2d4e6a8c1f3b5d7e9a2c4f6b8d0e1a",
      ]);
    });

    it("is refused when a secret holds the stack's example command instead of its output, naming the variable", () => {
      // The header comment's example: `openssl rand -hex 32 | docker secret create payment_encryption_key -`.
      const example = /e\.g\. `([^`|]+?)\s*\|\s*docker secret create/.exec(readFileSync(stackFile, "utf8"))?.[1];
      expect(example).toBe("openssl rand -hex 32");
      for (const variable of ["JWT_SECRET", "ENCRYPTION_KEY", "FIUU_VERIFY_KEY", "FIUU_SECRET_KEY", "WEBHOOK_SECRET", "DB_PASSWORD"]) {
        const file = path.join(secretsDir, `pasted_${variable}`);
        writeFileSync(file, `${example}\n`);
        const env = Object.fromEntries(
          Object.entries(service.environment!).map(([k, v]) => [
            k,
            k === `${variable}_FILE` ? file : v.replace(/^\/run\/secrets\//, `${secretsDir}/`),
          ]),
        );
        // JWT_SECRET is refused by its length first; the others by what they hold.
        expect(() => loadConfig(resolveFiles(env)), variable).toThrow(
          new RegExp(`${variable}: (holds the command that makes a secret|.*at least 32)`),
        );
      }
    });

    it("is refused without its secrets (nothing falls back in production)", () => {
      const withoutFiles = Object.fromEntries(Object.entries(service.environment!).filter(([k]) => !k.endsWith("_FILE")));
      expect(() => loadConfig(withoutFiles)).toThrow(/JWT_SECRET: required/);
    });
  });

  it("has Prometheus scrape every replica of the service with the shipped config and rules", () => {
    const prometheus = stack.services.prometheus!;
    const targets = Object.fromEntries(prometheus.configs!.map((c) => [c.target, stack.configs[c.source]!.file]));
    expect(Object.keys(targets).sort()).toEqual(["/etc/prometheus/alerts.yml", "/etc/prometheus/prometheus.yml"]);
    for (const file of Object.values(targets)) expect(existsSync(path.resolve(path.dirname(stackFile), file)), file).toBe(true);
    const config = parse(readFileSync(path.resolve(path.dirname(stackFile), targets["/etc/prometheus/prometheus.yml"]!), "utf8")) as {
      scrape_configs: { dns_sd_configs?: { names: string[]; port: number }[] }[];
    };
    const dns = config.scrape_configs.flatMap((j) => j.dns_sd_configs ?? []);
    expect(dns).toContainEqual(expect.objectContaining({ names: ["tasks.payment-service"], port: Number(service.environment!.METRICS_PORT) }));
    expect(prometheus.networks).toEqual(service.networks);
  });

  it("sends the alerts to an Alertmanager the stack defines, with the shipped configuration", () => {
    const config = parse(readFileSync(path.resolve("infra/prometheus/prometheus.yml"), "utf8")) as {
      alerting: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
    };
    const targets = config.alerting.alertmanagers.flatMap((a) => a.static_configs.flatMap((c) => c.targets));
    expect(targets).toEqual(["alertmanager:9093"]);
    const [host] = targets[0]!.split(":");
    const alertmanager = stack.services[host!]!;
    expect(alertmanager, `the stack has a service named ${host}`).toBeDefined();
    expect(alertmanager.networks).toEqual(stack.services.prometheus!.networks);
    const mounted = Object.fromEntries(alertmanager.configs!.map((c) => [c.target, stack.configs[c.source]!.file]));
    const file = mounted["/etc/alertmanager/alertmanager.yml"]!;
    expect(alertmanager.command).toContain("--config.file=/etc/alertmanager/alertmanager.yml");
    expect(path.resolve(path.dirname(stackFile), file)).toBe(path.resolve("infra/prometheus/alertmanager.yml"));
  });

  const amtool = locateTool("amtool");
  it.skipIf(!amtool && !inCI)(
    "ships an Alertmanager configuration amtool accepts (needs amtool on PATH: apt-get install prometheus-alertmanager; required in CI)",
    () => {
      if (!amtool) throw new Error('amtool is not on PATH: install Debian\'s "prometheus-alertmanager" package; .ci/run does');
      const result = run(amtool, ["check-config", path.resolve("infra/prometheus/alertmanager.yml")]);
      expect(result.status, result.output).toBe(0);
      expect(result.output).toContain("SUCCESS");
    },
  );
});

describe("the Swarm healthcheck: ready only once migrated, then liveness only", () => {
  // The stack's healthcheck command, run as Swarm runs it, with its health port pointed at a test
  // server and its marker file moved into the test's own directory.
  let t: TestContext;
  let unmigrated: TestDatabase;
  let server: ServerType;
  let app: { fetch: (request: Request) => Response | Promise<Response> };
  let scratch: string;
  let script: string;

  beforeAll(async () => {
    t = await createTestApp();
    unmigrated = await createTestDatabase({ migrated: false });
    server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: (request) => app.fetch(request), port: 0, hostname: "127.0.0.1" }, () => resolve(s));
    });
    scratch = mkdtempSync(path.join(tmpdir(), "swarm-healthcheck-"));
    const command = service.healthcheck!.test[3]!;
    expect(command).toContain('"/tmp/.payment-service-was-ready"');
    script = command
      .replace('"/tmp/.payment-service-was-ready"', JSON.stringify(path.join(scratch, "was-ready")))
      .replace(`127.0.0.1:${service.environment!.HEALTH_CHECK_PORT}`, `127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  afterAll(async () => {
    if (server) await new Promise((resolve) => server.close(resolve));
    await unmigrated?.drop();
    await t?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  // Asynchronous: the health app answers in this process.
  const healthcheck = () =>
    new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, ["-e", script], { stdio: "ignore" });
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      child.once("error", reject);
      child.once("exit", (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  const withTimeout = (deps: TestContext["deps"]) => ({ ...deps, config: { ...deps.config, health: { ...deps.config.health, timeoutMs: 3_000 } } });

  it("fails while the database lacks this build's migrations, passes once they are applied, and stays passing through a database outage", async () => {
    // A task started before `migrate up` finished: /ready says migrations missing, so no traffic.
    app = createHealthApp({ ...t.deps, database: unmigrated.handle });
    expect((await app.fetch(new Request("http://h/ready"))).status).toBe(503);
    expect(await healthcheck()).toBe(1);
    expect(existsSync(path.join(scratch, "was-ready"))).toBe(false);

    await migrateDatabase(unmigrated.handle);
    expect(await healthcheck()).toBe(0);
    expect(existsSync(path.join(scratch, "was-ready"))).toBe(true);

    // The database goes away: /ready fails, but restarting the task would not bring it back.
    const unreachable = await openPostgres("postgres://nobody@127.0.0.1:1/none", { ssl: "disable" });
    try {
      app = createHealthApp(withTimeout({ ...t.deps, database: unreachable }));
      expect((await app.fetch(new Request("http://h/ready"))).status).toBe(503);
      expect(await healthcheck()).toBe(0);
    } finally {
      await unreachable.close();
    }
  }, 60_000);

  it("fails when nothing answers on the health port, even after the task was ready once", async () => {
    writeFileSync(path.join(scratch, "was-ready"), "");
    const dead = script.replace(/127\.0\.0\.1:\d+/, "127.0.0.1:1");
    const code = await new Promise<number | null>((resolve) => spawn(process.execPath, ["-e", dead], { stdio: "ignore" }).once("exit", resolve));
    expect(code).toBe(1);
  });
});
