import { spawn, type ChildProcess } from "node:child_process";
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
  ports: { main: number; health: number; metrics?: number };
  stdout: string[];
  stderr: () => string;
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

/** Starts the service as `npm start` runs it, in a process of its own, and waits until it listens. */
export async function startServiceProcess(env: Record<string, string>, timeoutMs = 60_000): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", path.resolve("lib/entry/node.ts")], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stdout: string[] = [];
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const ports = await new Promise<ServiceProcess["ports"]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`service did not start within ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      stdout.push(line);
      try {
        const parsed = JSON.parse(line) as { msg?: string; ports?: ServiceProcess["ports"] };
        if (parsed.msg === "payment service listening") {
          clearTimeout(timer);
          resolve(parsed.ports!);
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
    ports,
    stdout,
    stderr: () => stderr,
    exited,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}
