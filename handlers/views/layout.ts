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
  dl { display: grid; grid-template-columns: auto minmax(0, 1fr); gap: .4rem 1rem; }
  dt { color: #5b6478; } dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
  button, .button { background: #1f5eff; color: #fff; border: 0; border-radius: 8px; padding: .75rem 1.25rem; font-size: 1rem; cursor: pointer; text-decoration: none; display: inline-block; }
  .muted { color: #5b6478; font-size: .9rem; }
  .status { font-size: 1.6rem; font-weight: 700; }
  h2 { font-size: 1.05rem; margin: 1.25rem 0 .25rem; }
  a { color: #1a4fd6; }
  .small { font-size: .8rem; }
  .notice { display: flex; align-items: center; gap: .75rem; border-radius: 10px; padding: .75rem 1rem; margin-bottom: 1rem; border: 2px solid; }
  .notice h1 { margin: 0; }
  .notice .symbol { font-size: 1.4rem; font-weight: 700; width: 2.2rem; height: 2.2rem; border-radius: 50%; display: grid; place-items: center; flex: none; color: #fff; }
  .notice.ok { background: #e7f4ea; border-color: #137333; } .notice.ok .symbol { background: #137333; }
  .notice.bad { background: #fce8e6; border-color: #b3261e; } .notice.bad .symbol { background: #b3261e; }
  .notice.wait { background: #fef7e0; border-color: #8a5a00; } .notice.wait .symbol { background: #8a5a00; }
  .notice.info { background: #eef1f6; border-color: #5b6478; } .notice.info .symbol { background: #5b6478; }
  .links { display: flex; flex-wrap: wrap; gap: .6rem; margin: 1.25rem 0 .5rem; }
  .button.secondary, button.secondary { background: #fff; color: #1a4fd6; border: 2px solid #1a4fd6; }
  .code { font-family: ui-monospace, monospace; font-weight: 600; }
  @media (max-width: 34rem) { main { margin: 0; border-radius: 0; padding: 1.25rem; min-height: 100vh; box-sizing: border-box; } .links .button { flex: 1 1 100%; text-align: center; } }
</style>
</head>
<body><main>${body}</main></body>
</html>`;
}
