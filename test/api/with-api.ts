// An XSM API on a simulated test site, and a `call` that speaks to it as a given role.
import type { ExecutionContext } from 'ava';
import { startTestSite, type TestSite } from '../integration/harness.ts';
import { startApi, type RunningApi } from '../../src/api/listen.ts';
import { TokenTable } from '../../src/api/auth.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { siteXml, type VmLine } from '../integration/fixtures.ts';

export const TOKENS = {
  viewer: 'viewer-token-0123456789',
  operator: 'operator-token-0123456789',
  admin: 'admin-token-0123456789',
};

export type Call = (
  method: string,
  path: string,
  role?: keyof typeof TOKENS | null,
  body?: { xml: string } | { json: unknown },
) => Promise<{ status: number; body: any }>;

export async function withApi(
  t: ExecutionContext,
  hosts: { name: string; memMiB: number; cpus?: number }[],
): Promise<{ s: TestSite; api: RunningApi; call: Call }> {
  const s = await startTestSite(hosts);
  const tokens = new TokenTable([
    { token: TOKENS.viewer, role: 'viewer', name: 'vera' },
    // The paper site's Set is owned by root@domain.com: otto is in that group, so it may change its VMs.
    { token: TOKENS.operator, role: 'operator', name: 'otto', groups: ['root@domain.com'] },
    { token: TOKENS.admin, role: 'admin', name: 'ada' },
  ]);
  const api = await startApi({ rt: s.rt, tokens, log: silentLogger, upgradeMethod: s.updater.method });
  t.teardown(async () => {
    await api.close();
    await s.close();
  });
  const call: Call = async (method, path, role = 'operator', body) => {
    const headers: Record<string, string> = {};
    if (role) headers.authorization = `Bearer ${TOKENS[role]}`;
    if (body && 'xml' in body) headers['content-type'] = 'application/xml';
    if (body && 'json' in body) headers['content-type'] = 'application/json';
    const res = await fetch(api.url + path, {
      method,
      headers,
      ...(body ? { body: 'xml' in body ? body.xml : JSON.stringify(body.json) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* html or xml */
    }
    return { status: res.status, body: parsed as any };
  };
  return { s, api, call };
}

/** The two hosts of withConvergedSite, `memMiB` each. */
function twoHosts(memMiB: number): { name: string; memMiB: number }[] {
  return [
    { name: 'h1', memMiB },
    { name: 'h2', memMiB },
  ];
}

/**
 * withApi on two hosts (h1, h2, `memMiB` each) whose version 1, placing `vms`, an admin stored through the
 * API and which converged: the start of every test that reads a site's VMs back. Throws, with the API's
 * answer, when the submit is not stored.
 */
export async function withConvergedSite(
  t: ExecutionContext,
  vms: VmLine[],
  memMiB = 1024,
): Promise<{ s: TestSite; api: RunningApi; call: Call; hosts: { name: string; memMiB: number }[] }> {
  const hosts = twoHosts(memMiB);
  const { s, api, call } = await withApi(t, hosts);
  const up = await call('POST', '/api/site?base=0', 'admin', { xml: siteXml(hosts, vms) });
  if (up.status !== 201)
    throw new Error(`POST /api/site answered ${up.status}, not 201 (stored): ${JSON.stringify(up.body)}`);
  await s.waitConverged(1);
  return { s, api, call, hosts };
}

/** Polls `fn` until it returns something truthy, or fails after `ms`. */
export async function eventually<T>(fn: () => Promise<T>, ms = 20000, what = 'the condition'): Promise<NonNullable<T>> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > until) throw new Error(`${what} did not hold within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Logs a browser in as a person would: loads the form (its CSRF cookie and field), then posts it. */
export async function browserLogin(
  url: string,
  token: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; session?: string; setCookie: string[]; body: string }> {
  const form = await fetch(`${url}/admin/login`, { headers });
  const csrfCookie = form.headers
    .getSetCookie()
    .find((c) => c.startsWith('xsm_csrf='))!
    .split(';')[0]!;
  const csrf = /name="csrf" value="([^"]+)"/.exec(await form.text())![1]!;
  const r = await fetch(`${url}/admin/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: csrfCookie, ...headers },
    body: `csrf=${csrf}&token=${encodeURIComponent(token)}`,
    redirect: 'manual',
  });
  const setCookie = r.headers.getSetCookie();
  const session = setCookie.find((c) => c.startsWith('xsm_session=') && !c.startsWith('xsm_session=;'));
  return { status: r.status, ...(session ? { session: session.split(';')[0]! } : {}), setCookie, body: await r.text() };
}
