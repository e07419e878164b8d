import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";

type Content = HtmlEscapedString | Promise<HtmlEscapedString>;

/** The shared frame of the service's few HTML pages: no external assets, readable on a phone. */
export function page(title: string, body: Content, options: { refreshSeconds?: number } = {}) {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
${options.refreshSeconds ? html`<meta http-equiv="refresh" content="${options.refreshSeconds}">` : ""}
<title>${title}</title>
<style>
  body { font-family: system-ui, sans-serif; background: #f5f6f8; color: #1d2330; margin: 0; }
  main { max-width: 30rem; margin: 3rem auto; background: #fff; border-radius: 12px; padding: 2rem; box-shadow: 0 2px 12px #0001; }
  h1 { font-size: 1.3rem; margin-top: 0; }
  dl { display: grid; grid-template-columns: auto 1fr; gap: .4rem 1rem; }
  dt { color: #5b6478; } dd { margin: 0; font-weight: 600; }
  button, .button { background: #1f5eff; color: #fff; border: 0; border-radius: 8px; padding: .75rem 1.25rem; font-size: 1rem; cursor: pointer; text-decoration: none; display: inline-block; }
  .muted { color: #5b6478; font-size: .9rem; }
  .status { font-size: 1.6rem; font-weight: 700; }
</style>
</head>
<body><main>${body}</main></body>
</html>`;
}
