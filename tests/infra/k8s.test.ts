import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { signToken } from "../../lib/http/auth/tokens.js";
import { configVariables, ConfigError, loadConfig, loadDatabaseConfig, parseDuration } from "../../lib/core/config.js";
import { createTestApp, type TestContext } from "../support/app.js";

const dir = path.resolve("infra/k8s");

interface Manifest {
  file: string;
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

interface Container {
  name: string;
  image: string;
  command?: string[];
  ports?: { name: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown> & { capabilities?: { drop?: string[]; add?: string[] } };
  volumeMounts?: { name: string; mountPath: string }[];
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
}
interface Probe {
  httpGet?: { path: string; port: number | string };
  timeoutSeconds?: number;
}
interface PodTemplate {
  metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    securityContext?: Record<string, unknown>;
    containers: Container[];
    volumes?: { name: string; emptyDir?: unknown }[];
    terminationGracePeriodSeconds?: number;
    automountServiceAccountToken?: boolean;
  };
}

const manifests: Manifest[] = readdirSync(dir)
  .filter((f) => f.endsWith(".yaml"))
  .sort()
  .flatMap((file) =>
    parseAllDocuments(readFileSync(path.join(dir, file), "utf8")).map((doc) => {
      expect(doc.errors, file).toEqual([]);
      return { ...(doc.toJSON() as Omit<Manifest, "file">), file } as Manifest;
    }),
  );
const all = (kind: string) => manifests.filter((m) => m.kind === kind);
const one = (kind: string, name?: string) => {
  const found = all(kind).filter((m) => name === undefined || m.metadata?.name === name);
  expect(found, `${kind} ${name ?? ""}`).toHaveLength(1);
  return found[0]!;
};
const deployment = () =>
  one("Deployment") as Manifest & { spec: { replicas?: number; selector: { matchLabels: Record<string, string> }; template: PodTemplate } };
const configMapData = () => (one("ConfigMap", "payment-service-config") as Manifest & { data: Record<string, string> }).data;
const secretData = () => (one("Secret", "payment-service-secrets") as Manifest & { stringData: Record<string, string> }).stringData;
const job = () => one("Job") as Manifest & { spec: { template: PodTemplate } };
const cronJobs = () =>
  all("CronJob") as (Manifest & { spec: { suspend?: boolean; schedule: string; jobTemplate: { spec: { template: PodTemplate } } } })[];
const podTemplates = (): [string, PodTemplate][] => [
  ["Deployment", deployment().spec.template],
  ["Job", job().spec.template],
  ...cronJobs().map((c): [string, PodTemplate] => [c.metadata.name, c.spec.jobTemplate.spec.template]),
];

/** Valid stand-ins for the Secret template's placeholders, as an operator would fill them (README's commands). */
const filledSecret: Record<string, string> = {
  DB_PASSWORD: "a-database-password",
  REDIS_PASSWORD: "a-redis-password",
  JWT_SECRET: "Y2c3N2E4ZjE0ZTkxYjBkNmM1YTNlOGYyZDFiN2M0YTllNmYzYjI4ZDBj",
  ENCRYPTION_KEY: "4d3f0a9b1e7c2d6f8a5b3c1e9d7f2a4b6c8e0f1a3b5d7c9e2f4a6b8d0c1e3f5a",
  ENCRYPTION_KEY_PREVIOUS: "",
  FIUU_MERCHANT_ID: "merchant_1",
  FIUU_VERIFY_KEY: "3b8e1d6a9c2f5b7e0a4d8c1f6e9b2a5d",
  FIUU_SECRET_KEY: "c7a2e9f4b1d6083e5a9c2f7b4e1d8a6c",
  WEBHOOK_SECRET: `whsec_${Buffer.from("8c3e1f7a2d9b4e6c0a5f8d2b7e1c9a4f6d3b8e0c2a7f5d9b1e4c6a8f0d2b5e7c", "hex").toString("base64")}`,
};

describe("Kubernetes manifests", () => {
  it("parse, and hold every kind the deployment needs", () => {
    const kinds = new Set(manifests.map((m) => m.kind));
    for (const kind of [
      "Namespace",
      "ServiceAccount",
      "ConfigMap",
      "Secret",
      "Deployment",
      "Service",
      "Ingress",
      "NetworkPolicy",
      "HorizontalPodAutoscaler",
      "PodDisruptionBudget",
      "Job",
      "CronJob",
      "Kustomization",
    ]) {
      expect(kinds, kind).toContain(kind);
    }
  });

  it("kustomization.yaml lists every manifest but the Secret template, in the service's namespace", () => {
    const kustomization = parse(readFileSync(path.join(dir, "kustomization.yaml"), "utf8")) as { namespace: string; resources: string[] };
    const files = readdirSync(dir).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml" && f !== "secret.example.yaml");
    expect([...kustomization.resources].sort()).toEqual(files.sort());
    expect(kustomization.resources).not.toContain("secret.example.yaml");
    expect(kustomization.namespace).toBe(one("Namespace").metadata.name);
    for (const m of manifests) {
      if (m.metadata?.namespace !== undefined) expect(m.metadata.namespace, m.file).toBe(kustomization.namespace);
    }
  });

  it("leaves the replica count to the HPA (3–10), exposing http 8086, metrics 9090 and health 8087 as the ConfigMap configures", () => {
    const d = deployment();
    // A replicas field would reset the HPA's count on every apply.
    expect(d.spec).not.toHaveProperty("replicas");
    const hpa = one("HorizontalPodAutoscaler") as Manifest & { spec: { minReplicas: number; maxReplicas: number } };
    expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).toEqual([3, 10]);
    const [container] = d.spec.template.spec.containers;
    expect(Object.fromEntries(container!.ports!.map((p) => [p.name, p.containerPort]))).toEqual({ http: 8086, metrics: 9090, health: 8087 });
    const data = configMapData();
    expect([data.PORT, data.METRICS_PORT, data.HEALTH_CHECK_PORT]).toEqual(["8086", "9090", "8087"]);
    expect(d.spec.template.metadata.annotations).toMatchObject({
      "prometheus.io/scrape": "true",
      "prometheus.io/port": "9090",
      "prometheus.io/path": "/metrics",
    });
  });

  it("probes liveness on /health and readiness on /ready, on the health port 8087", () => {
    const [c] = deployment().spec.template.spec.containers;
    expect(c!.livenessProbe?.httpGet).toEqual({ path: "/health", port: 8087 });
    expect(c!.readinessProbe?.httpGet).toEqual({ path: "/ready", port: 8087 });
    expect(c!.startupProbe?.httpGet).toEqual({ path: "/health", port: 8087 });
    // /ready answers within HEALTH_CHECK_TIMEOUT; the probe must wait at least that long.
    expect(c!.readinessProbe!.timeoutSeconds! * 1000).toBeGreaterThan(parseDuration(configMapData().HEALTH_CHECK_TIMEOUT!)!);
  });

  it("gives SIGTERM time to drain: grace period above preStop pause plus SHUTDOWN_TIMEOUT", () => {
    const spec = deployment().spec.template.spec;
    const preStop = Number(spec.containers[0]!.lifecycle?.preStop?.exec?.command.at(-1) ?? 0);
    expect(spec.terminationGracePeriodSeconds! * 1000).toBeGreaterThan(preStop * 1000 + parseDuration(configMapData().SHUTDOWN_TIMEOUT!)!);
  });

  it("runs every pod as uid 1001, non-root, read-only, without privileges or capabilities, under RuntimeDefault seccomp", () => {
    for (const [name, pod] of podTemplates()) {
      expect(pod.spec.securityContext, name).toMatchObject({ runAsNonRoot: true, runAsUser: 1001, seccompProfile: { type: "RuntimeDefault" } });
      expect(pod.spec.automountServiceAccountToken, name).toBe(false);
      for (const c of pod.spec.containers) {
        expect(c.securityContext, name).toMatchObject({
          runAsNonRoot: true,
          runAsUser: 1001,
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ["ALL"] },
        });
        expect(c.securityContext?.capabilities?.add, name).toBeUndefined();
        expect(c.securityContext?.privileged ?? false, name).toBe(false);
        expect(c.resources?.requests, name).toBeDefined();
        expect(c.resources?.limits?.memory, name).toBeDefined();
      }
    }
  });

