// How CLI commands talk to the API: XSM_API (default http://127.0.0.1:8080) and XSM_TOKEN. An API
// error becomes an exception carrying the API's message and hint, which the CLI prints as is.

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

export function apiClient(env: NodeJS.ProcessEnv = process.env): ApiClient {
  const base = (env.XSM_API ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
  const token = env.XSM_TOKEN;
  return {
    base,
    async call<T>(method: string, path: string, body?: { xml: string } | { json: unknown }): Promise<T> {
      const headers: Record<string, string> = { accept: 'application/json' };
      if (token) headers.authorization = `Bearer ${token}`;
      let payload: string | undefined;
      if (body && 'xml' in body) {
        headers['content-type'] = 'application/xml';
        payload = body.xml;
      } else if (body) {
        headers['content-type'] = 'application/json';
        payload = JSON.stringify(body.json);
      }
      let res: Response;
      try {
        res = await fetch(base + path, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
      } catch (e) {
        const cause = (e as { cause?: { code?: string; message?: string } }).cause;
        throw new ApiCallError(
          0,
          'unreachable',
          `cannot reach the XSM API at ${base}: ${cause?.code ?? cause?.message ?? String(e)}`,
          'start it with `tsx workers/api.ts` or set XSM_API to a host that runs it',
        );
      }
      const text = await res.text();
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
