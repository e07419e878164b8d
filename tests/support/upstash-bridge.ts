import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis as IORedis } from "ioredis";

/**
 * A stand-in for Upstash's REST endpoint in front of a real Redis, so code running where only
 * HTTP reaches out (workerd) can be tested against the real server. It speaks what
 * `@upstash/redis` sends (https://upstash.com/docs/redis/features/restapi):
 * - `POST /` with a JSON command array → `{ result }`, or `{ error }` with HTTP 400;
 * - `POST /pipeline` with an array of commands → `[{ result } | { error }, …]`;
 * - `POST /multi-exec` likewise, as one MULTI/EXEC transaction;
 * - `Authorization: Bearer <token>` required (401 otherwise);
 * - `Upstash-Encoding: base64` (the client's default) → every string in a result base64-encoded.
 * Commands go to Redis with ioredis's `call`, unchanged.
 */
export interface UpstashBridge {
  url: string;
  token: string;
  /** Commands served so far (a pipeline counts each of its commands). */
  readonly commands: number;
  close(): Promise<void>;
}

export async function startUpstashBridge(options: {
  host: string;
  port?: number;
  db?: number;
  password?: string;
  token?: string;
}): Promise<UpstashBridge> {
  const token = options.token ?? `bridge-${Math.random().toString(36).slice(2)}`;
  const client = new IORedis({
    host: options.host,
    port: options.port ?? 6379,
    db: options.db ?? 0,
    password: options.password,
    lazyConnect: false,
    maxRetriesPerRequest: 1,
  });
  client.on("error", () => {});
  let commands = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${token}`) return send(401, { error: "Unauthorized" });
    if (req.method !== "POST") return send(405, { error: "Only POST is served by this bridge" });
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return send(400, { error: "ERR the body is not JSON" });
    }
    const base64 = String(req.headers["upstash-encoding"] ?? "").toLowerCase() === "base64";
    const encode = (value: unknown): unknown =>
      !base64 ? value : typeof value === "string" ? Buffer.from(value, "utf8").toString("base64") : Array.isArray(value) ? value.map(encode) : value;
    const path = (req.url ?? "/").split("?")[0]!.replace(/\/+$/, "");

    if (path === "") {
      if (!isCommand(body)) return send(400, { error: "ERR a command is a non-empty JSON array" });
      commands++;
      try {
        return send(200, { result: encode(await client.call(...asArgs(body))) });
      } catch (error) {
        if ((error as Error).name === "ReplyError") return send(400, { error: (error as Error).message });
        throw error;
      }
    }
    if (path === "/pipeline" || path === "/multi-exec") {
      if (!Array.isArray(body) || !body.every(isCommand)) return send(400, { error: "ERR a pipeline is a JSON array of commands" });
      commands += body.length;
      const batch = path === "/multi-exec" ? client.multi() : client.pipeline();
      for (const command of body) batch.call(...asArgs(command));
      let replies: [Error | null, unknown][] | null;
      try {
        replies = await batch.exec();
      } catch (error) {
        // A transaction refused as a whole (EXECABORT): one error for all of it.
        if ((error as Error).name === "ReplyError") return send(400, { error: (error as Error).message });
        throw error;
      }
      return send(
        200,
        (replies ?? []).map(([error, result]) => (error ? { error: error.message } : { result: encode(result) })),
      );
    }
    return send(404, { error: `ERR this bridge does not serve ${path}` });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: `ERR bridge: ${(error as Error).message}` }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    get commands() {
      return commands;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      client.disconnect();
    },
  };
}

function isCommand(value: unknown): value is unknown[] {
  return Array.isArray(value) && value.length > 0 && typeof value[0] === "string";
}

function asArgs(command: unknown[]): [string, ...string[]] {
  const [name, ...args] = command;
  return [String(name), ...args.map((a) => (typeof a === "string" ? a : JSON.stringify(a)))];
}
