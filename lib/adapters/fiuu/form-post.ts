/** Posts one url-encoded form (with optional extra request headers) and reads the whole answer as text. */
export type FormPost = (url: string, form: string, signal: AbortSignal, headers?: Record<string, string>) => Promise<{ status: number; body: string }>;

export const formHeaders = { "content-type": "application/x-www-form-urlencoded", accept: "application/json, text/plain;q=0.9" };

/** A FormPost over any fetch: the functions build's transport, and the tests' (a sandbox app's fetch). */
export function formPostOver(fetch: (request: Request) => Promise<Response>): FormPost {
  return async (url, form, signal, headers) => {
    const response = await fetch(new Request(url, { method: "POST", headers: headers ? { ...formHeaders, ...headers } : formHeaders, body: form, signal }));
    return { status: response.status, body: await response.text() };
  };
}
