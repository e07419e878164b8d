import { z } from "@hono/zod-openapi";
import { Hono } from "hono";
import { html } from "hono/html";
import type { AppEnv } from "../lib/http/context.js";
import { eventTypes, type EventType } from "../lib/domain/webhooks/events.js";
import type { createRouter } from "../lib/http/openapi.js";
import { Payment } from "./payments.js";
import { Refund } from "./refunds.js";

interface Operation {
  summary?: string;
  description?: string;
  tags?: string[];
  security?: Record<string, string[]>[];
  responses?: Record<string, { description?: string }>;
}
type Document = {
  info: { title: string; version: string; description?: string };
  tags?: { name: string; description?: string }[];
  paths?: Record<string, Record<string, Operation>>;
  webhooks?: Record<string, Record<string, Operation>>;
};

/**
 * The renderer: Redoc's standalone build (one script, no CDN, no fonts fetched). `npm run build`
 * copies it to dist/assets, so the production image carries that one file and not Redoc's
 * dependencies (Redoc is a development dependency); from the sources it is read from node_modules.
 */
const rendererModule = "redoc/bundles/redoc.standalone.js";
const builtRenderer = "../assets/redoc.standalone.js";
const redocLogo = "https://cdn.redoc.ly/redoc/logo-mini.svg";

/**
 * Redoc's script, read once from node_modules; undefined where there is no node_modules to read
 * (the Workers and Vercel bundles), which then serve the page's plain-HTML summary instead.
 */
async function readRenderer(): Promise<string | undefined> {
  try {
    const [{ createRequire }, { readFile }] = await Promise.all([import("node:module"), import("node:fs/promises")]);
    const script = await readFile(new URL(builtRenderer, import.meta.url), "utf8").catch(() =>
      readFile(createRequire(import.meta.url).resolve(rendererModule), "utf8"),
    );
    // The one thing the bundle fetches from elsewhere, its sidebar's "by Redocly" logo: kept offline.
    return script.replace(redocLogo, "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E");
  } catch {
    return undefined;
  }
}

// Redoc started from a script of ours rather than an inline one. Search is off: Redoc runs it in a
// worker built from a blob: URL, which the CSP (scripts and workers from 'self' only) refuses.
const initScript = `"use strict";
Redoc.init("/openapi.json", {
  disableSearch: true,
  expandResponses: "200,201,202",
  jsonSampleExpandLevel: 3,
  requiredPropsFirst: true,
  showWebhookVerb: true,
  hideDownloadButton: false,
  theme: { colors: { primary: { main: "#1f5eff" } }, typography: { fontFamily: "system-ui, sans-serif", headings: { fontFamily: "system-ui, sans-serif" } } }
}, document.getElementById("reference"), function () { document.body.setAttribute("data-rendered", "true"); });
`;

/**
 * `/openapi.json` and `/docs`: the OpenAPI 3.1 document generated from the routes' zod schemas
 * (webhooks included), and its reference page, rendered in the browser by Redoc served from this
 * service (`/docs/assets/…`), so it works in a closed cluster. Where Redoc cannot be read (the
 * functions bundles) the page is the plain-HTML summary of the operations, linking the document.
 */