  it("gives the service and the migration a writable /tmp (an emptyDir) and the database's CA read-only, nothing else", () => {
    const caFile = configMapData().DB_SSL_CA_FILE!;
    for (const [name, pod] of [
      ["Deployment", deployment().spec.template],
      ["Job", job().spec.template],
    ] as const) {
      const [c] = pod.spec.containers;
      expect(c!.volumeMounts, name).toEqual([
        { name: "tmp", mountPath: "/tmp" },
        { name: "db-ca", mountPath: path.posix.dirname(caFile), readOnly: true },
      ]);
      expect(pod.spec.volumes?.find((v) => v.name === "tmp")?.emptyDir, name).toBeDefined();
      // The CA comes from its Secret, under the file name DB_SSL_CA_FILE gives.
      const ca = pod.spec.volumes?.find((v) => v.name === "db-ca") as { secret?: { secretName: string } } | undefined;
      expect(ca?.secret?.secretName, name).toBe("payment-service-db-ca");
      const caSecret = one("Secret", "payment-service-db-ca") as Manifest & { stringData: Record<string, string> };
      expect(Object.keys(caSecret.stringData), name).toEqual([path.posix.basename(caFile)]);
    }
  });

  it("connects over verify-full: the service as payment_app, the migration Job as the owner from a Secret of its own", () => {
    const data = configMapData();
    expect(data).toMatchObject({ DB_SSL_MODE: "verify-full", DB_USER: "payment_app" });
    expect(Object.keys(secretData())).not.toContain("MIGRATION_DATABASE_URL");
    const migration = (one("Secret", "payment-service-migration") as Manifest & { stringData: Record<string, string> }).stringData;
    expect(Object.keys(migration)).toEqual(["MIGRATION_DATABASE_URL"]);
    expect(migration.MIGRATION_DATABASE_URL).toMatch(/^<postgres:\/\/payment_owner:/);
    const sources = (pod: PodTemplate) => pod.spec.containers[0]!.envFrom!.map((f) => f.secretRef?.name).filter(Boolean);
    expect(sources(deployment().spec.template)).toEqual(["payment-service-secrets"]);
    expect(sources(job().spec.template)).toEqual(["payment-service-migration"]);
    // What `migrate up` reads in the Job: the ConfigMap and the filled migration Secret, nothing else.
    const owner = "postgres://payment_owner:an-owner-password@postgres.data.svc.cluster.local:5432/payments";
    const { migrationDatabase } = loadDatabaseConfig({
      ...configMapData(),
      DB_SSL_CA_FILE: "",
      DB_SSL_CA: "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----",
      MIGRATION_DATABASE_URL: owner,
    });
    expect(migrationDatabase).toMatchObject({ kind: "postgres", url: owner, ssl: "verify-full", urlVariable: "MIGRATION_DATABASE_URL" });
  });

