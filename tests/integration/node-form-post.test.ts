import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNodeFormPost } from "../../lib/adapters/fiuu/node-form-post.js";

// The Node server's transport to Fiuu, against a real HTTP server on this machine.
let server: http.Server;
let base: string;
const seen: { method?: string; type?: string; body: string; socket: number }[] = [];
const sockets = new WeakMap<object, number>();
let nextSocket = 0;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => (body += chunk));
    req.on("end", () => {
      if (!sockets.has(req.socket)) sockets.set(req.socket, ++nextSocket);
      seen.push({ method: req.method, type: req.headers["content-type"], body, socket: sockets.get(req.socket)! });
      if (req.url === "/slow") return void setTimeout(() => res.end("late"), 2_000);
      if (req.url === "/huge") return void res.end("x".repeat(2 * 1024 * 1024));
      res.writeHead(req.url === "/busy" ? 503 : 200, { "content-type": "text/plain" });
      res.end(`got ${body}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
const nodeFormPost = createNodeFormPost();
afterAll(async () => {
  await nodeFormPost.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const never = () => new AbortController().signal;

describe("createNodeFormPost", () => {
  it("posts the form url-encoded and answers the status and whole body", async () => {
    expect(await nodeFormPost(`${base}/echo`, "a=1&b=two", never())).toEqual({ status: 200, body: "got a=1&b=two" });
    expect(seen.at(-1)).toMatchObject({ method: "POST", type: "application/x-www-form-urlencoded", body: "a=1&b=two" });
    expect(await nodeFormPost(`${base}/busy`, "c=3", never())).toEqual({ status: 503, body: "got c=3" });
  });

  it("keeps connections alive between posts", async () => {
    for (let n = 1; n <= 8; n++) await nodeFormPost(`${base}/echo`, `n=${n}`, never());
    // The pool may open a second connection while the first is still being freed, not one a post.
    const sockets = new Set(seen.slice(-8).map((request) => request.socket));
    expect(sockets.size).toBeLessThanOrEqual(2);
  });

  it("shares no connection with another transport (each app's pools are its own)", async () => {
    await nodeFormPost(`${base}/echo`, "mine=1", never());
    const other = createNodeFormPost();
    try {
      await other(`${base}/echo`, "other=1", never());
      expect(seen.at(-1)!.socket).not.toBe(seen.at(-2)!.socket);
    } finally {
      await other.close();
    }
  });

  it("stops at the signal", async () => {
    const started = Date.now();
    await expect(nodeFormPost(`${base}/slow`, "x=1", AbortSignal.timeout(100))).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(1_500);
    const aborted = new AbortController();
    aborted.abort(new Error("gave up"));
    await expect(nodeFormPost(`${base}/echo`, "x=1", aborted.signal)).rejects.toThrow("gave up");
  });

  it("refuses an answer over 1 MB, an unreachable host and a non-HTTP URL", async () => {
    await expect(nodeFormPost(`${base}/huge`, "x=1", never())).rejects.toThrow(/exceeds/);
    await expect(nodeFormPost("http://127.0.0.1:1/", "x=1", never())).rejects.toThrow(/ECONNREFUSED/);
    await expect(nodeFormPost("ftp://127.0.0.1/", "x=1", never())).rejects.toThrow(/ftp/);
  });
});
