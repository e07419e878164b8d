import net from "node:net";
import tls from "node:tls";

// sslmode=allow as libpq does it: a connection without TLS first, and TLS only when the server
// answers that one with an error (a pg_hba.conf that accepts only `hostssl`). postgres.js sends
// the start-up message itself, after which there is no going back to TLS, so a probe connection
// asks first: a start-up message alone, closed as soon as the server answers it. The socket handed
// to postgres.js is then a fresh plain one, or one already in TLS (unverified, as allow is).

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 4, 210, 22, 47]);
const TERMINATE = Buffer.from([88, 0, 0, 0, 4]);

interface SocketOptions {
  host: string[];
  port: number[];
  user: string;
  database: string;
  connect_timeout?: number;
}

/** postgres.js's `socket` option for sslmode=allow. */
export function allowSocket(options: SocketOptions): Promise<net.Socket> {
  const host = options.host[0]!;
  const port = options.port[0]!;
  const timeoutMs = (options.connect_timeout ?? 30) * 1000;
  return (async () => {
    const answer = await probe(host, port, options, timeoutMs);
    if (answer === "error") {
      const secured = await startTls(host, port, timeoutMs);
      // The server has no TLS either: the plain connection below meets the error again, and
      // postgres.js reports it as the server gave it.
      if (secured) return named(secured, host, port);
    }
    return named(await connect(host, port, timeoutMs), host, port);
  })();
}

/** postgres.js names a connection's host and port in its errors from these. */
function named<T extends net.Socket>(socket: T, host: string, port: number): T {
  return Object.assign(socket, { host, port });
}

function connect(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`write CONNECT_TIMEOUT ${host}:${port}`), { code: "CONNECT_TIMEOUT" }));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** The first byte of the server's answer to `request` on a fresh connection; the connection closed after. */
async function firstAnswer(host: string, port: number, request: Buffer, timeoutMs: number, keep = false) {
  const socket = await connect(host, port, timeoutMs);
  return new Promise<{ socket: net.Socket; data: Buffer }>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    const done = (error?: Error, data?: Buffer) => {
      clearTimeout(timer);
      socket.removeAllListeners("data");
      socket.removeAllListeners("error");
      socket.removeAllListeners("close");
      if (!keep || error) socket.destroy();
      if (error) reject(error);
      else resolve({ socket, data: data! });
    };
    socket.once("data", (data) => done(undefined, data));
    socket.once("error", (error) => done(error));
    socket.once("close", () => done(new Error(`${host}:${port} closed the connection`)));
    socket.write(request);
  });
}

/** Whether the server accepts a start-up without TLS ("accepted") or answers it with an error. */
async function probe(host: string, port: number, options: SocketOptions, timeoutMs: number): Promise<"accepted" | "error"> {
  const startup = startupMessage(options.user, options.database);
  const { socket, data } = await firstAnswer(host, port, startup, timeoutMs, true);
  // AuthenticationOk (trust): a session started; end it properly. Any other request for a
  // password: closing now ends the attempt without a log line on the server.
  if (data[0] === 82 && data.length >= 9 && data.readInt32BE(5) === 0) socket.end(TERMINATE);
  else socket.destroy();
  return data[0] === 69 ? "error" : "accepted";
}

/** A connection in TLS (certificate not checked: allow never checks it), or undefined when the server has no TLS. */
async function startTls(host: string, port: number, timeoutMs: number): Promise<tls.TLSSocket | undefined> {
  const { socket, data } = await firstAnswer(host, port, SSL_REQUEST, timeoutMs, true);
  if (data[0] !== 83) {
    socket.destroy();
    return undefined;
  }
  return new Promise((resolve, reject) => {
    const secured = tls.connect({ socket, rejectUnauthorized: false, ...(net.isIP(host) ? {} : { servername: host }) });
    const timer = setTimeout(() => {
      secured.destroy();
      reject(new Error(`TLS handshake with ${host}:${port} not done within ${timeoutMs} ms`));
    }, timeoutMs);
    secured.once("secureConnect", () => {
      clearTimeout(timer);
      secured.removeAllListeners("error");
      resolve(secured);
    });
    secured.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

function startupMessage(user: string, database: string): Buffer {
  const body = Buffer.from(`user\0${user}\0database\0${database}\0\0`, "utf8");
  const message = Buffer.alloc(8 + body.length);
  message.writeInt32BE(message.length, 0);
  message.writeInt32BE(196608, 4); // protocol 3.0
  body.copy(message, 8);
  return message;
}
