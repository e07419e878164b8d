import type { Readable } from "node:stream";
import { Pool } from "undici";
import { formHeaders, type FormPost } from "./form-post.js";

/** Longest answer read; Fiuu's are a few hundred bytes. */
const maxAnswerBytes = 1024 * 1024;
/** Connections kept per Fiuu host (the job loop runs 16 jobs at a time). */
const connectionsPerHost = 64;

/**
 * The answer's text, refused beyond maxAnswerBytes. Read from its data events: an async iterator
 * over the body allocates about as much again as the rest of an IPN echo.
 */
function boundedText(body: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    body.on("data", (chunk: Buffer) => {
      length += chunk.length;
      if (length > maxAnswerBytes) {
        body.destroy();
        reject(new Error(`the answer exceeds ${maxAnswerBytes} bytes`));
      } else chunks.push(chunk);
    });
    body.once("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    body.once("error", reject);
  });
}

/**
 * The Node server's FormPost, on undici connection pools of its own (kept-alive connections per
 * host), closed by `close`. A small form post through fetch() costs several times the CPU (a
 * Request, web streams for both bodies, abort plumbing), and node:http's client about twice
 * undici's `request`; the IPN echo makes one for every notification Fiuu sends.
 */
export function createNodeFormPost(): FormPost & { close(): Promise<void> } {
  const pools = new Map<string, Pool>();
  const poolFor = (origin: string): Pool => {
    let pool = pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, { connections: connectionsPerHost });
      pools.set(origin, pool);
    }
    return pool;
  };
  const post = async (url: string, form: string, signal: AbortSignal, headers?: Record<string, string>) => {
    const target = new URL(url);
    if (target.protocol !== "http:" && target.protocol !== "https:") throw new TypeError(`cannot post to ${target.protocol} URLs`);
    if (signal.aborted) throw signal.reason;
    const { statusCode, body } = await poolFor(target.origin).request({
      method: "POST",
      path: `${target.pathname}${target.search}`,
      headers: headers ? { ...formHeaders, ...headers } : formHeaders,
      body: form,
      signal,
    });
    return { status: statusCode, body: await boundedText(body) };
  };
  const close = async () => {
    const closing = [...pools.values()].map((pool) => pool.close());
    pools.clear();
    await Promise.allSettled(closing);
  };
  return Object.assign(post, { close });
}