  it("takes configuration only from the ConfigMap and its Secret (the service's, or the migration's), all of which exist", () => {
    const configMaps = new Set(all("ConfigMap").map((m) => m.metadata.name));
    const secrets = new Set(all("Secret").map((m) => m.metadata.name));
    for (const [name, pod, secret] of [
      ["Deployment", deployment().spec.template, "payment-service-secrets"],
      ["Job", job().spec.template, "payment-service-migration"],
    ] as const) {
      const [c] = pod.spec.containers;
      expect(c!.envFrom, name).toEqual([{ configMapRef: { name: "payment-service-config" } }, { secretRef: { name: secret } }]);
      for (const from of c!.envFrom!) {
        if (from.configMapRef) expect(configMaps).toContain(from.configMapRef.name);
        if (from.secretRef) expect(secrets).toContain(from.secretRef.name);
      }
    }
  });

  it("names only known configuration variables, each in one place", () => {
    const known = new Set(configVariables);
    const config = Object.keys(configMapData());
    const secret = Object.keys(secretData());
    const explicit = [deployment().spec.template, job().spec.template].flatMap((p) =>
      p.spec.containers.flatMap((c) => (c.env ?? []).map((e) => e.name)),
    );
    // NAME_FILE names a file holding NAME (a mounted Secret, such as the database's CA).
    for (const key of [...config, ...secret, ...explicit]) expect(known, key).toContain(key.replace(/_FILE$/, ""));
    expect(config.filter((k) => secret.includes(k))).toEqual([]);
  });

  it("keeps every secret of the guide in the Secret, not in the ConfigMap", () => {
    const secret = Object.keys(secretData());
    for (const key of ["JWT_SECRET", "ENCRYPTION_KEY", "FIUU_VERIFY_KEY", "FIUU_SECRET_KEY", "WEBHOOK_SECRET", "DB_PASSWORD", "REDIS_PASSWORD"]) {
      expect(secret, key).toContain(key);
      expect(Object.keys(configMapData()), key).not.toContain(key);
    }
  });

