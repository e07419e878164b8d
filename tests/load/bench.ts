/**
 * `npm run bench`: the production build against the real PostgreSQL and Redis, loaded by
 * wrk (Debian's package) from a process of its own, and each scenario's baseline — the same statements, from the
 * service's own builders (work.ts), issued directly through the same drivers and pool sizes — measured in the
 * same run. Prints a table and writes JSON to BENCH_OUT.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";
import postgres from "postgres";
import { openPostgres, type Database } from "../../lib/adapters/db/client.js";
import { signToken } from "../../lib/http/auth/tokens.js";
import { createFieldCipher } from "../../lib/core/crypto.js";
import { openRedis } from "../../lib/adapters/redis/index.js";
import { freePort } from "../support/process.js";
import { startDelayProxy, type DelayProxy } from "./delay-proxy.js";
import { backgroundWork, benchMerchantId, createPaymentWork, notifyWork, reportFields } from "./work.js";

const concurrency = Number(process.env.BENCH_CONNECTIONS ?? 32);
const durationS = Number(process.env.BENCH_DURATION ?? 15);
// The server's warm-up: on this machine V8 was still compiling the hot paths (about a fifth of the
// server's CPU, on its background threads) 3 s into a load, and had settled by 10 s.
const warmupS = Number(process.env.BENCH_WARMUP ?? 12);
const baselineWarmupS = Math.min(warmupS, 5);
// BENCH_RATE=<rps> adds a paced run per scenario: the same connections, each pausing between
// requests so that about this many are sent a second, for the latency below saturation.
// BENCH_RATE=half paces each scenario at half the throughput its load run just measured.
const pacedRate = process.env.BENCH_RATE ?? "";
const pacedRps = (measuredRps: number) => (pacedRate === "half" ? Math.round(measuredRps / 2) : Number(pacedRate || 0));
// BENCH_ONLY=create_payment (or fiuu_notify) runs one scenario, for profiling one path at a time.
const only = process.env.BENCH_ONLY?.split(",");
const wanted = (scenario: string) => !only || only.includes(scenario);
const adminUrl = process.env.BENCH_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const redisHost = process.env.BENCH_REDIS_HOST ?? "127.0.0.1";
const redisPort = 6379;
const database = "payments_bench";
const dbUrl = adminUrl.replace(/\/[^/]*$/, `/${database}`);
const workDir = mkdtempSync(join(tmpdir(), "bench-"));
// DB_MAX_CONNECTIONS's default, for the service and the baseline alike; BENCH_POOL tries another size.
const poolSize = Number(process.env.BENCH_POOL ?? 8);
// BENCH_RTT=<ms> adds a sequential phase per scenario (one connection, one request at a time) on a
// second server whose PostgreSQL and Redis are behind delay proxies adding this round-trip time
// (delay-proxy.ts): how many round trips a request waits for, and what it asks of each store.
const rttMs = Number(process.env.BENCH_RTT ?? 0);
const rttDurationS = Number(process.env.BENCH_RTT_DURATION ?? 5);
const rttWarmupS = 2;
/** The most sequential requests a scenario's RTT phase could make, counted as the notify reports are (5,000 a second at most). */
const rttRequestsMax = rttMs > 0 ? 5_000 * 2 * (rttWarmupS + rttDurationS) : 0;

const secrets = {
  JWT_SECRET: randomBytes(32).toString("hex"),
  ENCRYPTION_KEY: randomBytes(32).toString("hex"),
  FIUU_MERCHANT_ID: benchMerchantId,
  FIUU_VERIFY_KEY: randomBytes(16).toString("hex"),
  FIUU_SECRET_KEY: randomBytes(16).toString("hex"),
  WEBHOOK_SECRET: `whsec_${randomBytes(24).toString("base64")}`,
};
const md5 = (s: string) => createHash("md5").update(s).digest("hex");

