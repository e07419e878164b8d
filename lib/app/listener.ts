import type http from "node:http";
import net from "node:net";
import { createAdaptorServer } from "@hono/node-server";
import type { Logger } from "../core/logger.js";

// One HTTP listener of the Node server, hardened against clients that hold connections (each one
// is a file descriptor) and closed without dropping a request it has received.

export interface ListenerOptions {
  /** Names the listener in log lines: api, health, metrics. */
  name: string;
  host: string;
  port: number;
  /** Time a client has to send the request's headers (Node's headersTimeout). */
  headersTimeoutMs: number;
  /** Time a client has to send the whole request, body included (Node's requestTimeout). */
  requestTimeoutMs: number;
  /** How long a keep-alive connection may wait for its next request. */
  keepAliveTimeoutMs: number;
  /** Connections beyond this are closed as soon as they are accepted. */
  maxConnections: number;
  logger: Logger;
}

export interface Listener {
  readonly name: string;
  readonly port: number;
  readonly server: http.Server;
  /** Requests received whose answer has not been sent yet. */
  inFlight(): number;
  /** From now on every answer carries `Connection: close` and its connection ends after it. */
  closeAfterEachResponse(): void;
  /**
   * Stops accepting connections; answers every request already received (with `Connection: close`);
   * closes a connection once its last answer is out, or once it has been idle for a moment; at
   * `deadline` (epoch ms) closes whatever is left. Resolves when no connection remains.
   */
  close(deadline: number): Promise<{ forced: number }>;
}

/**
 * How long a connection with no request in flight is left open once the listener is closing: a
 * request may already be on its way (or in the socket's buffer, not read yet), and destroying the
 * connection then resets it. Node's own close() destroys such connections at once.
 */
const idleGraceMs = 1_000;
/** Gap between two warnings that connections are being refused at the cap. */
const dropWarningIntervalMs = 10_000;

/** Starts a listener for `fetch` and resolves once it accepts connections. */
export async function startListener(fetch: (request: Request) => Response | Promise<Response>, options: ListenerOptions): Promise<Listener> {
  const { name, logger } = options;
  const server = createAdaptorServer({
    fetch,
    // The URL's host for a request without a Host header (HTTP/1.0).
    hostname: options.host,
    serverOptions: {
      headersTimeout: options.headersTimeoutMs,
      requestTimeout: options.requestTimeoutMs,
      keepAliveTimeout: options.keepAliveTimeoutMs,
      // Node enforces the two timeouts above on this tick (default 30 s, which would let a slow
      // client keep its connection up to 30 s past its deadline).
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(options.headersTimeoutMs / 2))),
    },
  }) as http.Server;
  server.maxConnections = options.maxConnections;

  const connections = new Map<net.Socket, { active: number; idleSince: number }>();
  let closeEach = false;
  const open = new Set<http.ServerResponse>();

  server.on("connection", (socket: net.Socket) => {
    connections.set(socket, { active: 0, idleSince: Date.now() });
    socket.once("close", () => connections.delete(socket));
  });
  // Before the Hono listener, so the decision is made before any header is written.
  server.prependListener("request", (_request: http.IncomingMessage, response: http.ServerResponse) => {
    const state = connections.get(response.socket as net.Socket);
    if (state) state.active++;
    open.add(response);
    if (closeEach) response.shouldKeepAlive = false;
    response.once("close", () => {
      open.delete(response);
      if (state) {
        state.active--;
        state.idleSince = Date.now();
      }
    });
  });

  let dropped = 0;
  let lastWarning = 0;
  server.on("drop", () => {
    dropped++;
    const now = Date.now();
    if (now - lastWarning < dropWarningIntervalMs) return;
    lastWarning = now;
    logger.warn(
      { listener: name, max_connections: options.maxConnections, refused: dropped },
      `${name} listener at its connection cap: new connections refused`,
    );
    dropped = 0;
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });

  const closeAfterEachResponse = () => {
    closeEach = true;
    for (const response of open) if (!response.headersSent) response.shouldKeepAlive = false;
  };

  let closing: Promise<{ forced: number }> | undefined;
  const close = (deadline: number) =>
    (closing ??= new Promise((resolve) => {
      closeAfterEachResponse();
      let sweep: NodeJS.Timeout | undefined;
      const finish = (forced: number) => {
        clearInterval(sweep);
        resolve({ forced });
      };
      // net.Server's close: stop accepting, and call back once the last connection has closed.
      // (http.Server's close would also destroy at once every connection with no request in
      // progress, including one whose request has arrived but not been read: ECONNRESET.)
      net.Server.prototype.close.call(server, () => finish(0));
      sweep = setInterval(() => {
        const now = Date.now();
        if (now >= deadline) {
          const forced = connections.size;
          for (const socket of connections.keys()) socket.destroy();
          finish(forced);
          return;
        }
        for (const [socket, state] of connections) {
          if (state.active === 0 && now - state.idleSince >= idleGraceMs) socket.destroy();
        }
      }, 100);
    }));

  return {
    name,
    port: (server.address() as net.AddressInfo).port,
    server,
    inFlight: () => open.size,
    closeAfterEachResponse,
    close,
  };
}

/** The open-files limit of this process (Linux: /proc/self/limits), or undefined where unknown. */
export function parseOpenFileLimit(limits: string): number | undefined {
  const match = /^Max open files\s+(\d+|unlimited)\s/m.exec(limits);
  if (!match || match[1] === "unlimited") return undefined;
  return Number(match[1]);
}

/**
 * The connection caps of the three listeners. As configured, unless together they would take the
 * process past its open-files limit: then the API's cap is lowered, leaving `reserved` descriptors
 * for everything else the process opens (database and Redis connections, calls to Fiuu and webhook
 * receivers, files), so the health and metrics listeners can always accept.
 */
export function connectionCaps(
  configured: { api: number; health: number; metrics: number },
  openFileLimit: number | undefined,
  reserved: number,
): { api: number; health: number; metrics: number; lowered: boolean } {
  if (openFileLimit === undefined) return { ...configured, lowered: false };
  const room = openFileLimit - reserved - configured.health - configured.metrics;
  if (configured.api <= room) return { ...configured, lowered: false };
  return { ...configured, api: Math.max(1, room), lowered: true };
}