  it("supplies every variable production requires", () => {
    const supplied = new Set([...Object.keys(configMapData()), ...Object.keys(secretData())]);
    for (const key of ["JWT_SECRET", "ENCRYPTION_KEY", "FIUU_MERCHANT_ID", "FIUU_VERIFY_KEY", "FIUU_SECRET_KEY", "WEBHOOK_SECRET", "PUBLIC_URL"]) {
      expect(supplied, key).toContain(key);
    }
    expect(supplied.has("DATABASE_URL") || supplied.has("DB_HOST")).toBe(true);
    expect(supplied.has("REDIS_HOST") || supplied.has("UPSTASH_REDIS_REST_URL")).toBe(true);
    expect(configMapData().ENVIRONMENT).toBe("production");
  });

  it("ships a Secret template with placeholders only, which the service refuses to start with", () => {
    for (const secret of all("Secret") as (Manifest & { stringData: Record<string, string> })[]) {
      for (const [key, value] of Object.entries(secret.stringData)) {
        expect(value === "" || /^<[^<>]+>$/.test(value), `${secret.metadata.name}.${key} = ${value}`).toBe(true);
      }
    }
    const attempt =
      (overrides: Record<string, string> = {}) =>
      () =>
        loadConfig({ ...configMapData(), ...secretData(), ...overrides });
    expect(attempt()).toThrow(ConfigError);
    expect(attempt()).toThrow(/JWT_SECRET/);
    // Even with only JWT_SECRET filled in, the placeholder encryption key stops start-up.
    expect(attempt({ JWT_SECRET: filledSecret.JWT_SECRET! })).toThrow(/ENCRYPTION_KEY/);
  });

  it.each(Object.entries(secretData()).filter(([, value]) => value !== ""))(
    "refuses to start in production with the template's %s left in, naming it and not its value",
    (key, placeholder) => {
      const problems = (() => {
        try {
          loadConfig({ ...configMapData(), ...filledSecret, [key]: placeholder });
        } catch (error) {
          if (error instanceof ConfigError) return error.problems;
          throw error;
        }
        return [];
      })();
      expect(
        problems.map((p) => p.split(":")[0]),
        placeholder,
      ).toContain(key);
      expect(problems.join("\n")).not.toContain(placeholder);
    },
  );

  it("is a configuration loadConfig accepts in production once the Secret is filled", () => {
    expect(Object.keys(filledSecret).sort()).toEqual(Object.keys(secretData()).sort());
    const config = loadConfig({ ...configMapData(), ...filledSecret });
    expect(config.isProduction).toBe(true);
    expect(config.database).toMatchObject({
      kind: "postgres",
      ssl: "verify-full",
      url: "postgres://payment_app:a-database-password@postgres.data.svc.cluster.local:5432/payments",
    });
    expect(config.redis).toMatchObject({ kind: "tcp", host: "redis.data.svc.cluster.local", password: "a-redis-password" });
    expect(config.fiuu).toMatchObject({ sandbox: false, paymentUrl: "https://pay.fiuu.com", merchantId: "merchant_1" });
    expect({ port: config.port, metrics: config.metrics.port, health: config.health.port }).toEqual({ port: 8086, metrics: 9090, health: 8087 });
    expect(config.publicUrl).toBe(`https://${(one("Ingress") as Manifest & { spec: { rules: { host: string }[] } }).spec.rules[0]!.host}`);
  });

