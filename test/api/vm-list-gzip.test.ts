// GET /api/vms gzipped for the clients that accept it (issue 20): one compression per snapshot, the same JSON
// once decompressed, an ETag per encoding so a 304 always stands for the representation the client holds,
// and plain JSON for a client that does not ask.
import test from 'ava';
import { request, type IncomingHttpHeaders } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { acceptsGzip, JsonSnapshot } from '../../src/api/json-snapshot.ts';
import { TOKENS, withConvergedSite } from './with-api.ts';

test('Accept-Encoding allows gzip when it names it or *, with a q above zero', (t) => {
  t.true(acceptsGzip('gzip, deflate, br, zstd'));
  t.true(acceptsGzip('gzip, deflate'));
  t.true(acceptsGzip('br;q=1.0, GZIP;q=0.5'));
  t.true(acceptsGzip('x-gzip'));
  t.true(acceptsGzip('*'));
  t.false(acceptsGzip(undefined), 'no header: plain');
  t.false(acceptsGzip(''));
  t.false(acceptsGzip('identity'));
  t.false(acceptsGzip('br, deflate'));
  t.false(acceptsGzip('gzip;q=0, deflate'), 'refused with q=0');
  t.false(acceptsGzip('*;q=0.5, gzip;q=0'), 'named refusal beats *');
});

test('the snapshot holds its body gzipped, with its own ETag, compressed again only when the body changes', async (t) => {
  let content = 'a';
  const snap = new JsonSnapshot(async () => ({ content, pad: 'x'.repeat(1000) }), 0);
  const one = await snap.get('v1');
  t.deepEqual(JSON.parse(gunzipSync(one.gzip.body).toString()), JSON.parse(one.body.toString()));
  t.true(one.gzip.body.length < one.body.length / 5);
  t.not(one.gzip.etag, one.etag);
  t.regex(one.gzip.etag, /^"[A-Za-z0-9_-]{27}-gzip"$/);
  const same = await snap.get('v2');
  t.is(same.gzip, one.gzip, 'an unchanged body keeps the compressed one');
  content = 'b';
  const changed = await snap.get('v3');
  t.not(changed.gzip.etag, one.gzip.etag);
  t.is(JSON.parse(gunzipSync(changed.gzip.body).toString()).content, 'b');
});

/** A GET with exactly these headers, undecoded (fetch would add Accept-Encoding and decompress). */
function rawGet(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

test('GET /api/vms: gzip to a client that accepts it, plain JSON to one that does not, 304 per encoding', async (t) => {
  const { api } = await withConvergedSite(t, [
    { name: 'a', host: 'h1', mem: 256 },
    { name: 'b', host: 'h2', mem: 256 },
  ]);
  const url = `${api.url}/api/vms`;
  const auth = { authorization: `Bearer ${TOKENS.viewer}` };

  const plain = await rawGet(url, auth);
  t.is(plain.status, 200);
  t.is(plain.headers['content-encoding'], undefined, 'no Accept-Encoding: plain JSON');
  t.regex(plain.headers['content-type'] ?? '', /^application\/json/);
  t.is(plain.headers.vary, 'Accept-Encoding');
  const listing = JSON.parse(plain.body.toString()) as { vms: { name: string }[] };
  t.deepEqual(listing.vms.map((v) => v.name).sort(), ['a', 'b']);

  const gz = await rawGet(url, { ...auth, 'accept-encoding': 'gzip, deflate, br' });
  t.is(gz.status, 200);
  t.is(gz.headers['content-encoding'], 'gzip');
  t.is(gz.headers.vary, 'Accept-Encoding');
  t.is(Number(gz.headers['content-length']), gz.body.length);
  t.deepEqual(JSON.parse(gunzipSync(gz.body).toString()), listing, 'decompresses to the same JSON');
  t.not(gz.headers.etag, plain.headers.etag, 'each encoding its own ETag');

  const gz304 = await rawGet(url, { ...auth, 'accept-encoding': 'gzip', 'if-none-match': gz.headers.etag! });
  t.is(gz304.status, 304);
  t.is(gz304.body.length, 0);
  t.is(gz304.headers.etag, gz.headers.etag);
  const plain304 = await rawGet(url, { ...auth, 'if-none-match': plain.headers.etag! });
  t.is(plain304.status, 304);
  t.is(plain304.headers.etag, plain.headers.etag);

  // A client holding one encoding's tag that asks for the other gets the other's body, never a 304.
  const cross = await rawGet(url, { ...auth, 'if-none-match': gz.headers.etag! });
  t.is(cross.status, 200);
  t.is(cross.headers['content-encoding'], undefined);
  t.deepEqual(JSON.parse(cross.body.toString()), listing);
  const refused = await rawGet(url, { ...auth, 'accept-encoding': 'gzip;q=0', 'if-none-match': gz.headers.etag! });
  t.is(refused.status, 200);
  t.is(refused.headers['content-encoding'], undefined, 'gzip refused with q=0: plain');

  // Node's fetch (the CLI's) asks for gzip by itself, decompresses, and polls with the gzip ETag.
  const f = await fetch(url, { headers: auth });
  t.deepEqual(await f.json(), listing);
  t.is(f.headers.get('etag'), gz.headers.etag ?? null);
  t.is((await fetch(url, { headers: { ...auth, 'if-none-match': f.headers.get('etag')! } })).status, 304);
});

test('GET /api/vms?limit&after pages the list in name order, and refuses a bad limit', async (t) => {
  const names = ['d', 'a', 'e', 'c', 'b'];
  const { call } = await withConvergedSite(
    t,
    names.map((n, i) => ({ name: n, host: i % 2 ? 'h1' : 'h2', mem: 256 })),
    4096,
  );
  const seen: string[] = [];
  let after: string | undefined;
  let pages = 0;
  for (;;) {
    const r = await call('GET', `/api/vms?limit=2${after ? `&after=${after}` : ''}`, 'viewer');
    t.is(r.status, 200);
    const page = r.body as { vms: { name: string }[]; unmanaged: unknown[]; next?: string };
    seen.push(...page.vms.map((v) => v.name));
    pages++;
    if (!page.next) break;
    t.is(page.next, page.vms.at(-1)!.name);
    after = page.next;
  }
  t.deepEqual(seen, ['a', 'b', 'c', 'd', 'e'], 'every VM once, in name order');
  t.is(pages, 3);
  const rest = await call('GET', '/api/vms?after=b', 'viewer');
  t.deepEqual(
    (rest.body as { vms: { name: string }[] }).vms.map((v) => v.name),
    ['c', 'd', 'e'],
  );
  t.is((rest.body as { next?: string }).next, undefined, 'the last page has no next');
  t.is((await call('GET', '/api/vms?limit=0', 'viewer')).status, 400);
  t.is((await call('GET', '/api/vms?limit=x', 'viewer')).status, 400);
  t.is((await call('GET', '/api/vms?page=2', 'viewer')).status, 400);
});
