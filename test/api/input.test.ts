// Input from anyone gets a located, clear error and nothing half-applied: wrong JSON types, unknown fields,
// numbers that are not plain decimals, malformed and oversize bodies, and site files too large or too many
// at once. Site files are parsed off the event loop, so the API keeps answering while one parses.
import test from 'ava';
import { startTestSite } from '../integration/harness.ts';
import { siteXml } from '../integration/fixtures.ts';
import { startApi } from '../../src/api/listen.ts';
import { TokenTable } from '../../src/api/auth.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { serializeSite } from '../../src/site/serialize.ts';
import type { SiteInputLimits } from '../../src/site/site-load-pool.ts';
import { generateSite } from '../../bench/generate.ts';

const HOSTS = [
  { name: 'h1', memMiB: 2048 },
  { name: 'h2', memMiB: 2048 },
];
const ADMIN = 'input-test-admin-token-000001';
const OTHER = 'input-test-other-token-000002';

async function site(t: import('ava').ExecutionContext, siteInput?: SiteInputLimits) {
  const s = await startTestSite(HOSTS);
  const api = await startApi({
    rt: s.rt,
    tokens: new TokenTable([
      { token: ADMIN, role: 'admin', name: 'ada' },
      { token: OTHER, role: 'admin', name: 'otto' },
    ]),
    log: silentLogger,
    ...(siteInput ? { siteInput } : {}),
  });
  t.teardown(async () => {
    await api.close();
    await s.close();
  });
  const send = async (method: string, path: string, body?: string, type = 'application/json', token = ADMIN) => {
    const r = await fetch(api.url + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': type } : {}) },
      ...(body !== undefined ? { body } : {}),
    });
    const text = await r.text();
    return { status: r.status, headers: r.headers, body: (text ? JSON.parse(text) : {}) as Record<string, any> };
  };
  return { s, api, send };
}

test('wrong JSON types are 400s naming the field, never a 500, and change nothing', async (t) => {
  const { s, send } = await site(t);
  const xml = siteXml(HOSTS, [{ name: 'a', host: 'h1', mem: 256 }]);
  t.is((await send('POST', '/api/site?base=0', xml, 'application/xml')).status, 201);
  await s.waitConverged(1);

  const object = await send('POST', '/api/vms/a/migrate', JSON.stringify({ to: { toString: 1 } }));
  t.is(object.status, 400);
  t.is(object.body.error.code, 'bad-parameter');
  t.deepEqual(object.body.error.details.issues, [{ in: 'body', field: 'to', expected: 'string', got: 'object' }]);
  const array = await send('POST', '/api/vms/a/migrate', JSON.stringify({ to: ['h2'] }));
  t.is(array.status, 400);
  t.deepEqual(array.body.error.details.issues, [{ in: 'body', field: 'to', expected: 'string', got: 'array' }]);
  const hex = await send('POST', '/api/vms/a/reconfigure', JSON.stringify({ memMiB: '0x200' }));
  t.is(hex.status, 400);
  t.deepEqual(hex.body.error.details.issues, [{ in: 'body', field: 'memMiB', expected: 'number', got: '"0x200"' }]);
  const fraction = await send('POST', '/api/vms/a/reconfigure', JSON.stringify({ vcpus: 1.5 }));
  t.deepEqual(fraction.body.error.details.issues, [
    { in: 'body', field: 'vcpus', expected: 'a whole number', got: 'number 1.5' },
  ]);
  const typo = await send('DELETE', '/api/vms/a', JSON.stringify({ allowDisruptions: true }));
  t.is(typo.status, 400);
  t.deepEqual(typo.body.error.details.issues, [
    { in: 'body', field: '', expected: 'no such field', unknown: ['allowDisruptions'] },
  ]);
  const nothing = await send('POST', '/api/vms/a/reconfigure', '{}');
  t.is(nothing.status, 400);
  t.regex(nothing.body.error.message, /give memMiB and\/or vcpus/);

  const malformed = await send('POST', '/api/vms/a/migrate', '{"to": "h2"');
  t.is(malformed.status, 400);
  t.is(malformed.body.error.code, 'bad-json');
  const huge = await send('POST', '/api/vms/a/migrate', JSON.stringify({ to: 'h2', reason: 'x'.repeat(2 << 20) }));
  t.is(huge.status, 413);
  t.is(huge.body.error.code, 'too-large');

  // Query and path parameters: decimal only, no repeats, no unknown names.
  const hexBase = await send('POST', '/api/site?base=0x1', xml, 'application/xml');
  t.is(hexBase.status, 400);
  t.deepEqual(hexBase.body.error.details.issues[0], {
    in: 'query',
    field: 'base',
    expected: 'text matching /^[0-9]{1,15}$/',
    got: '"0x1"',
  });
  t.is((await send('POST', '/api/site?base=1&base=2', xml, 'application/xml')).status, 400);
  t.is((await send('GET', '/api/jobs?limit=-1')).status, 400);
  t.is((await send('GET', '/api/jobs?queue=host-h1&stat=failed')).body.error.details.issues[0].unknown[0], 'stat');
  t.is((await send('GET', '/api/site/versions/1e3')).status, 400);
  t.is((await send('PUT', '/api/rebalance/schedule', JSON.stringify({ everyMinutes: '15' }))).status, 400);
  t.is((await send('POST', '/api/hosts/deploy', JSON.stringify({ macs: 'aa:bb:cc:dd:ee:ff' }))).status, 400);

  // None of it stored or moved anything.
  t.is(await s.rt.sites.currentVersion(), 1);
  t.deepEqual(await s.where(), { a: 'h1' });
});

