/**
 * A TCP proxy that adds a round-trip time to a connection, for the bench's BENCH_RTT phase: every
 * chunk is held for rtt/2 ms in each direction, in order, so that a service on one machine with its
 * PostgreSQL and Redis pays for its round trips as it would over a network. Written on node:net
 * with one timer for all its connections (see Schedule), as it shares the machine with what is measured.
 *
 * For PostgreSQL (`postgres: true`) it also reads the message headers (never the bodies) of both
 * directions and counts what the service asked of the database: simple queries ('Q'), extended
 * protocol executions ('E', one statement each: postgres.js's way) and syncs ('S', the end of one
 * pipelined batch, which the server answers with one ReadyForQuery), and the transactions that
 * ended (a ReadyForQuery with status idle after a batch that ran a statement: an autocommit
 * statement, or the COMMIT or ROLLBACK of a block).
 *
 * What it leaves out: the TCP handshake of a new connection is not delayed (the service pools its
 * connections, so that is rare), nor is bandwidth limited.
 */
import net from "node:net";

/** What the PostgreSQL clients sent through the proxy since it started or was last reset. */
export interface PgCounts {
  /** Simple-protocol queries ('Q'). */
  queries: number;
  /** Extended-protocol executions ('E'). */
  executes: number;
  /** Extended-protocol syncs ('S'). */
  syncs: number;
  /** Statements sent: queries + executes. */
  statements: number;
  /** Batches the server answered one by one, each with a ReadyForQuery: queries + syncs. */
  batches: number;
  /** Transactions ended (committed or rolled back), from the server's ReadyForQuery status. */
  xacts: number;
  /**
   * Exchanges, for any protocol: the times a client sent after the server had answered (or sent
   * first on its connection). For a request/response protocol such as Redis's, one per round trip,
   * however its writes are cut into chunks; pipelined commands share one.
   */
  exchanges: number;
}

export interface DelayProxy {
  /** The port it listens on, on 127.0.0.1. */
  port: number;
  /** The counts since it started or since the last reset (only `exchanges` for a proxy without `postgres`). */
  counts(): PgCounts;
  reset(): void;
  /** PostgreSQL only: whether every connection's client is idle outside a transaction (every batch answered, nothing on its way). */
  quiet(): boolean;
  close(): Promise<void>;
}

export interface DelayProxyOptions {
  /** Where to connect. */
  host: string;
  port: number;
  /** The round-trip time to add, in ms: half of it each way. */
  rttMs: number;
  /** Read the PostgreSQL protocol and count its messages. */
  postgres?: boolean;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const type = (letter: string) => letter.charCodeAt(0);
const [QUERY, EXECUTE, SYNC, READY] = [type("Q"), type("E"), type("S"), type("Z")];
const IDLE = type("I");

/** Chunks closer to their time than this are waited for by sleeping (Atomics.wait), not by a timer... */
const SLEEP_MS = 2;
/** ...in slices of at most this, each followed by a turn of the event loop. */
const SLICE_MS = 0.1;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * When each held chunk is due, in one queue for all the connections that share a delay: as every
 * chunk is held for the same time from when it came, the queue is in order of both, so order is
 * kept within each direction of each connection and no chunk waits for another's timer.
 *
 * Node's timers count whole milliseconds of libuv's clock: one set for 1 ms fires between 0 and 2 ms
 * later, which at BENCH_RTT=2 would be an error as large as the delay. So a timer only wakes the
 * queue up to 2 ms before its first chunk is due, and the rest is slept (Atomics.wait: a futex with
 * a timeout, precise to tens of microseconds, using no CPU) in slices of a tenth of a millisecond
 * with a turn of the event loop (setImmediate) between them, so that a chunk arriving meanwhile is
 * read, and timed, at most about that much late. Measured on this machine with an echo server in
 * another process, the round trip through BENCH_RTT=2 took 2.09 ms (p50) on one connection alone
 * and 2.26 to 2.35 ms with three connections pinging at once (10.09, and 10.16 to 10.23, for 10).
 */
class Schedule {
  private readonly due: number[] = [];
  private readonly actions: (() => void)[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;
  private armed = false;
  /** How much longer than asked a sleep lasts (about 75 µs here, at most 0.25 ms counted): asked for that much less. */
  private overshootMs = 0.05;

  constructor(private readonly delayMs: number) {}

  /** Runs `action` the delay from now. */
  push(action: () => void) {
    this.due.push(performance.now() + this.delayMs);
    this.actions.push(action);
    this.arm();
  }

  private arm() {
    if (this.armed || this.head === this.due.length) return;
    this.armed = true;
    const wait = this.due[this.head]! - performance.now() - SLEEP_MS;
    // Time to sleep: after this turn's other I/O, to notice what came with it. Else a timer, which
    // fires up to a millisecond early or late: in time either way.
    if (wait <= 0) setImmediate(this.release);
    else this.timer = setTimeout(this.release, Math.max(1, wait));
  }

  private readonly release = () => {
    this.armed = false;
    this.timer = undefined;
    while (this.head < this.due.length) {
      const wait = this.due[this.head]! - performance.now();
      if (wait > SLEEP_MS) break;
      const ask = wait - this.overshootMs;
      if (ask > SLICE_MS) {
        // Not yet: sleep a slice, then let the event loop read what came meanwhile, and look again.
        this.sleep(SLICE_MS);
        this.armed = true;
        setImmediate(this.release);
        return;
      }
      if (ask > 0) this.sleep(ask);
      const action = this.actions[this.head]!;
      this.actions[this.head++] = noop;
      action();
    }
    if (this.head === this.due.length || this.head > 1024) {
      this.due.splice(0, this.head);
      this.actions.splice(0, this.head);
      this.head = 0;
    }
    this.arm();
  };

  private sleep(ms: number) {
    const started = performance.now();
    Atomics.wait(sleeper, 0, 0, ms);
    // Bounded: a sleep made long by the process being descheduled says nothing of the next one.
    const over = Math.min(0.25, Math.max(0, performance.now() - started - ms));
    this.overshootMs += 0.1 * (over - this.overshootMs);
  }

  stop() {
    clearTimeout(this.timer);
  }
}

const noop = () => {};
const schedules = new Map<number, { schedule: Schedule; users: number }>();

/** One direction of a proxied connection: its chunks, each written when the schedule says. */
class Lane {
  private held = 0;
  private stopped = false;

