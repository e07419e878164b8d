import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";

/** A free TCP port on 127.0.0.1 (for a server whose own URL must be known before it starts). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface ServiceProcess {
  child: ChildProcess;
  /** The address it listens on (HOST) and its ports, as its "payment service listening" line says. */
  host: string;
  ports: { main: number; health: number; metrics?: number };
  stdout: string[];
  /** The stdout lines that are JSON log lines, parsed. */
  logs(): Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<number | null>;
  /** Descriptors the process has open now (Linux /proc), or undefined where that cannot be read. */
  openDescriptors(): number | undefined;
  /** Ends it as a developer's Ctrl-C does (SIGINT: no drain period); send SIGTERM through `child` for the orchestrator's way. */
  stop(): Promise<number | null>;
}

export interface ServiceProcessOptions {
  timeoutMs?: number;
  /** Starts it under `ulimit -n` of this many files (soft and hard), as a container's limit would. */
  openFileLimit?: number;
}

/** Starts the service as `npm start` runs it, in a process of its own, and waits until it listens. */
export async function startServiceProcess(env: Record<string, string>, options: number | ServiceProcessOptions = {}): Promise<ServiceProcess> {
  const { timeoutMs = 60_000, openFileLimit } = typeof options === "number" ? { timeoutMs: options } : options;
  const node = [process.execPath, "--import", "tsx", path.resolve("lib/entry/node.ts")];
  // exec keeps the pid, so the limit and /proc/<pid> are the service's own.
  const [command, ...args] = openFileLimit === undefined ? node : ["sh", "-c", `ulimit -n ${openFileLimit} && exec "$@"`, "sh", ...node];
  const child = spawn(command!, args, {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stdout: string[] = [];
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const listening = await new Promise<{ host: string; ports: ServiceProcess["ports"] }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`service did not start within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      stdout.push(line);
      try {
        const parsed = JSON.parse(line) as { msg?: string; host?: string; ports?: ServiceProcess["ports"] };
        if (parsed.msg === "payment service listening") {
          clearTimeout(timer);
          resolve({ host: parsed.host!, ports: parsed.ports! });
        }
      } catch {
        // not a JSON line; kept in stdout for the test to judge
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`service exited with ${code}: ${stderr}`));
    });
  });
  return {
    child,
    ...listening,
    stdout,
    logs: () =>
      stdout.flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    stderr: () => stderr,
    exited,
    openDescriptors: () => {
      try {
        return readdirSync(`/proc/${child.pid}/fd`).length;
      } catch {
        return undefined;
      }
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
      return exited;
    },
  };
}