test('a site file over the cap is 413, and each identity has a bounded number of parses at once (429)', async (t) => {
  const { s, send } = await site(t, { maxBytes: 64 * 1024, threads: 1, perToken: 1 });
  const big = serializeSite(generateSite(4, 400));
  t.true(big.length > 64 * 1024);
  const over = await send('POST', '/api/site/validate', big, 'application/xml');
  t.is(over.status, 413);
  t.is(over.body.error.code, 'too-large');
  t.is(await s.rt.sites.currentVersion(), 0);

  const { send: send2 } = await site(t, { maxBytes: 32 << 20, threads: 1, perToken: 1 });
  const file = serializeSite(generateSite(800, 8000));
  const [a, b, other] = await Promise.all([
    send2('POST', '/api/site/validate', file, 'application/xml'),
    send2('POST', '/api/site/validate', file, 'application/xml'),
    send2('POST', '/api/site/validate', file, 'application/xml', OTHER),
  ]);
  t.deepEqual([a.status, b.status].sort(), [200, 429], 'the same identity: one parses, one is told to wait');
  const refused = a.status === 429 ? a : b;
  t.is(refused.headers.get('retry-after'), '5');
  t.is(refused.body.error.code, 'too-many-parses');
  t.is(other.status, 200, 'another identity is not held up by the first');
});

test('while a large site file parses, the API keeps answering: the parse runs in a worker thread', async (t) => {
  const file = serializeSite(generateSite(2000, 20000));
  const probe = async (send: Awaited<ReturnType<typeof site>>['send']) => {
    // Warm: the first parse also starts the worker threads and compiles the parser once.
    t.is((await send('POST', '/api/site/validate', serializeSite(generateSite(2, 2)), 'application/xml')).status, 200);
    // The event loop's longest stall while the file is validated, seen from inside the process.
    let last = performance.now();
    let worst = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      worst = Math.max(worst, now - last);
      last = now;
    }, 5);
    const r = await send('POST', '/api/site/validate', file, 'application/xml');
    clearInterval(timer);
    t.is(r.status, 200);
    return worst;
  };
  // The stall seen is the parse's plus whatever else the machine did meanwhile (a loaded CI runs other test
  // files beside this one), and the machine's share only adds: the threaded figure is the least of up to three
  // tries. A parse on the loop stalls every try, so the least of them still shows it.
  const inline = await probe((await site(t, { maxBytes: 32 << 20, threads: 0, perToken: 2 })).send);
  const threadedSend = (await site(t, { maxBytes: 32 << 20, threads: 2, perToken: 2 })).send;
  let threaded = Infinity;
  for (let i = 0; i < 3 && (threaded >= 250 || inline <= 3 * threaded); i++)
    threaded = Math.min(threaded, await probe(threadedSend));
  t.log(
    `${(file.length / 1048576).toFixed(1)} MB: longest stall ${threaded.toFixed(0)} ms threaded, ${inline.toFixed(0)} ms inline`,
  );
  t.true(inline > 3 * threaded, `parsing inline stalls the loop far longer (${inline} vs ${threaded} ms)`);
  t.true(threaded < 250, `with the pool no stall reaches 250 ms (${threaded} ms)`);
});