  constructor(
    private readonly schedule: Schedule,
    private readonly from: net.Socket,
    private readonly to: net.Socket,
  ) {}

  /** Holds a chunk (null: the end of the stream) for the delay. */
  push(chunk: Buffer | null) {
    this.held++;
    this.schedule.push(() => {
      this.held--;
      if (this.stopped) return;
      if (chunk === null) this.to.end();
      else if (!this.to.write(chunk) && !this.from.isPaused()) {
        // The reader is slower than the writer: stop reading until it has caught up.
        this.from.pause();
        this.to.once("drain", () => this.from.resume());
      }
    });
  }

  get empty() {
    return this.held === 0;
  }

  stop() {
    this.stopped = true;
  }
}

/**
 * The PostgreSQL protocol of one connection, read message by message from the headers: the
 * client's (a startup message without a type byte, after any SSLRequest; then a type byte and a
 * big-endian int32 length that counts itself) and the server's (the one-byte answer to an
 * SSLRequest, then typed messages). Messages may span chunks, and a chunk may hold several.
 */
class PgConnection {
  // The client's side.
  private startup = true;
  private readonly clientHead = Buffer.alloc(8);
  private clientHave = 0;
  private clientSkip = 0;
  /** Statements in the batch being sent (since the last sync). */
  private batch = 0;
  /** Statements in each batch sent and not yet answered, oldest first. */
  private readonly unanswered: number[] = [];
  // The server's side.
  private readonly serverHead = Buffer.alloc(6);
  private serverHave = 0;
  private serverSkip = 0;
  /** One-byte answers to SSLRequest or GSSENCRequest still to come. */
  private answers = 0;
  /** False once the connection went encrypted: nothing more can be read. */
  private readable = true;
  /** The status of the server's last ReadyForQuery: 'I' idle, 'T' in a transaction block, 'E' in a failed one. */
  private status = 0;

  constructor(
    private readonly counts: PgCounts,
    private readonly toServer: Lane,
  ) {}

  /** Reads what the client sent. */
  fromClient(chunk: Buffer) {
    if (!this.readable) return;
    let i = 0;
    while (i < chunk.length) {
      if (this.clientSkip > 0) {
        const n = Math.min(this.clientSkip, chunk.length - i);
        this.clientSkip -= n;
        i += n;
        continue;
      }
      const need = this.startup ? 8 : 5;
      const n = Math.min(need - this.clientHave, chunk.length - i);
      chunk.copy(this.clientHead, this.clientHave, i, i + n);
      this.clientHave += n;
      i += n;
      if (this.clientHave < need) return;
      this.clientHave = 0;
      if (this.startup) {
        const length = this.clientHead.readInt32BE(0);
        const code = this.clientHead.readInt32BE(4);
        this.clientSkip = Math.max(0, length - 8);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) this.answers++;
        else this.startup = false; // the startup message (or a CancelRequest, after which the connection closes)
      } else {
        const message = this.clientHead[0]!;
        this.clientSkip = Math.max(0, this.clientHead.readInt32BE(1) - 4);
        this.message(message);
      }
    }
  }