function run(command: string, args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(command, args, { stdio: "inherit", env: { ...process.env, ...env } });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} exited ${result.status}`);
}

/**
 * Fiuu's IPN echo endpoint, for the job loop the notify scenario sets off: answers each request on a
 * kept-alive connection `200 OK` after reading its declared body. Written on node:net rather than
 * node:http because it shares the machine with what is measured: Fiuu's side of the echo is not
 * the service's work, so it should take as little of the two cores as it can.
 */
async function fakeFiuu() {
  const answer = Buffer.from("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nOK");
  const server = net.createServer((socket) => {
    let pending = Buffer.alloc(0);
    socket.on("error", () => socket.destroy());
    socket.on("data", (chunk) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      for (;;) {
        const headEnd = pending.indexOf("\r\n\r\n");
        if (headEnd < 0) return;
        const length = Number(/content-length: *(\d+)/i.exec(pending.toString("latin1", 0, headEnd))?.[1] ?? 0);
        if (pending.length < headEnd + 4 + length) return;
        pending = pending.subarray(headEnd + 4 + length);
        socket.write(answer);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, close: () => server.close() };
}

/** Where a server finds PostgreSQL and Redis: directly, or through the delay proxies (BENCH_RTT). */
interface Backends {
  dbUrl: string;
  redisHost: string;
  redisPort: number;
}

/** A started service: its process and the address of its metrics. */
interface Server {
  child: ChildProcess;
  metricsUrl: string;
}

async function startServer(port: number, fiuuUrl: string, backends: Backends = { dbUrl, redisHost, redisPort }): Promise<Server> {
  // BENCH_PROFILE=<dir> writes the server's CPU profile there (node --cpu-prof), for finding hot spots.
  const profile = process.env.BENCH_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
  // BENCH_NODE_FLAGS adds node flags to the server's command line, for experiments (GC sizing, tracing).
  const flags = process.env.BENCH_NODE_FLAGS?.split(" ").filter(Boolean) ?? [];
  // The server runs as `npm run start:prod` (the image's CMD) runs it, node flags included.
  const [, ...startArgs] = (JSON.parse(readFileSync("package.json", "utf8")) as { scripts: Record<string, string> }).scripts["start:prod"]!.split(
    " ",
  );
  const metricsPort = await freePort();
  const child = spawn(process.execPath, [...flags, ...profile, ...startArgs], {
    env: {
      PATH: process.env.PATH ?? "",
      ENVIRONMENT: "production",
      DATABASE_URL: backends.dbUrl,
      DB_SSL_MODE: "disable",
      DB_MAX_CONNECTIONS: String(poolSize),
      REDIS_HOST: backends.redisHost,
      REDIS_PORT: String(backends.redisPort),
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      PORT: String(port),
      HEALTH_CHECK_PORT: String(await freePort()),
      METRICS_PORT: String(metricsPort),
      // Production wants both said out loud: the hosts are the local stand-in either way, and the
      // bench measures the service, not deliveries to a shop.
      FIUU_SANDBOX: "false",
      FIUU_PAYMENT_URL: fiuuUrl,
      FIUU_API_URL: fiuuUrl,
      WEBHOOK_URLS: "none",
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "warn",
      // One shop at full speed: the per-caller limit would otherwise be what is measured.
      RATE_LIMIT_PAYMENTS_PER_MINUTE: "10000000",
      ...secrets,
    },
    stdio: ["ignore", process.env.BENCH_NODE_FLAGS ? "inherit" : "ignore", "inherit"],
  });
  return { child: await listening(child, port), metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` };
}

/** The ceiling server (tests/load/ceiling.ts): the baseline's work behind bare node:http. */
async function startCeiling(port: number) {
  const child = spawn(process.execPath, ["--import", "tsx", "tests/load/ceiling.ts"], {
    env: { PATH: process.env.PATH ?? "", DATABASE_URL: dbUrl, DB_MAX_CONNECTIONS: String(poolSize), REDIS_HOST: redisHost, PORT: String(port) },
    stdio: ["ignore", "ignore", "inherit"],
  });
  return listening(child, port);
}