export function docsRoutes(document: () => Document) {
  const app = new Hono<AppEnv>();
  let renderer: Promise<string | undefined> | undefined;
  const loadRenderer = () => (renderer ??= readRenderer());

  app.get("/openapi.json", (c) => c.json(document()));
  app.get("/docs/assets/redoc.standalone.js", async (c) => {
    const script = await loadRenderer();
    if (script === undefined) return c.notFound();
    c.header("cache-control", "public, max-age=86400");
    return c.body(script, 200, { "content-type": "text/javascript; charset=utf-8" });
  });
  app.get("/docs/assets/init.js", (c) => c.body(initScript, 200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-cache" }));
  app.get("/docs", async (c) => {
    const doc = document();
    const withRenderer = (await loadRenderer()) !== undefined;
    return c.html(html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${doc.info.title} — API reference</title>
<style>
  body { margin: 0; font-family: system-ui, sans-serif; color: #1d2330; }
  .summary { max-width: 60rem; margin: 2rem auto; padding: 0 1.25rem; }
  .summary h2 { border-bottom: 1px solid #e3e6ec; padding-bottom: .3rem; }
  .summary li { margin: .35rem 0; } .summary code.m { display: inline-block; min-width: 3.5rem; font-weight: 700; }
  .muted { color: #5b6478; }
</style>
</head>
<body>
<div id="reference"></div>
${
  withRenderer
    ? html`<noscript>${summary(doc)}</noscript>
<script src="/docs/assets/redoc.standalone.js"></script>
<script src="/docs/assets/init.js"></script>`
    : summary(doc)
}
</body>
</html>`);
  });
  return app;
}

/** The operations and webhooks by tag, in plain HTML: for browsers without scripts and builds without Redoc. */
function summary(doc: Document) {
  const entries = (group: Document["paths"], webhook: boolean) =>
    Object.entries(group ?? {}).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({ path, method: method.toUpperCase(), op, webhook })),
    );
  const all = [...entries(doc.paths, false), ...entries(doc.webhooks, true)];
  const tags = doc.tags?.length ? doc.tags : [...new Set(all.flatMap((e) => e.op.tags ?? []))].map((name) => ({ name, description: "" }));
  return html`<div class="summary">
<h1>${doc.info.title} <span class="muted">v${doc.info.version}</span></h1>
<p>The full reference, with every field, example and error, is the OpenAPI 3.1 document: <a href="/openapi.json">/openapi.json</a>.</p>
${tags.map(
  (tag) => html`<section id="tag-${tag.name}"><h2>${tag.name}</h2><p class="muted">${plainText(tag.description ?? "")}</p><ul>
${all
  .filter((e) => e.op.tags?.includes(tag.name))
  .map(
    (e) => html`<li><code class="m">${e.method}</code> <code>${e.webhook ? `webhook ${e.path}` : e.path}</code> — ${e.op.summary ?? ""}
<span class="muted">(answers ${Object.keys(e.op.responses ?? {}).join(", ")})</span></li>`,
  )}</ul></section>`,
)}
</div>`;
}

/** Markdown's code spans and links as their plain text, for the summary. */
const plainText = (markdown: string) => markdown.replace(/`([^`]*)`/g, "$1").replace(/\[([^\]]*)\]\([^)]*\)/g, "$1");

/** The Standard Webhooks headers of every delivery. */
const WebhookHeaders = z.object({
  "webhook-id": z.string().openapi({
    description: "The event id: the same on every retry and redelivery of this event; process each id once",
    example: "evt_01jd3x7a9b8c7d6e5f4g3h2j1k",
  }),
  "webhook-timestamp": z
    .string()
    .regex(/^[0-9]+$/)
    .openapi({ description: "When this attempt was sent, unix seconds; part of the signed content", example: "1733054400" }),
  "webhook-signature": z.string().openapi({
    description: 'Space-separated `v1,<base64>` signatures: HMAC-SHA256 with WEBHOOK_SECRET over "<webhook-id>.<webhook-timestamp>.<body>"',
    example: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
  }),
});

/** What each event means for the shop, by type. */
const eventDescriptions: Record<EventType, { summary: string; description: string }> = {
  "payment.pending": {
    summary: "A payment is waiting for the bank",
    description: "Fiuu reported the payment pending (status 22): a cash or bank-transfer channel, or a bank that confirms later. Do not ship yet.",
  },
  "payment.succeeded": {
    summary: "A payment succeeded",
    description: "Fiuu confirmed the money (status 00), with its signature checked. Fulfil the order.",
  },
  "payment.failed": {
    summary: "A payment failed",
    description: "Fiuu reported the payment declined or failed (status 11); `data.failure` says why. The order may be paid again with a new payment.",
  },
  "payment.cancelled": {
    summary: "A payment was cancelled",
    description: "The shop cancelled it (`POST /v1/payments/{id}/cancel`) before it was paid.",
  },
  "payment.expired": {
    summary: "A payment expired unpaid",
    description: "It stayed unpaid past `expires_at` (PAYMENT_TTL) and a requery of Fiuu confirmed it was not paid.",
  },
  "payment.conflicted": {
    summary: "A signed report disagrees with the payment",
    description: "Fiuu reported an amount or currency other than the payment's. Nothing is recorded as paid; look at it by hand.",
  },
  "payment.late_success": {
    summary: "Money arrived for a failed, cancelled or expired payment",
    description:
      "A verified success came after the payment had failed, been cancelled or expired: the money is recorded (the payment is now `succeeded`). Fulfil the order or refund it.",
  },
  "payment.duplicate_charge": {
    summary: "A payment was charged twice",
    description: "A second successful Fiuu transaction for a payment that already succeeded; `data.duplicate_tran_id` names it. Decide on a refund.",
  },
  "refund.pending": {
    summary: "A refund was sent to Fiuu",
    description: "The refund is created and its amount reserved; Fiuu has not settled it yet.",
  },
  "refund.succeeded": { summary: "A refund succeeded", description: "Fiuu paid the refund; the payment's `amount_refunded` includes it." },
  "refund.failed": {
    summary: "A refund failed",
    description: "Fiuu refused or failed the refund; `data.failure` says why, and its amount is refundable again.",
  },
};

const DuplicateChargePayment = Payment.extend({
  duplicate_tran_id: z.string().openapi({ description: "Fiuu's tranID of the second successful charge", example: "30811573" }),
});

/** The payload of one event type: `{ type, timestamp, data }`, data the payment (customer masked) or the refund (beneficiary masked). */
function webhookPayload(type: EventType) {
  const data = type === "payment.duplicate_charge" ? DuplicateChargePayment : type.startsWith("refund.") ? Refund : Payment;
  return z.object({
    type: z.literal(type),
    timestamp: z
      .string()
      .openapi({ format: "date-time", description: "When the event happened (the same on every retry)", example: "2026-12-01T12:00:00.000Z" }),
    data: data.openapi({
      description: type.startsWith("refund.")
        ? "The refund as GET /v1/refunds/{id} answers it, its beneficiary masked"
        : "The payment as GET /v1/payments/{id} answers it to a client secret: customer details masked",
    }),
  });
}

/** Adds one OpenAPI 3.1 `webhooks` entry per event type (lib/domain/webhooks/events.ts) to the app's document. */
export function registerWebhooks(app: ReturnType<typeof createRouter>) {
  for (const type of eventTypes) {
    app.openAPIRegistry.registerWebhook({
      method: "post",
      path: type,
      tags: ["Webhooks"],
      summary: `${type}: ${eventDescriptions[type].summary}`,
      description: eventDescriptions[type].description,
      operationId: `webhook-${type}`,
      request: { headers: WebhookHeaders, body: { required: true, content: { "application/json": { schema: webhookPayload(type) } } } },
      responses: {
        200: { description: "Any 2xx within WEBHOOK_TIMEOUT: delivered, not sent again" },
        410: { description: "Gone: this receiver is never sent this event again" },
        default: { description: "Anything else, a redirect or no answer in time: retried with growing delays, then kept for redelivery" },
      },
    });
  }
}