  private message(message: number) {
    if (message === QUERY) {
      this.counts.queries++;
      this.counts.statements++;
      this.counts.batches++;
      // A simple query is its own batch, answered by one ReadyForQuery.
      this.unanswered.push(this.batch + 1);
      this.batch = 0;
    } else if (message === EXECUTE) {
      this.counts.executes++;
      this.counts.statements++;
      this.batch++;
    } else if (message === SYNC) {
      this.counts.syncs++;
      this.counts.batches++;
      this.unanswered.push(this.batch);
      this.batch = 0;
    }
  }

  /** Reads what the server sent. */
  fromServer(chunk: Buffer) {
    if (!this.readable) return;
    let i = 0;
    while (i < chunk.length) {
      if (this.serverSkip > 0) {
        const n = Math.min(this.serverSkip, chunk.length - i);
        this.serverSkip -= n;
        i += n;
        continue;
      }
      if (this.serverHave === 0 && this.answers > 0) {
        this.answers--;
        // 'S' or 'G': encryption from here on, which this proxy cannot read.
        if (chunk[i++] !== type("N")) this.readable = false;
        if (!this.readable) return;
        continue;
      }
      // A ReadyForQuery's status is the byte after its header.
      const need = this.serverHave > 0 && this.serverHead[0] === READY ? 6 : 5;
      const n = Math.min(need - this.serverHave, chunk.length - i);
      chunk.copy(this.serverHead, this.serverHave, i, i + n);
      this.serverHave += n;
      i += n;
      if (this.serverHave < need) break;
      if (need === 5 && this.serverHead[0] === READY) continue; // and now its status
      this.serverHave = 0;
      this.serverSkip = Math.max(0, this.serverHead.readInt32BE(1) - (need - 1));
      if (this.serverHead[0] !== READY) continue;
      this.status = this.serverHead[5]!;
      const statements = this.unanswered.shift() ?? 0;
      if (statements > 0 && this.serverHead[5] === IDLE) this.counts.xacts++;
    }
  }

  /** Whether the client is idle (see `idle`) and outside a transaction: pausing it holds no locks. */
  get quiet() {
    return this.idle && this.status === IDLE;
  }

  /** Whether every batch the client sent has been answered and nothing of its is on its way. */
  get idle() {
    return (
      this.readable &&
      !this.startup &&
      this.unanswered.length === 0 &&
      this.batch === 0 &&
      this.clientHave === 0 &&
      this.clientSkip === 0 &&
      this.toServer.empty
    );
  }
}

const zeros = (): PgCounts => ({ queries: 0, executes: 0, syncs: 0, statements: 0, batches: 0, xacts: 0, exchanges: 0 });

export async function startDelayProxy(options: DelayProxyOptions): Promise<DelayProxy> {
  const oneWayMs = options.rttMs / 2;
  const shared = schedules.get(oneWayMs) ?? { schedule: new Schedule(oneWayMs), users: 0 };
  schedules.set(oneWayMs, shared);
  shared.users++;
  const { schedule } = shared;
  const counts = zeros();
  const sockets = new Set<net.Socket>();
  const connections = new Set<PgConnection>();

  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ host: options.host, port: options.port, allowHalfOpen: true });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    sockets.add(client);
    sockets.add(upstream);
    const toServer = new Lane(schedule, client, upstream);
    const toClient = new Lane(schedule, upstream, client);
    const pg = options.postgres ? new PgConnection(counts, toServer) : undefined;
    if (pg) connections.add(pg);
    let answered = true;
    client.on("data", (chunk: Buffer) => {
      if (answered) counts.exchanges++;
      answered = false;
      pg?.fromClient(chunk);
      toServer.push(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      answered = true;
      pg?.fromServer(chunk);
      toClient.push(chunk);
    });
    client.on("end", () => toServer.push(null));
    upstream.on("end", () => toClient.push(null));
    const gone = () => {
      toServer.stop();
      toClient.stop();
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
      if (pg) connections.delete(pg);
    };
    // Once both directions have ended (or either failed), both sockets go.
    client.on("close", gone);
    upstream.on("close", gone);
    client.on("error", gone);
    upstream.on("error", gone);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });

  return {
    port: (server.address() as net.AddressInfo).port,
    counts: () => ({ ...counts }),
    reset: () => {
      Object.assign(counts, zeros());
    },
    quiet: () => [...connections].every((c) => c.quiet),
    close: async () => {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.destroy();
      await closed;
      if (--shared.users === 0) {
        schedule.stop();
        schedules.delete(oneWayMs);
      }
    },
  };
}
