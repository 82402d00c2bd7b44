// GET /api/vms under polling (issue 20): one snapshot per interval whatever the number of readers, an ETag
// that a poller sends back to get 304 and no body, and never an answer older than the stored or converged
// version. The CLI's client sends the ETag back by itself.
import test from 'ava';
import { JsonSnapshot, stringifyInSlices, TickBatchedRead } from '../../src/api/json-snapshot.ts';
import { apiClient } from '../../src/cli/api-client.ts';
import { siteXml } from '../integration/fixtures.ts';
import { TOKENS, withConvergedSite } from './with-api.ts';

test('the snapshot is built once for concurrent readers, kept within its age, and rebuilt behind it after', async (t) => {
  let clock = 0;
  let builds = 0;
  let content = 'a';
  const snap = new JsonSnapshot(
    async () => {
      builds++;
      await new Promise((r) => setTimeout(r, 20));
      return { content };
    },
    1000,
    () => clock,
  );
  const first = await Promise.all(Array.from({ length: 50 }, () => snap.get('v1')));
  t.is(builds, 1, 'fifty concurrent readers, one build');
  t.true(first.every((s) => s === first[0]));
  t.is(first[0]!.body.toString(), '{"content":"a"}');
  clock = 999;
  content = 'b';
  t.is((await snap.get('v1')).body.toString(), '{"content":"a"}', 'within its age: the kept one, no build');
  t.is(builds, 1);
  clock = 1000;
  t.is((await snap.get('v1')).body.toString(), '{"content":"a"}', 'too old: still answered at once...');
  // ...and rebuilt behind it (its gzip on the thread pool, so wait for it rather than a fixed time).
  let rebuilt = await snap.get('v1');
  for (let i = 0; i < 200 && rebuilt.body.toString() !== '{"content":"b"}'; i++) {
    await new Promise((r) => setTimeout(r, 10));
    rebuilt = await snap.get('v1');
  }
  t.is(builds, 2, 'one rebuild, however many readers came while it ran');
  t.is(rebuilt.body.toString(), '{"content":"b"}');
  t.not(rebuilt.etag, first[0]!.etag);
  content = 'c';
  t.is((await snap.get('v2')).body.toString(), '{"content":"c"}', 'a new key is never answered from the old snapshot');
  t.is(builds, 3);
});

test('the list is stringified to the same bytes as JSON.stringify, letting other work run between slices', async (t) => {
  const vms = Array.from({ length: 1234 }, (_, i) => ({ name: `vm${i}`, é: 'ü', n: i, u: undefined, at: [i] }));
  const values: unknown[] = [
    { vms, unmanaged: [], skipped: undefined, f: () => 1, holes: [1, undefined, 3], s: 'x"\n' },
    { vms: [...vms, undefined, null] },
    { big: Array.from({ length: 1000 }, () => undefined) },
    {},
    { skipped: undefined },
    { d: new Date(0), nested: { a: [1, 2] } },
    [1, 2],
    'text',
    null,
  ];
  for (const v of values) t.is((await stringifyInSlices(v)).toString(), JSON.stringify(v));
  let ranBetween = false;
  setImmediate(() => (ranBetween = true));
  const out = await stringifyInSlices({ vms });
  t.true(ranBetween, 'a callback queued before it ran before it finished');
  t.deepEqual(JSON.parse(out.toString()), JSON.parse(JSON.stringify({ vms })));
});

test('equal bodies get equal ETags across rebuilds', async (t) => {
  const a = await new JsonSnapshot(async () => ({ x: 1 }), 0).get('k');
  const b = await new JsonSnapshot(async () => ({ x: 1 }), 0).get('k');
  t.is(a.etag, b.etag);
  t.regex(a.etag, /^"[A-Za-z0-9_-]{27}"$/);
});

test('GET /api/vms answers 304 without a body to a poller holding its ETag, and a new version gets a new one', async (t) => {
  const { s, api, call, hosts } = await withConvergedSite(t, [{ name: 'a', host: 'h1', mem: 256 }]);
  const get = (etag?: string) =>
    fetch(`${api.url}/api/vms`, {
      headers: { authorization: `Bearer ${TOKENS.viewer}`, ...(etag ? { 'if-none-match': etag } : {}) },
    });
  const full = await get();
  t.is(full.status, 200);
  const etag = full.headers.get('etag')!;
  t.truthy(etag);
  const body = (await full.json()) as { vms: { name: string; inSync: boolean }[] };
  t.deepEqual(
    body.vms.map((v) => [v.name, v.inSync]),
    [['a', true]],
    'converged: answered from a snapshot of the converged version',
  );
  const again = await get(etag);
  t.is(again.status, 304);
  t.is(await again.text(), '');
  t.is((await get('"something-else"')).status, 200);

  const next = await call('POST', '/api/site?base=1', 'admin', {
    xml: siteXml(hosts, [
      { name: 'a', host: 'h1', mem: 256 },
      { name: 'b', host: 'h2', mem: 256 },
    ]),
  });
  t.is(next.status, 201);
  const changed = await get(etag);
  t.is(changed.status, 200, 'a new version is never answered from the old snapshot');
  t.not(changed.headers.get('etag'), etag);
  t.deepEqual(((await changed.json()) as { vms: { name: string }[] }).vms.map((v) => v.name).sort(), ['a', 'b']);

  // The CLI's client sends the ETag back and hands the command the same body on 304. Version 2 converged
  // first: its apply finishing between the two calls would rightly change the list (a new snapshot, a 200).
  await s.waitConverged(2);
  const cli = apiClient({ XSM_API: api.url, XSM_TOKEN: TOKENS.viewer });
  const seen: (string | null)[] = [];
  const real = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const res = await real(input, init);
    seen.push(`${new Headers(init?.headers).get('if-none-match') ?? '-'} ${res.status}`);
    return res;
  };
  try {
    const one = await cli.call<{ vms: unknown[] }>('GET', '/api/vms');
    const two = await cli.call<{ vms: unknown[] }>('GET', '/api/vms');
    t.deepEqual(two, one);
  } finally {
    globalThis.fetch = real;
  }
  t.is(seen.length, 2);
  t.regex(seen[0]!, /^- 200$/);
  t.regex(seen[1]!, /^"[^"]+" 304$/);
});

test('polls of one event-loop turn share one version read, and a poll after it was sent gets a new one', async (t) => {
  let reads = 0;
  let stored = 1;
  const batched = new TickBatchedRead(async () => {
    reads++;
    return stored;
  });
  const same = await Promise.all([batched.get(), batched.get(), batched.get()]);
  t.deepEqual(same, [1, 1, 1]);
  t.is(reads, 1, 'one read for the three polls of one turn');
  stored = 2; // a version stored after that read was sent...
  t.is(await batched.get(), 2, '...is seen by the next poll: it never joins a read already sent');
  t.is(reads, 2);
});

test('a poll arriving while a version read is in flight does not join it', async (t) => {
  const answers: ((v: number) => void)[] = [];
  const batched = new TickBatchedRead(() => new Promise<number>((resolve) => answers.push(resolve)));
  const first = batched.get();
  await new Promise((r) => setImmediate(r)); // the first read is sent, not answered
  t.is(answers.length, 1);
  const second = batched.get();
  await new Promise((r) => setImmediate(r));
  t.is(answers.length, 2, 'the later poll sent a read of its own');
  answers[0]!(1);
  answers[1]!(2);
  t.deepEqual(await Promise.all([first, second]), [1, 2]);
});
