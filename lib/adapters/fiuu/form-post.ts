/**
 * How the Fiuu client reaches Fiuu: posts one url-encoded form (with optional extra request headers)
 * and reads the whole answer as text. A transport that keeps connections (the Node server's pool)
 * lets them go on `close`.
 */
export interface FormPost {
  (url: string, form: string, signal: AbortSignal, headers?: Record<string, string>): Promise<{ status: number; body: string }>;
  close?(): Promise<void>;
}

export const formHeaders = { "content-type": "application/x-www-form-urlencoded", accept: "application/json, text/plain;q=0.9" };

/** A FormPost over any fetch: the functions builds' transport (the runtime's fetch), and the local sandbox's (its app's fetch, in-process). */
export function formPostOver(fetch: (request: Request) => Promise<Response>): FormPost {
  return async (url, form, signal, headers) => {
    const response = await fetch(
      new Request(url, { method: "POST", headers: headers ? { ...formHeaders, ...headers } : formHeaders, body: form, signal }),
    );
    return { status: response.status, body: await response.text() };
  };
}

/** Fiuu over the runtime's fetch: the functions builds' transport (the Node server has its undici pool). */
export function fetchFormPost(): FormPost {
  return formPostOver((request) => globalThis.fetch(request));
}