/** Waits until a started server answers, or kills it and throws. */
async function listening(child: ChildProcess, port: number) {
  for (let i = 0; i < 100 && child.exitCode === null; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/v1/payment-methods`)).ok) return child;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill("SIGKILL");
  throw new Error(`the server did not start (exit code ${child.exitCode}; its stderr is above)`);
}

/** Stops the server and waits for it to be gone, so a next run finds its ports and connections free. */
async function stopServer(child: ChildProcess) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGCONT"); // in case a baseline was interrupted while it was paused
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}

const peakRssMb = (pid: number) => {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Math.round(Number(match[1]) / 1024) : NaN;
};

/** CPU time (user + system, all threads) the process has used, in ms; USER_HZ is 100 on Linux. */
const cpuMs = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
};

type Result = Measured & Baseline & { ratio: number } & Partial<Ceiling> & Partial<Bracketed> & Partial<Paced> & Partial<Sequential>;

/** The service's CPU per request against the ceiling's, measured on both sides of it (BENCH_CEILING=1). */
interface Bracketed {
  /** The service's CPU ms per request in a second load run, right after the ceiling's. */
  server_cpu_after_ms: number;
  /** The mean of the service's two readings (before and after the ceiling's) over the ceiling's. */
  cpu_vs_ceiling: number;
}

/**
 * The service is loaded again right after the ceiling, and its two readings are averaged: the
 * machine's speed drifts between runs a minute apart (the ceiling's own create CPU read 0.29 and
 * 0.41 ms within ten minutes), and a drift that is steady across the service's two runs then
 * weighs on both sides alike.
 */
function bracketed(before: Measured, after: Measured, ceilingCpuMs: number): Bracketed {
  return { server_cpu_after_ms: after.server_cpu_ms, cpu_vs_ceiling: round((before.server_cpu_ms + after.server_cpu_ms) / 2 / ceilingCpuMs) };
}

/** The paced run's figures (BENCH_RATE): the rate reached, the latency at it and the server's event-loop delay during it. */
interface Paced {
  paced_rps: number;
  paced_p50_ms: number;
  paced_p99_ms: number;
  paced_loop_p99_ms: number;
  paced_loop_max_ms: number;
  /** The server's CPU per request in the paced run: below saturation, where requests do not wait in a queue. */
  paced_cpu_ms: number;
}

/**
 * The BENCH_RTT phase's figures: one request at a time, through the delay proxies and directly;
 * the round trips a request waited for; and, per request of the proxied run, what the service
 * asked of PostgreSQL and Redis, the background work the requests caused included.
 */
interface Sequential {
  rtt_ms: number;
  seq_p50_ms: number;
  seq_direct_p50_ms: number;
  /** seq_p50_ms / rtt_ms, as issue #20 defines it: the service's own time counted as round trips too. */
  round_trips: number;
  /** (seq_p50_ms - seq_direct_p50_ms) / rtt_ms: the round trips alone. */
  added_round_trips: number;
  /**
   * What one round trip through the proxies added in this run, measured: the p50 of a `select 1`
   * and of a Redis PING through them, less the same direct (roundTripCost), averaged.
   */
  measured_rtt_ms: number;
  /** (seq_p50_ms - seq_direct_p50_ms) / measured_rtt_ms: the round trips, counted with what one really cost. */
  counted_round_trips: number;
  seq_requests: number;
  seq_errors: number;
  /** Statements sent (simple queries + extended-protocol executions), as the proxy saw them. */
  pg_statements: number;
  /** Batches answered one by one (simple queries + syncs), from the proxy: an upper bound on PostgreSQL round trips, as pipelined batches share one. */
  pg_syncs: number;
  /**
   * Transactions (committed or rolled back), as the proxy saw them end: a ReadyForQuery back to
   * idle after a statement. Not pg_stat_database's xact_commit + xact_rollback: PostgreSQL 15
   * publishes a backend's counts in bursts, and those of a connection gone idle only when it next
   * works or exits (measured here: an idle connection's counts held back for 25 s, and a `select 1`
   * every 1.5 s published nothing for 5 s), so over a 5 s window its delta, even with each
   * connection made to run a statement before reading, came out at twice the proxy's count.
   */
  pg_xacts: number;
  /** Commands, from Redis's INFO commandstats (all of its clients; INFO itself left out). */
  redis_commands: number;
  /** Exchanges on the PostgreSQL proxy (the client sending after an answer): its round trips, pipelined batches counted once. */
  pg_round_trips: number;
  /** Exchanges on the Redis proxy: its round trips, a pipeline counted once. */
  redis_round_trips: number;
  /** pg_round_trips + redis_round_trips: the round trips counted on the wire, without timing. */
  wire_round_trips: number;
}

/** The ceiling server's figures (BENCH_CEILING=1), and its ratio to the same baseline. */
interface Ceiling {
  ceiling_rps: number;
  ceiling_p99_ms: number;
  ceiling_cpu_ms: number;
  ceiling_ratio: number;
  /** The ceiling server paced at the service's paced rate (BENCH_RATE): the tail this machine gives a bare server. */
  ceiling_paced_p99_ms?: number;
  /** The ceiling's CPU per request in that paced run. */
  ceiling_paced_cpu_ms?: number;
}

/** A server under load: its process (for its CPU time) and its base URL. */
interface Target {
  pid: number;
  url: string;
}

/** The baseline's throughput, its latency at the same concurrency (the floor the service's p99 stands on), and this process's CPU per request. */
interface Baseline {
  baseline_rps: number;
  baseline_p50_ms: number;
  baseline_p99_ms: number;
  baseline_cpu_ms: number;
}

interface Measured {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  /** The server's CPU time per request: steadier than rps on a shared machine. */
  server_cpu_ms: number;
}

/**
 * One load run with wrk: `connections` (default `concurrency`) connections for `seconds`, requests written by a Lua script.
 * wrk is C: at these rates it uses a tenth of the CPU autocannon did, CPU that on two shared cores
 * was taken from the server and PostgreSQL while the baseline, with no load generator, kept it.
 */
async function load(
  target: Target,
  seconds: number,
  script: string,
  args: string[] = [],
  rate = 0,
  connections = concurrency,
): Promise<Measured & { sent: number }> {
  const scriptPath = join(workDir, "load.lua");
  // Paced (rate > 0 requests a second): each connection waits a random 0 to 2 × (connections / rate)
  // between requests; wrk's latencies leave the wait out.
  const meanDelayMs = Math.round((1000 * connections) / rate);
  writeFileSync(scriptPath, rate > 0 ? `${script}\ndelay = function() return math.random(0, ${2 * meanDelayMs}) end\n` : script);
  const cpuBefore = cpuMs(target.pid);
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn("wrk", ["-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "10s", "-s", scriptPath, target.url, "--", ...args], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.on("error", (error) => reject(new Error(`wrk could not start (apt-get install wrk): ${error.message}`)));
    child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`wrk exited ${code}: ${out}`))));
  });
  const result = JSON.parse(output.trim().split("\n").at(-1)!) as WrkResult;
  const server_cpu_ms = round((cpuMs(target.pid) - cpuBefore) / Math.max(1, result.requests));
  return {
    rps: Math.round(result.requests / (result.duration_us / 1e6)),
    p50_ms: round(result.p50_us / 1000),
    p99_ms: round(result.p99_us / 1000),
    errors: result.errors,
    server_cpu_ms,
    sent: result.requests,
  };
}

interface WrkResult {
  requests: number;
  duration_us: number;
  errors: number;
  p50_us: number;
  p99_us: number;
}

/** What every script ends with: wrk's summary as one JSON line (errors: connect, read, write, timeout, status >= 400). */
const wrkDone = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(99)))
end
`;

/** create_payment: a fresh Idempotency-Key and order per request; args are the bearer token and a tag unique to the run. */
const createScript = `
local token, tag, n
init = function(args) token, tag, n = args[1], args[2], 0 end
request = function()
  n = n + 1
  local id = tag .. "-" .. n
  return wrk.format("POST", "/v1/payments",
    { ["content-type"] = "application/json", ["authorization"] = "Bearer " .. token, ["idempotency-key"] = id },
    '{"order_id":"BENCH-' .. id .. '","amount":1050,"currency":"MYR","description":"Bench order",' ..
    '"customer":{"name":"Siti Aminah","email":"siti@example.my","mobile":"+60174823915"}}')
end
${wrkDone}`;

/** fiuu_notify: one prepared body (a signed report for its own payment) per request, from the file in args[1]. */
const notifyScript = `
local bodies, n = {}, 0
init = function(args) for line in io.lines(args[1]) do bodies[#bodies + 1] = line end end
request = function()
  n = n + 1
  -- Run out rather than repeat a report: a 404 counts as an error in the results.
  if n > #bodies then return wrk.format("GET", "/bench-ran-out-of-reports") end
  return wrk.format("POST", "/webhooks/fiuu/notify", { ["content-type"] = "application/x-www-form-urlencoded" }, bodies[n])
end
${wrkDone}`;

/**
 * Waits until the server has caught up with the background work a load left behind (IPN echo
 * jobs, audit rows to seal), so that the next measurement does not pay for it.
 */
async function drained(sql: postgres.Sql) {
  const started = Date.now();
  for (;;) {
    const [row] = await sql<{ jobs: number; unsealed: number }[]>`select
      (select count(*)::int from jobs where status = 'pending' and run_at <= now()) as jobs,
      (select count(*)::int from audit_log where seq is null) as unsealed`;
    if (row!.jobs === 0 && row!.unsealed === 0) return;
    if (Date.now() - started > 180_000) throw new Error(`the server did not catch up: ${JSON.stringify(row)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Runs a baseline with the server paused (SIGSTOP), so the service's background loops neither
 * slow the baseline down nor work on its rows; the server catches up before and after.
 */
async function quietly<T>(server: ChildProcess, sql: postgres.Sql, measure: () => Promise<T>): Promise<T> {
  await drained(sql);
  server.kill("SIGSTOP");
  try {
    return await measure();
  } finally {
    server.kill("SIGCONT");
    await drained(sql);
  }
}

/**
 * Runs `work` from `concurrency` async workers for `seconds`, with the background work the
 * service's loops would do for it (audit sealing, echo jobs recorded) running beside: requests
 * per second completed, their latency, and this process's CPU per request.
 */
async function baseline(db: Database, seconds: number, work: (n: number) => Promise<void>): Promise<Baseline & { used: number }> {
  let counter = 0;
  const latencies: number[] = [];
  const background = backgroundWork(db);
  const drive = async (forSeconds: number, record: boolean) => {
    const until = Date.now() + forSeconds * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (Date.now() < until) {
          const started = performance.now();
          await work(counter++);
          if (record) latencies.push(performance.now() - started);
        }
      }),
    );
  };
  // Warmed up like the server, so that neither side's figures include its JIT compiling.
  await drive(baselineWarmupS, false);
  const cpuBefore = process.cpuUsage();
  await drive(seconds, true);
  await background.stop();
  const cpu = process.cpuUsage(cpuBefore);
  const done = latencies.length;
  latencies.sort((x, y) => x - y);
  const percentile = (p: number) => round(latencies[Math.min(done - 1, Math.floor((p / 100) * done))] ?? NaN);
  return {
    baseline_rps: Math.round(done / seconds),
    baseline_p50_ms: percentile(50),
    baseline_p99_ms: percentile(99),
    baseline_cpu_ms: round((cpu.user + cpu.system) / 1000 / Math.max(1, done)),
    used: counter, // how many units of work were started, warm-up included
  };
}

/**
 * Loads the ceiling server (BENCH_CEILING=1) with the service paused, as a baseline is run:
 * `measure` warms it up and measures it. Undefined when the ceiling is not asked for.
 */
async function ceiling(
  server: ChildProcess,
  sql: postgres.Sql,
  base: Baseline,
  measure: (target: Target) => Promise<Measured & { paced?: Measured }>,
): Promise<Ceiling | undefined> {
  if (!process.env.BENCH_CEILING) return undefined;
  return quietly(server, sql, async () => {
    const port = await freePort();
    const child = await startCeiling(port);
    try {
      const result = await measure({ pid: child.pid!, url: `http://127.0.0.1:${port}` });
      await drained(sql); // its own background loop finishes what its load left
      return {
        ceiling_rps: result.rps,
        ceiling_p99_ms: result.p99_ms,
        ceiling_cpu_ms: result.server_cpu_ms,
        ceiling_ratio: round(result.rps / base.baseline_rps),
        ...(result.paced ? { ceiling_paced_p99_ms: result.paced.p99_ms, ceiling_paced_cpu_ms: result.paced.server_cpu_ms } : {}),
      };
    } finally {
      await stopServer(child);
    }
  });
}

/** The second server of the BENCH_RTT phase, behind the delay proxies; paused (SIGSTOP) while it is not measured. */
interface Delayed {
  child: ChildProcess;
  target: Target;
  pg: DelayProxy;
  redis: DelayProxy;
}

/** Starts the delay proxies and the server behind them (the same database and Redis as the main one), and pauses it. */
async function startDelayed(fiuuUrl: string): Promise<Delayed> {
  const direct = new URL(dbUrl);
  const pg = await startDelayProxy({ host: direct.hostname, port: Number(direct.port || 5432), rttMs, postgres: true });
  const redis = await startDelayProxy({ host: redisHost, port: redisPort, rttMs });
  const proxied = new URL(dbUrl);
  proxied.hostname = "127.0.0.1";
  proxied.port = String(pg.port);
  const port = await freePort();
  try {
    const { child } = await startServer(port, fiuuUrl, { dbUrl: proxied.toString(), redisHost: "127.0.0.1", redisPort: redis.port });
    const delayed = { child, target: { pid: child.pid!, url: `http://127.0.0.1:${port}` }, pg, redis };
    await pause(delayed);
    return delayed;
  } catch (error) {
    await Promise.all([pg.close(), redis.close()]);
    throw error;
  }
}

async function stopDelayed(delayed: Delayed) {
  await stopServer(delayed.child);
  await Promise.all([delayed.pg.close(), delayed.redis.close()]);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Pauses the delayed server (SIGSTOP) at a moment when none of its PostgreSQL connections waits
 * for an answer or is inside a transaction, as its proxy sees them: paused inside one, it would
 * hold its locks, and the other server's work could wait on them for good.
 */
async function pause(delayed: Delayed) {
  const started = Date.now();
  for (;;) {
    if (delayed.pg.quiet()) {
      delayed.child.kill("SIGSTOP");
      await sleep(20 + rttMs); // for what it wrote just before it stopped to reach the proxy, and through it
      if (delayed.pg.quiet()) return;
      delayed.child.kill("SIGCONT");
    }
    if (Date.now() - started > 30_000) throw new Error("the delayed server's database connections did not go quiet");
    await sleep(5);
  }
}

/** Commands Redis has run since it started (INFO commandstats, all clients), INFO itself left out. */
function redisCalls(): number {
  const info = spawnSync("redis-cli", ["-h", redisHost, "-p", String(redisPort), "info", "commandstats"], { encoding: "utf8" });
  if (info.status !== 0) throw new Error(`redis-cli info commandstats failed: ${info.stderr || info.error?.message}`);
  let calls = 0;
  for (const [, command, count] of info.stdout.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (command !== "info") calls += Number(count);
  return calls;
}

/**
 * A scenario's BENCH_RTT phase: `seq` (one connection, one request at a time) warmed up and
 * measured on the main server directly, with the delayed one paused; then on the delayed one,
 * with the main one paused as a baseline is run (quietly), so that its background loops stay out
 * of the counters and the background work the requests cause (audit sealing, IPN echo jobs) is
 * done by the delayed server, through the proxies, and counted. The counters are read with the
 * delayed server paused, before the run and once that work is done (drained).
 */
async function sequential(
  server: ChildProcess,
  service: Target,
  delayed: Delayed,
  sql: postgres.Sql,
  seq: (target: Target, seconds: number, tag: string) => Promise<Measured & { sent: number }>,
): Promise<Sequential> {
  await seq(service, rttWarmupS, "seq-direct-warmup");
  const direct = await seq(service, rttDurationS, "seq-direct");
  return quietly(server, sql, async () => {
    delayed.child.kill("SIGCONT");
    try {
      await seq(delayed.target, rttWarmupS, "seq-warmup");
      await drained(sql);
      await pause(delayed);
      delayed.pg.reset();
      delayed.redis.reset();
      const redisBefore = redisCalls();
      delayed.child.kill("SIGCONT");
      const result = await seq(delayed.target, rttDurationS, "seq");
      await drained(sql);
      await pause(delayed);
      const pg = delayed.pg.counts();
      const redisCommands = redisCalls() - redisBefore;
      const redisExchanges = delayed.redis.counts().exchanges;
      const per = (n: number) => round(n / Math.max(1, result.sent));
      const measured = await roundTripCost(delayed);
      return {
        rtt_ms: rttMs,
        seq_p50_ms: result.p50_ms,
        seq_direct_p50_ms: direct.p50_ms,
        round_trips: round(result.p50_ms / rttMs),
        added_round_trips: round((result.p50_ms - direct.p50_ms) / rttMs),
        measured_rtt_ms: measured,
        counted_round_trips: round((result.p50_ms - direct.p50_ms) / measured),
        seq_requests: result.sent,
        seq_errors: result.errors + direct.errors,
        pg_statements: per(pg.statements),
        pg_syncs: per(pg.batches),
        pg_xacts: per(pg.xacts),
        redis_commands: per(redisCommands),
        redis_round_trips: per(redisExchanges),
        pg_round_trips: per(pg.exchanges),
        wire_round_trips: per(pg.exchanges + redisExchanges),
      };
    } finally {
      await pause(delayed);
    }
  });
}

/**
 * What one round trip through the delay proxies adds, as measured now: each proxy holds a chunk a
 * little longer than rtt/2 (its timers, the machine's load), so the bench asks. The p50 of 300
 * sequential `select 1` through the PostgreSQL proxy and of 300 PINGs through the Redis proxy,
 * each less the p50 of the same sent directly, averaged. The delayed server is paused meanwhile.
 */
async function roundTripCost(delayed: Delayed): Promise<number> {
  const p50 = async (send: () => Promise<unknown>) => {
    const latencies: number[] = [];
    for (let i = 0; i < 350; i++) {
      const started = performance.now();
      await send();
      if (i >= 50) latencies.push(performance.now() - started);
    }
    return latencies.sort((x, y) => x - y)[latencies.length >> 1]!;
  };
  const proxiedUrl = new URL(dbUrl);
  proxiedUrl.hostname = "127.0.0.1";
  proxiedUrl.port = String(delayed.pg.port);
  const [pgDirect, pgProxied] = [postgres(dbUrl, { max: 1 }), postgres(proxiedUrl.toString(), { max: 1 })];
  const [redisDirect, redisProxied] = await Promise.all(
    [redisPort, delayed.redis.port].map((port) =>
      openRedis({ kind: "tcp", host: port === redisPort ? redisHost : "127.0.0.1", port, db: 0, maxConnections: 1 }),
    ),
  );
  try {
    const pg = (await p50(() => pgProxied`select 1`)) - (await p50(() => pgDirect`select 1`));
    const redis = (await p50(() => redisProxied!.redis.ping())) - (await p50(() => redisDirect!.redis.ping()));
    return round((pg + redis) / 2);
  } finally {
    await Promise.all([pgDirect.end(), pgProxied.end(), redisDirect!.close(), redisProxied!.close()]);
  }
}

/** The service's metrics, Prometheus text, as a map from each sample's name and labels to its value. */
async function scrape(metricsUrl: string): Promise<Map<string, number>> {
  const text = await (await fetch(metricsUrl)).text();
  const samples = new Map<string, number>();
  for (const match of text.matchAll(/^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/gm)) samples.set(match[1]! + (match[2] ?? ""), Number(match[3]));
  return samples;
}

/** prom-client's default eventLoopMonitoringPrecision, which the service keeps. */
const prometheusTickSeconds = 0.01;

/**
 * The event loop's delay between two scrapes, in ms. prom-client's default metrics export a
 * perf_hooks monitorEventLoopDelay histogram's p99 and max as gauges, and (prom-client 15's
 * eventLoopLag.js) reset the histogram on each collect, that is on each scrape: so the second
 * scrape's gauges cover exactly the time since the first, when nothing else scrapes the server.
 * Each sample is the time between two ticks of the histogram's timer (prom-client's
 * eventLoopMonitoringPrecision, 10 ms by default), so an idle loop reads about 10 ms and a 30 ms
 * block about 34 ms (measured with node 20's monitorEventLoopDelay): the tick is taken off.
 * Should the service export a histogram instead (a name with "eventloop" and "_bucket"), the p99
 * is read from the buckets' increase between the scrapes, and the max is NaN.
 */

function loopDelay(before: Map<string, number>, after: Map<string, number>): { p99_ms: number; max_ms: number } {
  const gauge = (name: string) => [...after].find(([key]) => key === name || key.startsWith(`${name}{`))?.[1];
  const ms = (seconds: number | undefined) => (seconds === undefined ? Number.NaN : round(seconds * 1000));
  // The delay beyond the 10 ms tick each sample includes: how long the loop was kept from its timer.
  const late = (seconds: number | undefined) => (seconds === undefined ? undefined : Math.max(0, seconds - prometheusTickSeconds));
  const p99 = gauge("nodejs_eventloop_lag_p99_seconds");
  if (p99 !== undefined) return { p99_ms: ms(late(p99)), max_ms: ms(late(gauge("nodejs_eventloop_lag_max_seconds"))) };
  const buckets = [...after]
    .filter(([key]) => /eventloop.*_bucket\{/.test(key))
    .map(([key, count]) => ({ le: Number(/le="([^"]+)"/.exec(key)?.[1] ?? Number.NaN), count: count - (before.get(key) ?? 0) }))
    .filter((b) => !Number.isNaN(b.le))
    .sort((x, y) => x.le - y.le);
  const total = buckets.at(-1)?.count ?? 0;
  return { p99_ms: ms(total > 0 ? buckets.find((b) => b.count >= 0.99 * total)?.le : undefined), max_ms: Number.NaN };
}

/** The paced run (BENCH_RATE), with the server's event-loop delay over it: scraped right before and right after. */
async function paced(metricsUrl: string, measure: () => Promise<Measured>): Promise<Paced> {
  const before = await scrape(metricsUrl);
  const result = await measure();
  const loop = loopDelay(before, await scrape(metricsUrl));
  return {
    paced_rps: result.rps,
    paced_p50_ms: result.p50_ms,
    paced_p99_ms: result.p99_ms,
    paced_loop_p99_ms: loop.p99_ms,
    paced_loop_max_ms: loop.max_ms,
    paced_cpu_ms: result.server_cpu_ms,
  };
}

async function main() {
  run("npm", ["run", "build", "--silent"]);
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists ${database} with (force)`);
  await admin.unsafe(`create database ${database}`);
  await admin.end();
  run(process.execPath, ["dist/lib/entry/migrate.js", "up"], { DATABASE_URL: dbUrl, DB_SSL_MODE: "disable" });

  const fiuu = await fakeFiuu();
  const port = await freePort();
  const { child: server, metricsUrl } = await startServer(port, fiuu.url);
  const service: Target = { pid: server.pid!, url: `http://127.0.0.1:${port}` };
  const token = await signToken(secrets.JWT_SECRET, { sub: "bench-shop", role: "service", ttlSeconds: 3600 });
  // The bench's own statements (seeding, waiting for the server to catch up) on a plain client; the
  // baseline's through the service's database client, as the service opens it.
  const sql = postgres(dbUrl, { max: poolSize, onnotice: () => {} });
  const handle = await openPostgres(dbUrl, { ssl: "disable", max: poolSize });
  const redis = await openRedis({ kind: "tcp", host: redisHost, port: 6379, db: 0, maxConnections: 1 });
  const scenarios: Record<string, Result> = {};
  // The BENCH_RTT phase's server, started for the first scenario that needs it, paused in between.
  let delayed: Delayed | undefined;
  const delayedServer = async () => (delayed ??= await startDelayed(fiuu.url));

  try {
    if (wanted("create_payment")) {
      const run = (target: Target, seconds: number, tag: string, rate = 0, connections = concurrency) =>
        load(target, seconds, createScript, [token, `${process.pid}-${tag}`], rate, connections);
      await run(service, warmupS, "warmup");
      const create = await run(service, durationS, "load");
      const createRate = pacedRps(create.rps);
      const createPaced = createRate ? await paced(metricsUrl, () => run(service, durationS, "paced", createRate)) : undefined;
      const { used: _, ...createBase } = await quietly(server, sql, () =>
        baseline(handle.db, durationS, (n) => createPaymentWork(handle.db, redis.redis, n)),
      );
      const createCeiling = await ceiling(server, sql, createBase, async (target) => {
        await run(target, warmupS, "ceiling-warmup");
        const result = await run(target, durationS, "ceiling");
        return { ...result, paced: createRate ? await run(target, durationS, "ceiling-paced", createRate) : undefined };
      });
      const createAfter = createCeiling && bracketed(create, await run(service, durationS, "after-ceiling"), createCeiling.ceiling_cpu_ms);
      const createSequential =
        rttMs > 0
          ? await sequential(server, service, await delayedServer(), sql, (target, seconds, tag) => run(target, seconds, tag, 0, 1))
          : undefined;
      scenarios.create_payment = {
        ...measured(create),
        ...createBase,
        ratio: round(create.rps / createBase.baseline_rps),
        ...createCeiling,
        ...createAfter,
        ...createPaced,
        ...createSequential,
      };
    }

    if (wanted("fiuu_notify")) {
      // fiuu_notify: a valid skey for a distinct created payment per request. Payments are seeded
      // directly (ciphertext made with the service's key) so that only the notify path is loaded.
      const cipher = createFieldCipher(Buffer.from(secrets.ENCRYPTION_KEY, "hex"));
      const enc = cipher.encrypt("Siti Aminah");
      const needed = (process.env.BENCH_CEILING ? (pacedRate ? 350_000 : 250_000) : 150_000) + rttRequestsMax;
      // With their email hash, as the service creates them: else the retention job's backfill locks
      // them, and a baseline run while the server is paused mid-backfill waits on its locks for good.
      await sql`insert into payments (id, order_id, amount, currency, description, customer_name, customer_email, customer_email_hash,
        client_secret_hash, gateway_order_id, created_by, expires_at)
        select 'pay_nb' || n, 'NB-' || n, 1050, 'MYR', 'Bench', ${enc}, ${enc}, md5('nb' || n), 'x', 'nb' || n, 'bench', now() + interval '1 day'
        from generate_series(1, ${needed}) n`;
      let next = 0;
      /** Signed notification bodies for payments next+1 …, as many as this machine could take in `seconds`, one per line. */
      const reports = (seconds: number) => {
        const count = Math.min(5_000 * seconds, needed - next);
        const lines = Array.from({ length: count }, (_, i) => notifyBody(next + 1 + i));
        const file = join(workDir, "reports.txt");
        writeFileSync(file, `${lines.join("\n")}\n`);
        return file;
      };
      const run = async (seconds: number, target = service, rate = 0, connections = concurrency) => {
        const result = await load(target, seconds, notifyScript, [reports(seconds)], rate, connections);
        next += result.sent + connections; // a report in flight when wrk stopped may still have been applied
        return result;
      };
      await run(warmupS);
      const notify = await run(durationS);
      const notifyRate = pacedRps(notify.rps);
      const notifyPaced = notifyRate ? await paced(metricsUrl, () => run(durationS, service, notifyRate)) : undefined;
      if (next + 50_000 + rttRequestsMax > needed) throw new Error("seed more payments for the notify scenario");
      const firstBaseline = next + 1;
      const { used, ...notifyBase } = await quietly(server, sql, () =>
        baseline(handle.db, durationS, (n) => notifyWork(handle.db, `nb${firstBaseline + n}`, String(8_000_000_000 + n))),
      );
      next = firstBaseline + used;
      const notifyCeiling = await ceiling(server, sql, notifyBase, async (target) => {
        await run(warmupS, target);
        const result = await run(durationS, target);
        const pacedResult = notifyRate ? await run(durationS, target, notifyRate) : undefined;
        if (next + 1_000 + rttRequestsMax > needed) throw new Error("seed more payments for the notify scenario's ceiling");
        return { ...result, paced: pacedResult };
      });
      const notifyAfter = notifyCeiling && bracketed(notify, await run(durationS), notifyCeiling.ceiling_cpu_ms);
      const notifySequential =
        rttMs > 0 ? await sequential(server, service, await delayedServer(), sql, (target, seconds) => run(seconds, target, 0, 1)) : undefined;
      scenarios.fiuu_notify = {
        ...measured(notify),
        ...notifyBase,
        ratio: round(notify.rps / notifyBase.baseline_rps),
        ...notifyCeiling,
        ...notifyAfter,
        ...notifyPaced,
        ...notifySequential,
      };
    }

    const report = {
      scenarios,
      rss_mb_max: peakRssMb(server.pid!),
      concurrency,
      duration_s: durationS,
      cpus: cpus().length,
      machine,
    };
    printTable(report);
    if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, `${JSON.stringify(report, null, 2)}\n`);
  } finally {
    if (delayed) await stopDelayed(delayed);
    await stopServer(server);
    await sql.end();
    await handle.close();
    await redis.close();
    fiuu.close();
    rmSync(workDir, { recursive: true, force: true });
  }
}

const round = (x: number) => Math.round(x * 100) / 100;
const measured = ({ sent: _, ...result }: Measured & { sent: number }): Measured => result;

/** The machine and the command, for quoting the figures (printed with the table, and in the JSON). */
const machine = {
  node: process.version,
  cpu: cpus()[0]?.model ?? "unknown",
  cpus: cpus().length,
  command: [
    ...Object.entries(process.env)
      .filter(([name]) => name.startsWith("BENCH_"))
      .sort(([x], [y]) => x.localeCompare(y))
      .map(([name, value]) => `${name}=${value}`),
    "npm run bench",
  ].join(" "),
  date: new Date().toISOString(),
};

/** A notification Fiuu would send for seeded payment n, signed with the merchant's secret key. */
function notifyBody(n: number): string {
  const fields = reportFields(`nb${n}`, String(9_000_000_000 + n));
  const key0 = md5(fields.tranID! + fields.orderid! + fields.status! + fields.domain! + fields.amount! + fields.currency!);
  fields.skey = md5(fields.paydate! + fields.domain! + key0 + fields.appcode! + secrets.FIUU_SECRET_KEY);
  return new URLSearchParams(fields).toString();
}

function printTable(report: { scenarios: Record<string, Result>; rss_mb_max: number }) {
  const withCeiling = Object.values(report.scenarios).some((s) => s.ceiling_rps !== undefined);
  const withPaced = Object.values(report.scenarios).some((s) => s.paced_rps !== undefined);
  const rows = Object.entries(report.scenarios).map(([name, s]) =>
    [
      name,
      s.rps,
      s.p50_ms,
      s.p99_ms,
      s.errors,
      s.server_cpu_ms,
      s.baseline_rps,
      s.baseline_p99_ms,
      s.baseline_cpu_ms,
      s.ratio,
      ...(withCeiling ? [s.ceiling_rps, s.ceiling_p99_ms, s.ceiling_cpu_ms, s.ceiling_ratio, s.server_cpu_after_ms, s.cpu_vs_ceiling] : []),
      ...(withPaced ? [s.paced_rps, s.paced_p50_ms, s.paced_p99_ms, s.paced_loop_p99_ms, s.paced_loop_max_ms, s.paced_cpu_ms] : []),
      ...(withPaced && withCeiling
        ? [
            s.ceiling_paced_p99_ms,
            s.ceiling_paced_cpu_ms,
            s.paced_cpu_ms && s.ceiling_paced_cpu_ms ? round(s.paced_cpu_ms / s.ceiling_paced_cpu_ms) : "",
          ]
        : []),
    ].map(String),
  );
  const header = ["scenario", "rps", "p50 ms", "p99 ms", "errors", "CPU ms/req", "baseline rps", "baseline p99 ms", "baseline CPU ms/req", "ratio"];
  if (withCeiling) header.push("ceiling rps", "ceiling p99 ms", "ceiling CPU ms/req", "ceiling ratio", "CPU ms/req after ceiling", "CPU / ceiling");
  if (withPaced) header.push("paced rps", "paced p50 ms", "paced p99 ms", "paced loop p99 ms", "paced loop max ms", "paced CPU ms/req");
  if (withPaced && withCeiling) header.push("ceiling paced p99 ms", "ceiling paced CPU ms/req", "paced CPU / ceiling");
  console.log(markdown(header, rows));
  console.log(`server peak RSS: ${report.rss_mb_max} MB; ${concurrency} connections, ${durationS} s per scenario`);
  if (withCeiling)
    console.log(
      "CPU / ceiling: the mean of the service's CPU ms/req in its load run and in a second one right after the ceiling's, over the ceiling's",
    );
  if (withPaced)
    console.log(
      "paced loop: the server's event-loop delay over the paced run alone, from nodejs_eventloop_lag_p99/max_seconds less the 10 ms\n" +
        "tick each of prom-client's samples includes (a sample is the time between two ticks of a 10 ms timer): how late the loop ran its timers",
    );
  const sequential = Object.entries(report.scenarios).filter(([, s]) => s.rtt_ms !== undefined);
  if (sequential.length > 0) {
    const seqHeader = [
      "scenario",
      "rtt ms",
      "seq p50 ms",
      "direct seq p50 ms",
      "round trips",
      "added round trips",
      "measured rtt ms",
      "counted round trips",
    ];
    seqHeader.push(
      "PG statements/req",
      "PG syncs/req",
      "PG xacts/req",
      "Redis commands/req",
      "PG round trips/req",
      "Redis round trips/req",
      "wire round trips/req",
    );
    const seqRows = sequential.map(([name, s]) =>
      [
        name,
        s.rtt_ms,
        s.seq_p50_ms,
        s.seq_direct_p50_ms,
        s.round_trips,
        s.added_round_trips,
        s.measured_rtt_ms,
        s.counted_round_trips,
        s.pg_statements,
        s.pg_syncs,
        s.pg_xacts,
        s.redis_commands,
        s.pg_round_trips,
        s.redis_round_trips,
        s.wire_round_trips,
      ].map(String),
    );
    console.log(`\n${markdown(seqHeader, seqRows)}`);
    console.log(
      [
        `one connection, one request at a time, ${rttDurationS} s after ${rttWarmupS} s of warm-up; PostgreSQL and Redis behind proxies adding`,
        `${rttMs} ms per round trip; "direct" is the same against the main server. round trips = seq p50 / rtt; added = (seq p50 - direct) / rtt;\n` +
          "measured rtt: what one round trip through the proxies added in this run (select 1, PING); counted = (seq p50 - direct) / measured rtt.",
        "Per request of the proxied run, the background work the requests caused (audit sealing, IPN echo jobs) and the server's idle",
        "loops included: statements, syncs and transactions ended as the PostgreSQL proxy saw them, commands from Redis's commandstats;",
        "round trips on the wire: the times a client sent after its server had answered, on either proxy (a pipeline counts once).",
      ].join("\n"),
    );
  }
  console.log(`${machine.command}: node ${machine.node}, ${machine.cpus} × ${machine.cpu}, ${machine.date}`);
}

/** A Markdown table, its columns padded to their widest cell. */
function markdown(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

await main();
