/** What a browser does with the service's and the sandbox's HTML forms, for tests without a browser. */

function decodeHtml(text: string): string {
  return text
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}

/** The hidden fields of the first form on a page. */
export function hiddenInputs(html: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const match of html.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) fields[decodeHtml(match[1]!)] = decodeHtml(match[2]!);
  return fields;
}

/** The action of the form that holds the element with this data-testid (or the first form). */
export function formAction(html: string, testId?: string): string {
  const pattern = testId
    ? new RegExp(`<form[^>]*\\saction="([^"]*)"[^>]*>(?:(?!</form>)[\\s\\S])*data-testid="${testId}"`, "i")
    : /<form[^>]*\saction="([^"]*)"/i;
  const match = pattern.exec(html);
  if (!match) throw new Error(`no form${testId ? ` with ${testId}` : ""}`);
  return decodeHtml(match[1]!);
}

/** Submits a form's fields by POST, as the browser would. */
export function submit(fetch: (url: string, init: RequestInit) => Response | Promise<Response>, action: string, fields: Record<string, string>) {
  return fetch(action, { method: "POST", body: new URLSearchParams(fields), headers: { "content-type": "application/x-www-form-urlencoded" } });
}
