import net from "node:net";
import { buildConnector, Client } from "undici";

// Clients that hold connections the way the attacks and the load balancers of issue #18 do: raw
// TCP connections that send a request slowly or not at all, and keep-alive HTTP clients.

export interface ConnectionEnd {
  /** fin: the server closed it cleanly; reset: ECONNRESET/EPIPE; refused: it was never accepted. */
  how: "fin" | "reset" | "refused" | "error";
  code?: string;
  /** What the server sent before the end (e.g. "HTTP/1.1 408 Request Timeout"). */
  received: string;
}

export interface RawConnection {
  socket: net.Socket;
  connected: Promise<boolean>;
  received(): string;
  /** Resolves when the connection is gone, with how it ended. */
  ended: Promise<ConnectionEnd>;
}

/** A raw TCP connection that writes `first` once connected. */
export function rawConnection(port: number, first?: string, host = "127.0.0.1"): RawConnection {
  const socket = net.connect(port, host);
  let received = "";
  let how: ConnectionEnd["how"] | undefined;
  let code: string | undefined;
  const connected = new Promise<boolean>((resolve) => {
    socket.once("connect", () => {
      if (first) socket.write(first);
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
  socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
  socket.once("end", () => {
    how ??= "fin";
    socket.end();
  });
  socket.once("error", (error: NodeJS.ErrnoException) => {
    code = error.code;
    how ??= error.code === "ECONNRESET" || error.code === "EPIPE" ? "reset" : error.code === "ECONNREFUSED" ? "refused" : "error";
  });
  const ended = new Promise<ConnectionEnd>((resolve) => socket.once("close", () => resolve({ how: how ?? "fin", code, received })));
  return { socket, connected, received: () => received, ended };
}

export interface SlowHeaderFlood {
  /** Connections the server closed without answering (refused at its cap, or before reading). */
  dropped: number;
  /** Connections the server answered 408 and closed (its headers deadline). */
  timedOut: number;
  /** Connections opened so far. */
  opened: number;
  /** Connections open at this moment, from the client's side. */
  open(): number;
  /** Stops opening connections; those still open keep trickling until the server closes them. */
  stopReopening(): void;
  /** Resolves once the server has closed every connection. */
  allClosed(): Promise<void>;
}

/**
 * Keeps `connections` connections to the port, each sending a request's headers one line every
 * `trickleMs` and never finishing them (slowloris); a connection the server closes is opened again
 * until stopReopening().
 */
export function slowHeaderFlood(port: number, connections: number, trickleMs = 300): SlowHeaderFlood {
  let reopening = true;
  const live = new Set<Promise<void>>();
  const flood: SlowHeaderFlood = {
    dropped: 0,
    timedOut: 0,
    opened: 0,
    open: () => live.size,
    stopReopening: () => (reopening = false),
    allClosed: async () => {
      while (live.size > 0) await Promise.all([...live]);
    },
  };
  const openOne = () => {
    flood.opened++;
    const connection = rawConnection(port, `POST /v1/payments HTTP/1.1\r\nHost: payments.test\r\nContent-Type: application/json\r\n`);
    const trickle = setInterval(() => {
      if (connection.socket.writable) connection.socket.write(`X-Slow-${flood.opened}: 1\r\n`);
    }, trickleMs);
    const done = connection.ended.then((end) => {
      clearInterval(trickle);
      live.delete(done);
      if (end.received.startsWith("HTTP/1.1 408")) flood.timedOut++;
      else flood.dropped++;
      // A pause, as an attacker's loop would have, so a refused slot does not spin the 2 cores.
      if (reopening) setTimeout(() => reopening && openOne(), 250);
    });
    live.add(done);
  };
  for (let i = 0; i < connections; i++) openOne();
  return flood;
}

export interface Outcome {
  what: string;
  status?: number;
  /** The answer's Connection header. */
  connection?: string;
  error?: string;
  /** Set when the client sent the request after the test's marker (e.g. after /ready said 503). */
  afterMarker: boolean;
}

/**
 * One keep-alive HTTP/1.1 connection at a time to `origin`, like a load balancer's upstream
 * connection: requests go over the open connection; when the server closes it a new one is opened,
 * unless `mayConnect()` says no — the balancer has taken this replica out and sends the request
 * elsewhere, so it never reaches this server (error "rerouted").
 */
export function keepAliveClient(origin: string, mayConnect: () => boolean): Client {
  const connect = buildConnector({});
  return new Client(origin, {
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 60_000,
    connect: (options, callback) => {
      if (!mayConnect()) {
        callback(new Error("rerouted"), null);
        return;
      }
      connect(options, callback);
    },
  });
}

/** Sends one request on the client and records its outcome, never throwing. */
export async function send(
  client: Client,
  what: string,
  request: { method: "GET" | "POST"; path: string; headers?: Record<string, string>; body?: string },
  afterMarker: () => boolean,
): Promise<Outcome> {
  const marked = afterMarker();
  try {
    const res = await client.request(request);
    await res.body.text();
    return { what, status: res.statusCode, connection: String(res.headers.connection ?? ""), afterMarker: marked };
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
    return { what, error: [e.code, e.message, e.cause?.code].filter(Boolean).join(" "), afterMarker: marked };
  }
}
