// What a browser meets: security headers, a login form with CSRF protection and a limit on failed tries,
// a session cookie that is not the token (and dies with logout or with the token), readable error pages,
// and 405 for a known path asked with the wrong method.
import test from 'ava';
import { startTestSite } from '../integration/harness.ts';
import { startApi } from '../../src/api/listen.ts';
import { TokenTable } from '../../src/api/auth.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { browserLogin } from './with-api.ts';

const ADMIN = 'browser-test-admin-token-001';
const VIEWER = 'browser-test-viewer-token-02';

async function site(t: import('ava').ExecutionContext) {
  const s = await startTestSite([{ name: 'h1', memMiB: 1024 }]);
  const tokens = new TokenTable([
    { token: ADMIN, role: 'admin', name: 'ada' },
    { token: VIEWER, role: 'viewer', name: 'vera' },
  ]);
  const api = await startApi({ rt: s.rt, tokens, log: silentLogger, loginLimit: 3 });
  t.teardown(async () => {
    await api.close();
    await s.close();
  });
  return { s, api, tokens };
}

test('every answer carries CSP, frame-ancestors none, nosniff and no-referrer', async (t) => {
  const { api } = await site(t);
  for (const path of ['/admin/login', '/api/health', '/admin/site']) {
    const r = await fetch(api.url + path);
    const csp = r.headers.get('content-security-policy') ?? '';
    t.regex(csp, /default-src 'self'/, path);
    t.regex(csp, /frame-ancestors 'none'/, path);
    t.regex(csp, /script-src 'self' 'sha256-[A-Za-z0-9+/=]+'/, "the console page's one inline script, by hash");
    t.notRegex(csp, /script-src[^;]*unsafe-inline/, 'no inline script other than that one');
    t.is(r.headers.get('x-content-type-options'), 'nosniff', path);
    t.is(r.headers.get('x-frame-options'), 'DENY', path);
    t.is(r.headers.get('referrer-policy'), 'no-referrer', path);
    t.is(r.headers.get('x-powered-by'), null);
  }
});

test('login: CSRF token required, the cookie is a session id (not the token), logout and revocation end it', async (t) => {
  const { api, s, tokens } = await site(t);
  // Without the form's CSRF token the login is refused, even with a good API token.
  const forged = await fetch(`${api.url}/admin/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `token=${ADMIN}`,
    redirect: 'manual',
  });
  t.is(forged.status, 403);
  t.regex(await forged.text(), /The form expired; log in again/);

  const ok = await browserLogin(api.url, VIEWER);
  t.is(ok.status, 303);
  const cookie = ok.setCookie.find((c) => c.startsWith('xsm_session='))!;
  t.regex(cookie, /HttpOnly/);
  t.regex(cookie, /SameSite=Strict/);
  t.notRegex(cookie, /Secure/, 'plain HTTP: a Secure cookie would never come back');
  t.false(cookie.includes(VIEWER), 'the cookie does not carry the token');
  const keys = await s.rt.redis.keys(`${s.rt.config.prefix}:session:*`);
  t.is(keys.length, 1);
  t.false((await s.rt.redis.get(keys[0]!))!.includes(VIEWER), 'Redis holds no token either');

  const withSession = (path: string, method = 'GET') =>
    fetch(api.url + path, { method, headers: { cookie: ok.session!, accept: 'text/html' }, redirect: 'manual' });
  t.is((await withSession('/admin/site')).status, 200);
  t.is((await withSession('/admin/queues')).status, 403, 'a viewer session does not open the job dashboard');

  // Over TLS (here: a proxy that says so) the cookie is Secure.
  const tls = await browserLogin(api.url, ADMIN, { 'x-forwarded-proto': 'https' });
  t.regex(
    tls.setCookie.find((c) => c.startsWith('xsm_session='))!,
    /Secure/,
  );

  // Logout ends the session: the same cookie is refused, with a page a person can read.
  const out = await fetch(`${api.url}/admin/logout`, {
    method: 'POST',
    headers: { cookie: ok.session! },
    redirect: 'manual',
  });
  t.is(out.status, 303);
  t.regex(out.headers.getSetCookie()[0]!, /xsm_session=;.*Max-Age=0/);
  const after = await withSession('/admin/site');
  t.is(after.status, 401);
  t.regex(after.headers.get('content-type') ?? '', /text\/html/);
  t.regex(await after.text(), /Please log in[\s\S]*href="\/admin\/login"/);

  // Revoking the token (what SIGHUP does) ends its sessions too.
  const again = await browserLogin(api.url, ADMIN);
  const adminSession = { cookie: again.session!, accept: 'text/html' };
  t.is((await fetch(`${api.url}/admin/queues`, { headers: adminSession })).status, 200);
  tokens.replaceWith(new TokenTable([{ token: VIEWER, role: 'viewer', name: 'vera' }]));
  t.is((await fetch(`${api.url}/admin/queues`, { headers: adminSession })).status, 401);
});

test('failed logins are limited per address: the fourth within five minutes is 429 with Retry-After', async (t) => {
  const { api } = await site(t);
  for (let i = 0; i < 3; i++) {
    const r = await browserLogin(api.url, `wrong-token-number-${i}-xxxxxx`);
    t.is(r.status, 403);
    t.regex(r.body, /Unknown token/);
  }
  const blocked = await browserLogin(api.url, ADMIN);
  t.is(blocked.status, 429, 'even the right token waits: the limit is on the address');
  t.regex(blocked.body, /Too many failed logins; try again in \d+ s/);
});

test('a known path with the wrong method is 405 with Allow; scripts still get JSON errors', async (t) => {
  const { api } = await site(t);
  const r = await fetch(`${api.url}/api/site/versions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}` },
  });
  t.is(r.status, 405);
  t.is(r.headers.get('allow'), 'GET, HEAD');
  t.like(await r.json(), { error: { code: 'method-not-allowed' } });
  const del = await fetch(`${api.url}/api/hosts`, { method: 'DELETE' });
  t.is(del.status, 405);
  const unknown = await fetch(`${api.url}/api/nothing-here`, { headers: { authorization: `Bearer ${ADMIN}` } });
  t.is(unknown.status, 404);
  t.like(await unknown.json(), { error: { code: 'not-found' } });
  const noToken = await fetch(`${api.url}/api/site`);
  t.is(noToken.status, 401);
  t.regex(noToken.headers.get('content-type') ?? '', /application\/json/);
});
