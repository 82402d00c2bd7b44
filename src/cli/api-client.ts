// How CLI commands talk to the API: XSM_API (default http://127.0.0.1:8080), XSM_TOKEN and XSM_API_TIMEOUT
// (seconds each call may take, default 30: a hung API must not hang a script). An API error becomes an
// exception carrying the API's message and hint, which the CLI prints as is; status 0 means no answer.

import { envWholeNumber } from '../lib/env.ts';

export class ApiCallError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint?: string,
    readonly details?: unknown,
  ) {
    super(hint ? `${message}\n  hint: ${hint}` : message);
  }
}

export interface ApiClient {
  base: string;
  call<T>(method: string, path: string, body?: { xml: string } | { json: unknown }): Promise<T>;
}

/** Seconds one API call may take: XSM_API_TIMEOUT, a decimal 1..3600, default 30. */
export function apiTimeoutSeconds(env: NodeJS.ProcessEnv = process.env): number {
  return envWholeNumber(env, 'XSM_API_TIMEOUT', 30, 1, 3600, 'whole seconds');
}

export function apiClient(env: NodeJS.ProcessEnv = process.env): ApiClient {
  const base = (env.XSM_API ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
  const token = env.XSM_TOKEN;
  const timeout = apiTimeoutSeconds(env);
  // The last answer to each GET with its ETag: a command that polls (`xsm jobs --watch`, `xsm status` in a
  // loop) sends it back in If-None-Match, and a 304 costs the API no list and the network no body.
  const validated = new Map<string, { etag: string; text: string }>();
  return {
    base,
    async call<T>(method: string, path: string, body?: { xml: string } | { json: unknown }): Promise<T> {
      const headers: Record<string, string> = { accept: 'application/json' };
      if (token) headers.authorization = `Bearer ${token}`;
      const known = method === 'GET' ? validated.get(path) : undefined;
      if (known) headers['if-none-match'] = known.etag;
      let payload: string | undefined;
      if (body && 'xml' in body) {
        headers['content-type'] = 'application/xml';
        payload = body.xml;
      } else if (body) {
        headers['content-type'] = 'application/json';
        payload = JSON.stringify(body.json);
      }
      let res: Response;
      let text: string;
      // One deadline for the answer and its body: a server that sends headers and then stalls is as hung.
      const signal = AbortSignal.timeout(timeout * 1000);
      try {
        res = await fetch(base + path, {
          method,
          headers,
          signal,
          ...(payload !== undefined ? { body: payload } : {}),
        });
        text = await res.text();
        if (known && res.status === 304) {
          text = known.text;
          res = new Response(text, { status: 200 });
        }
        const etag = res.headers.get('etag');
        if (method === 'GET' && etag && res.ok) validated.set(path, { etag, text });
      } catch (e) {
        if (signal.aborted)
          throw new ApiCallError(
            0,
            'timeout',
            `${method} ${path}: the XSM API at ${base} did not answer within ${timeout} s`,
            'check that the API and its Redis are up (xsm status), or allow longer with XSM_API_TIMEOUT=SECONDS',
          );
        const cause = (e as { cause?: { code?: string; message?: string } }).cause;
        throw new ApiCallError(
          0,
          'unreachable',
          `cannot reach the XSM API at ${base}: ${cause?.code ?? cause?.message ?? String(e)}`,
          'start it with `tsx workers/api.ts` or set XSM_API to a host that runs it',
        );
      }
      let parsed: unknown;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        parsed = text;
      }
      if (!res.ok) {
        const err = (parsed as { error?: { code?: string; message?: string; hint?: string; details?: unknown } })
          ?.error;
        throw new ApiCallError(
          res.status,
          err?.code ?? 'http',
          `${method} ${path}: ${res.status} ${err?.message ?? text.slice(0, 200)}`,
          err?.hint,
          err?.details,
        );
      }
      return parsed as T;
    },
  };
}
