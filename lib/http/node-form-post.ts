import http from "node:http";
import https from "node:https";
import { formHeaders, type FormPost } from "./form-post.js";

/** Longest answer read; Fiuu's are a few hundred bytes. */
const maxAnswerBytes = 1024 * 1024;
const agents = {
  "http:": new http.Agent({ keepAlive: true, maxSockets: 64 }),
  "https:": new https.Agent({ keepAlive: true, maxSockets: 64 }),
};

/**
 * The Node server's FormPost, on node:http(s) with kept-alive connections. A small form post
 * through fetch() costs several times the CPU (a Request, web streams for both bodies, abort
 * plumbing), and the IPN echo makes one for every notification Fiuu sends.
 */
export const nodeFormPost: FormPost = (url, form, signal) =>
  new Promise((resolve, reject) => {
    const target = new URL(url);
    if (target.protocol !== "http:" && target.protocol !== "https:") return reject(new TypeError(`cannot post to ${target.protocol} URLs`));
    if (signal.aborted) return reject(signal.reason);
    const client = target.protocol === "https:" ? https : http;
    const request = client.request(target, {
      method: "POST",
      agent: agents[target.protocol],
      headers: { ...formHeaders, "content-length": Buffer.byteLength(form) },
      signal,
    });
    request.on("error", reject);
    request.on("response", (response) => {
      const chunks: Buffer[] = [];
      let length = 0;
      response.on("data", (chunk: Buffer) => {
        length += chunk.length;
        if (length > maxAnswerBytes) return response.destroy(new Error(`the answer exceeds ${maxAnswerBytes} bytes`));
        chunks.push(chunk);
      });
      response.on("error", reject);
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
    });
    request.end(form);
  });
