import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";

/** One request a receiver got, and what the standardwebhooks package made of it. */
export interface ReceivedWebhook {
  path: string;
  headers: Record<string, string>;
  id: string;
  timestamp: string;
  signature: string;
  body: string;
  /** The verified, parsed payload, when the signature held. */
  payload?: { type: string; timestamp: string; data: Record<string, unknown> };
  verifyError?: string;
}

export interface ReceiverAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Wait this long before answering. */
  delayMs?: number;
}

/**
 * A shop's webhook endpoint on 127.0.0.1: verifies every request with `new Webhook(secret).verify()`
 * as a shop would, records it, and answers whatever `respond` says (default 204). stop() closes the
 * port (connections are then refused); start() listens again on the same port.
 */
export async function startWebhookReceiver(secret: string | Uint8Array, options: { format?: "raw" } = {}) {
  const verifier = new Webhook(secret, options.format ? { format: options.format } : undefined);
  const hits: ReceivedWebhook[] = [];
  const receiver = {
    hits,
    port: 0,
    respond: (_hit: ReceivedWebhook): ReceiverAnswer => ({ status: 204 }),
    url: (path = "/hooks") => `http://127.0.0.1:${receiver.port}${path}`,
    /** Hits of one webhook-id, in order. */
    hitsOf: (id: string) => hits.filter((h) => h.id === id),
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
    async start() {
      server = createServer(handle);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(receiver.port, "127.0.0.1", () => resolve());
      });
      receiver.port = (server.address() as AddressInfo).port;
    },
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : (v ?? "")]));
      const hit: ReceivedWebhook = {
        path: req.url ?? "/",
        headers,
        id: headers["webhook-id"] ?? "",
        timestamp: headers["webhook-timestamp"] ?? "",
        signature: headers["webhook-signature"] ?? "",
        body,
      };
      try {
        hit.payload = verifier.verify(body, headers) as ReceivedWebhook["payload"];
      } catch (error) {
        hit.verifyError = error instanceof Error ? error.message : String(error);
      }
      hits.push(hit);
      const answer = receiver.respond(hit);
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(answer.status, answer.headers);
        res.end(answer.body ?? "");
      };
      if (answer.delayMs) setTimeout(send, answer.delayMs);
      else send();
    });
  };

  let server!: Server;
  await receiver.start();
  return receiver;
}

export type WebhookReceiver = Awaited<ReturnType<typeof startWebhookReceiver>>;
