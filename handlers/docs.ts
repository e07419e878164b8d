import { Hono } from "hono";
import { html } from "hono/html";
import type { AppEnv } from "../lib/context.js";
import { page } from "./views/layout.js";

interface Operation {
  summary?: string;
  tags?: string[];
  security?: Record<string, string[]>[];
  parameters?: { name: string; in: string; required?: boolean; schema?: unknown; description?: string }[];
  requestBody?: { content?: Record<string, { schema?: unknown }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: unknown }> }>;
}
type Document = { info: { title: string; version: string; description?: string }; paths?: Record<string, Record<string, Operation>>; components?: { schemas?: Record<string, unknown> } };

/**
 * `/openapi.json` and `/docs`: the OpenAPI 3.1 document generated from the routes' zod schemas,
 * and a reference page rendered from it here — no CDN, no script, so it works in a closed cluster.
 */
export function docsRoutes(document: () => Document) {
  const app = new Hono<AppEnv>();
  app.get("/openapi.json", (c) => c.json(document()));
  app.get("/docs", (c) => {
    const doc = document();
    const operations = Object.entries(doc.paths ?? {}).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({ path, method: method.toUpperCase(), op })),
    );
    const schema = (value: unknown) => html`<pre>${JSON.stringify(value, null, 2)}</pre>`;
    return c.html(
      page(
        `${doc.info.title} — API reference`,
        html`<h1>${doc.info.title} <span class="muted">v${doc.info.version}</span></h1>
<p>${doc.info.description ?? ""}</p>
<p class="muted">Machine-readable: <a href="/openapi.json">/openapi.json</a>. Amounts are integers of minor units; errors are <code>application/problem+json</code>.</p>
<style>main{max-width:60rem} details{border-top:1px solid #e3e6ec;padding:.6rem 0} summary{cursor:pointer} code.m{display:inline-block;min-width:4rem;font-weight:700} pre{background:#f5f6f8;padding:.6rem;overflow:auto;font-size:.8rem}</style>
${operations.map(
  ({ path, method, op }) => html`<details id="${method.toLowerCase()}-${path}">
<summary><code class="m">${method}</code> <code>${path}</code> — ${op.summary ?? ""}</summary>
<p class="muted">Auth: ${op.security?.length ? op.security.map((s) => Object.keys(s).join(" + ")).join(" or ") : "none"}</p>
${op.parameters?.length ? html`<h4>Parameters</h4><ul>${op.parameters.map((p) => html`<li><code>${p.name}</code> (${p.in}${p.required ? ", required" : ""}) ${p.description ?? ""}</li>`)}</ul>` : ""}
${op.requestBody?.content ? html`<h4>Body</h4>${Object.values(op.requestBody.content).map((m) => schema(m.schema))}` : ""}
<h4>Responses</h4><ul>${Object.entries(op.responses ?? {}).map(([status, r]) => html`<li><code>${status}</code> ${r.description ?? ""}</li>`)}</ul>
</details>`,
)}
<h2>Schemas</h2>
${Object.entries(doc.components?.schemas ?? {}).map(([name, s]) => html`<details id="schema-${name}"><summary><code>${name}</code></summary>${schema(s)}</details>`)}`,
      ),
    );
  });
  return app;
}
