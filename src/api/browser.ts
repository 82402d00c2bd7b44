// What a browser gets that a script does not need: security headers (helmet: CSP, frame-ancestors, nosniff,
// referrer policy), a login form with a CSRF token and a limit on failed attempts, server-side sessions
// (the cookie holds a random id, never the token; Secure over TLS), logout, readable error pages instead
// of JSON, and 405 with Allow for a known path asked with the wrong method.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import express, { type Request, type Response } from 'express';
import helmet from 'helmet';
import type { XsmRuntime } from '../runtime/runtime.ts';
import { digest, roleAllows, type Principal, type TokenTable } from './auth.ts';
import { dashboardHtml } from './dashboard-page.ts';

export const SESSION_COOKIE = 'xsm_session';
const CSRF_COOKIE = 'xsm_csrf';

export function cookie(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

/** Secure cookies when the browser reached us over TLS (directly, or through a proxy that says so). */
function secure(req: Request): string {
  return req.secure || req.headers['x-forwarded-proto'] === 'https' ? '; Secure' : '';
}

/** The hash of the console page's one inline script: the CSP allows exactly it, no other inline script. */
function inlineScriptHashes(html: string): string[] {
  return [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map(
    (m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`,
  );
}

export function securityHeaders(): express.RequestHandler {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'", ...inlineScriptHashes(dashboardHtml)],
        // bull-board and the console set inline style attributes.
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
      },
    },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    // The API may be served over plain HTTP on a management network; HSTS belongs to the TLS proxy.
    strictTransportSecurity: false,
  });
}

/** Text for HTML: the five characters that could open markup or end an attribute, as entities. */
export const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const STYLE = `body{font:15px system-ui,sans-serif;background:#151a21;color:#d7dde5;display:flex;min-height:100vh;margin:0;align-items:center;justify-content:center}
main{background:#1f2630;padding:2rem 2.5rem;border-radius:10px;max-width:26rem;width:calc(100% - 3rem)}
h1{font-size:1.2rem;margin:0 0 1rem}label{display:block;margin-bottom:.4rem}
input{width:100%;box-sizing:border-box;padding:.55rem;border-radius:6px;border:1px solid #3a4556;background:#151a21;color:inherit}
button{margin-top:1rem;padding:.55rem 1.2rem;border:0;border-radius:6px;background:#3d7be0;color:#fff;font-weight:600;cursor:pointer}
p.err{color:#ff8a80}a{color:#8ab4ff}`;

/** A small page in the console's look: login form, or an error a person can read. */
export function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${escapeHtml(title)} — XSM</title><style>${STYLE}</style></head><body><main>${body}</main></body></html>`;
}

/** True when a browser asked (it prefers HTML); scripts get JSON. */
export function wantsHtml(req: Request): boolean {
  return req.accepts(['application/json', 'text/html']) === 'text/html';
}

export interface BrowserAuth {
  /** The principal of the request's session cookie, if it has a live one. */
  sessionPrincipal(req: Request): Promise<Principal | undefined>;
}

/** Failed logins per client address within a window; beyond the limit, 429 until the window passes. */
class LoginLimiter {
  private readonly failures = new Map<string, number[]>();
  constructor(
    private readonly limit = 5,
    private readonly windowMs = 5 * 60_000,
  ) {}
  private recent(ip: string): number[] {
    const now = Date.now();
    const list = (this.failures.get(ip) ?? []).filter((t) => now - t < this.windowMs);
    if (list.length) this.failures.set(ip, list);
    else this.failures.delete(ip);
    return list;
  }
  blockedFor(ip: string): number {
    const list = this.recent(ip);
    return list.length >= this.limit ? Math.ceil((list[0]! + this.windowMs - Date.now()) / 1000) : 0;
  }
  fail(ip: string): void {
    this.failures.set(ip, [...this.recent(ip), Date.now()]);
  }
}

export function mountBrowserAuth(
  app: express.Express,
  opts: { rt: XsmRuntime; tokens: TokenTable; loginLimit?: number },
): BrowserAuth {
  const sessions = opts.rt.sessions;
  const limiter = new LoginLimiter(opts.loginLimit ?? 5);
  const form = (csrf: string, error?: string) =>
    page(
      'Log in',
      `<h1>XSM — Xen Site Manager</h1>${error ? `<p class="err">${escapeHtml(error)}</p>` : ''}<form method="post" action="/admin/login"><input type="hidden" name="csrf" value="${csrf}"><label for="token">API token</label><input id="token" name="token" type="password" autocomplete="current-password" autofocus required><button>Log in</button></form>`,
    );
  const newCsrf = (req: Request, res: Response) => {
    const csrf = randomBytes(24).toString('base64url');
    res.setHeader(
      'Set-Cookie',
      `${CSRF_COOKIE}=${csrf}; HttpOnly; SameSite=Strict; Path=/admin/login; Max-Age=3600${secure(req)}`,
    );
    return csrf;
  };

  app.get('/admin/login', (req, res) => {
    res.type('html').send(form(newCsrf(req, res)));
  });
  app.post('/admin/login', express.urlencoded({ extended: false, limit: '4kb' }), async (req, res) => {
    const ip = req.ip ?? req.socket.remoteAddress ?? 'unknown';
    const wait = limiter.blockedFor(ip);
    if (wait) {
      res.setHeader('Retry-After', String(wait));
      res
        .status(429)
        .type('html')
        .send(form(newCsrf(req, res), `Too many failed logins; try again in ${wait} s.`));
      return;
    }
    const sent = String(req.body?.csrf ?? '');
    const expected = cookie(req, CSRF_COOKIE) ?? '';
    const csrfOk =
      sent.length > 0 && sent.length === expected.length && timingSafeEqual(Buffer.from(sent), Buffer.from(expected));
    if (!csrfOk) {
      res
        .status(403)
        .type('html')
        .send(form(newCsrf(req, res), 'The form expired; log in again.'));
      return;
    }
    const token = String(req.body?.token ?? '');
    const p = opts.tokens.lookup(token);
    if (!p) {
      limiter.fail(ip);
      res
        .status(403)
        .type('html')
        .send(form(newCsrf(req, res), 'Unknown token.'));
      return;
    }
    req.principal = p; // for the audit entry of this login
    const id = await sessions.create(digest(token));
    res.setHeader('Set-Cookie', [
      `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/${secure(req)}`,
      `${CSRF_COOKIE}=; HttpOnly; SameSite=Strict; Path=/admin/login; Max-Age=0`,
    ]);
    // Any role may watch the site; the job dashboard (which can retry and delete jobs) needs admin.
    res.redirect(303, roleAllows(p.role, 'admin') ? '/admin/queues' : '/admin/site');
  });
  app.post('/admin/logout', async (req, res) => {
    const id = cookie(req, SESSION_COOKIE);
    if (id) await sessions.end(id);
    res.setHeader('Set-Cookie', `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0${secure(req)}`);
    res.redirect(303, '/admin/login');
  });

  return {
    async sessionPrincipal(req) {
      const id = cookie(req, SESSION_COOKIE);
      if (!id) return undefined;
      const d = await sessions.tokenDigest(id);
      // The token must still be in the table: revoking it (SIGHUP) ends its sessions.
      return d ? opts.tokens.lookupDigest(d) : undefined;
    },
  };
}

/** For a path the app serves with other methods: 405 and the methods it takes. */
export function methodNotAllowed(app: express.Express): express.RequestHandler {
  return (req, res, next) => {
    const stack = (
      app as unknown as { router: { stack: { route?: { methods: object }; match(p: string): boolean }[] } }
    ).router.stack;
    const allowed = new Set<string>();
    for (const layer of stack)
      if (layer.route && layer.match(req.path))
        for (const m of Object.keys(layer.route.methods)) if (m !== '_all') allowed.add(m.toUpperCase());
    if (!allowed.size) return next();
    if (allowed.has('GET')) allowed.add('HEAD');
    res.setHeader('Allow', [...allowed].sort().join(', '));
    res.status(405).json({
      error: {
        code: 'method-not-allowed',
        message: `${req.method} is not allowed on ${req.path}; it takes ${[...allowed].sort().join(', ')}`,
      },
    });
  };
}