  it("routes the Service and the Ingress to the API port, and selects the API pods everywhere", () => {
    const podLabels = deployment().spec.template.metadata.labels;
    const selects = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => podLabels[k] === v);
    const service = one("Service") as Manifest & {
      spec: { selector: Record<string, string>; ports: { name: string; port: number; targetPort: string }[] };
    };
    expect(selects(service.spec.selector)).toBe(true);
    expect(service.spec.ports).toEqual([{ name: "http", port: 80, targetPort: "http", protocol: "TCP" }]);
    const ingress = one("Ingress") as Manifest & {
      spec: { rules: { http: { paths: { backend: { service: { name: string; port: { name: string } } } }[] } }[] };
    };
    expect(ingress.spec.rules[0]!.http.paths[0]!.backend.service).toEqual({ name: service.metadata.name, port: { name: "http" } });
    expect(selects(deployment().spec.selector.matchLabels)).toBe(true);
    const pdb = one("PodDisruptionBudget") as Manifest & { spec: { minAvailable: number; selector: { matchLabels: Record<string, string> } } };
    expect(selects(pdb.spec.selector.matchLabels)).toBe(true);
    const hpa = one("HorizontalPodAutoscaler") as Manifest & {
      spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number; maxReplicas: number };
    };
    expect(pdb.spec.minAvailable).toBeLessThan(hpa.spec.minReplicas);
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: "Deployment", name: deployment().metadata.name });
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);
  });

  it("lets in only the ingress controller, the CronJobs and Prometheus, and out only DNS, Postgres, Redis, the API and HTTPS", () => {
    type Rule = { ports: { port: number; protocol: string }[] };
    const policy = one("NetworkPolicy") as Manifest & {
      spec: { podSelector: { matchLabels: Record<string, string> }; policyTypes: string[]; ingress: Rule[]; egress: Rule[] };
    };
    expect(policy.spec.policyTypes.sort()).toEqual(["Egress", "Ingress"]);
    expect(policy.spec.podSelector.matchLabels).toEqual({ "app.kubernetes.io/name": "payment-service" });
    const ports = (rules: Rule[]) => [...new Set(rules.flatMap((r) => r.ports.map((p) => p.port)))].sort((a, b) => a - b);
    expect(ports(policy.spec.ingress)).toEqual([8086, 9090]);
    expect(ports(policy.spec.egress)).toEqual([53, 443, 5432, 6379, 8086]);
  });

  it("migrates with the image's `migrate up`, from the same image and configuration", () => {
    const [c] = job().spec.template.spec.containers;
    expect(c!.command).toEqual(["migrate", "up"]);
    expect(c!.image).toBe(deployment().spec.template.spec.containers[0]!.image);
    expect(readFileSync(path.resolve("Dockerfile"), "utf8")).toMatch(/\/usr\/local\/bin\/migrate/);
  });

  it("has a CronJob for each job group, from the service's image, with the system token from its own Secret", () => {
    const groups = cronJobs()
      .map((c) => c.spec.jobTemplate.spec.template.spec.containers[0]!.env!.find((e) => e.name === "JOB")!.value)
      .sort();
    expect(groups).toEqual(["deliver", "expire", "reconcile"]);
    for (const cron of cronJobs()) {
      const [c] = cron.spec.jobTemplate.spec.template.spec.containers;
      expect(c!.image).toBe(deployment().spec.template.spec.containers[0]!.image);
      expect(c!.env!.find((e) => e.name === "SYSTEM_TOKEN")?.valueFrom).toEqual({
        secretKeyRef: { name: "payment-service-jobs-token", key: "token" },
      });
      expect(cron.spec.jobTemplate.spec.template.metadata.labels["app.kubernetes.io/component"]).toBe("jobs");
    }
  });
});

describe("the CronJobs' command against a running service", () => {
  let t: TestContext;
  let server: ServerType;
  let url: string;

  beforeAll(async () => {
    t = await createTestApp();
    server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: t.app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
    });
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    if (server) await new Promise((resolve) => server.close(resolve));
    await t?.close();
  });

  // The service answers in this process, so the command runs asynchronously (spawnSync would block it).
  const runCronJob = (cron: ReturnType<typeof cronJobs>[number], token: string) => {
    const [c] = cron.spec.jobTemplate.spec.template.spec.containers;
    const env = Object.fromEntries(c!.env!.filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
    const [command, ...args] = c!.command!;
    expect(command).toBe("node");
    return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH ?? "", ...env, SERVICE_URL: url, SYSTEM_TOKEN: token } });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      child.once("error", reject);
      child.once("exit", (status) => {
        clearTimeout(timer);
        resolve({ status, stdout, stderr });
      });
    });
  };

  it("runs one batch of its job group with a system token and exits 0", async () => {
    const token = await signToken(t.deps.config.jwtSecret!, { sub: "k8s-cronjob", role: "system", ttlSeconds: 600 });
    for (const cron of cronJobs()) {
      const result = await runCronJob(cron, token);
      expect(result.status, `${cron.metadata.name}: ${result.stdout}${result.stderr}`).toBe(0);
      const line = JSON.parse(result.stdout.trim()) as { job: string; status: number; body: string };
      expect(line.status).toBe(200);
      expect(JSON.parse(line.body)).toMatchObject({ job: line.job, claimed: expect.any(Number) });
    }
  });

  it("exits non-zero when the token is not a system token", async () => {
    const token = await signToken(t.deps.config.jwtSecret!, { sub: "shop", role: "service", ttlSeconds: 600 });
    const result = await runCronJob(cronJobs()[0]!, token);
    expect(result.status).toBe(1);
    expect(JSON.parse(result.stdout.trim())).toMatchObject({ status: 403 });
  });
});
