// Property tests of hostile input: random and mutated site files never crash the loader or hang it, and
// random bodies, queries and path parameters sent to every mutating API route never get a 500, never hang
// past a bound, and never store anything when refused.
import test from 'ava';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { loadSite } from '../../src/site/parse.ts';
import { formatIssue } from '../../src/site/model.ts';
import { siteXml } from '../integration/fixtures.ts';
import { withApi } from './with-api.ts';

const PAPER = readFileSync(new URL('../site/fixtures/paper-site.xml', import.meta.url), 'utf8');
const HOSTS = [
  { name: 'h1', memMiB: 2048 },
  { name: 'h2', memMiB: 2048 },
];

/** A site file damaged the ways files are damaged: cut, spliced, characters changed or injected. */
const mutated = (seed: string) =>
  fc
    .array(
      fc.oneof(
        fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), len: fc.nat({ max: 40 }) }),
        fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.string({ maxLength: 30 }) }),
        fc.record({
          kind: fc.constant('token' as const),
          at: fc.nat(),
          text: fc.constantFrom(
            '<',
            '>',
            '&',
            '<!DOCTYPE x>',
            '<VM>',
            '</Set>',
            '"',
            "'",
            '\u0000',
            '<![CDATA[',
            '0x200',
            '-1',
            '1e999',
            '__proto__',
            '../..',
          ),
        }),
        fc.record({ kind: fc.constant('dup' as const), at: fc.nat(), len: fc.nat({ max: 200 }) }),
      ),
      { minLength: 1, maxLength: 6 },
    )
    .map((edits) => {
      let s = seed;
      for (const e of edits) {
        const at = e.at % (s.length + 1);
        if (e.kind === 'cut') s = s.slice(0, at) + s.slice(at + e.len);
        else if (e.kind === 'dup') s = s.slice(0, at) + s.slice(at, at + e.len) + s.slice(at);
        else s = s.slice(0, at) + e.text + s.slice(at);
      }
      return s;
    });

test('the site loader answers every damaged or random file with a verdict, located, within a bound', (t) => {
  fc.assert(
    fc.property(
      fc.oneof(mutated(PAPER), mutated(siteXml(HOSTS, [{ name: 'a', host: 'h1', mem: 256 }])), fc.string()),
      (xml) => {
        const start = performance.now();
        const r = loadSite(xml, 'fuzz.xml');
        const ms = performance.now() - start;
        if (ms > 1000) throw new Error(`took ${ms} ms`);
        if (!r.ok) {
          if (!r.errors.length) throw new Error('refused without an error');
          for (const e of r.errors)
            if (!/^fuzz\.xml:\d+:\d+: /.test(formatIssue(e))) throw new Error(`unlocated: ${formatIssue(e)}`);
        }
      },
    ),
    { numRuns: 400, seed: 20261203 },
  );
  t.pass();
});

test('random input to every mutating route: never a 500, never past a bound, nothing stored when refused', async (t) => {
  t.timeout(180_000);
  const { s, call } = await withApi(t, HOSTS);
  const good = siteXml(HOSTS, [
    { name: 'a', host: 'h1', mem: 256 },
    { name: 'b', host: 'h2', mem: 256 },
  ]);
  t.is((await call('POST', '/api/site?base=0', 'admin', { xml: good })).status, 201);
  await s.waitConverged(1);
  const routes = [
    ['POST', '/api/vms/{p}/migrate'],
    ['POST', '/api/vms/{p}/reconfigure'],
    ['DELETE', '/api/vms/{p}'],
    ['POST', '/api/site/versions/{p}/apply'],
    ['POST', '/api/jobs/{p}/{p}/retry'],
    ['POST', '/api/rebalance'],
    ['PUT', '/api/rebalance/schedule'],
    ['POST', '/api/hosts/{p}/power/confirm'],
    ['POST', '/api/hosts/deploy'],
    ['GET', '/api/jobs'],
    ['GET', '/api/site/versions'],
    ['GET', '/api/audit'],
  ] as const;
  const segment = fc.oneof(
    fc.constantFrom('a', 'b', 'h1', 'nope', '1', '0x1', '__proto__', '..', '%00', 'a%2Fb'),
    fc.string({ minLength: 1, maxLength: 12 }).map(encodeURIComponent),
  );
  const query = fc.dictionary(
    fc.constantFrom('base', 'limit', 'state', 'queue', 'reason', 'allowDisruption', 'x', 'since'),
    fc.string({ maxLength: 10 }),
    { maxKeys: 3 },
  );
  const statuses = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...routes),
      segment,
      query,
      fc.oneof(
        fc.jsonValue(),
        fc.record({ to: fc.jsonValue(), memMiB: fc.jsonValue(), vcpus: fc.jsonValue() }, { requiredKeys: [] }),
      ),
      async ([method, template], seg, q, body) => {
        const path = template.replaceAll('{p}', seg) + (Object.keys(q).length ? `?${new URLSearchParams(q)}` : '');
        const before = await s.rt.sites.currentVersion();
        const start = Date.now();
        const r = await call(method, path, 'admin', method === 'GET' ? undefined : { json: body });
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status >= 500)
          throw new Error(`${method} ${path} ${JSON.stringify(body)} -> ${r.status} ${JSON.stringify(r.body)}`);
        if (Date.now() - start > 5000) throw new Error(`${method} ${path} took ${Date.now() - start} ms`);
        if (r.status >= 400 && (await s.rt.sites.currentVersion()) !== before)
          throw new Error(`${method} ${path} was refused (${r.status}) but stored a version`);
      },
    ),
    { numRuns: 250, seed: 4711 },
  );
  t.log(`statuses: ${[...statuses].map(([k, v]) => `${k}×${v}`).join(' ')}`);
  t.true(
    [...statuses.keys()].some((s) => s >= 400 && s < 500),
    'the fuzzing reached the refusals',
  );
});

test('damaged site files sent to submit and validate: never a 500, and a refused submit stores nothing', async (t) => {
  t.timeout(180_000);
  const { s, call } = await withApi(t, HOSTS);
  const good = siteXml(HOSTS, [{ name: 'a', host: 'h1', mem: 256 }]);
  t.is((await call('POST', '/api/site?base=0', 'admin', { xml: good })).status, 201);
  await s.waitConverged(1);
  let stored = 0;
  await fc.assert(
    fc.asyncProperty(mutated(good), fc.boolean(), async (xml, validate) => {
      const before = await s.rt.sites.currentVersion();
      const r = await call('POST', validate ? '/api/site/validate' : `/api/site?base=${before}&apply=0`, 'admin', {
        xml,
      });
      if (r.status >= 500) throw new Error(`-> ${r.status} ${JSON.stringify(r.body)} for ${JSON.stringify(xml)}`);
      const after = await s.rt.sites.currentVersion();
      if (r.status >= 400 && after !== before) throw new Error(`refused (${r.status}) but stored version ${after}`);
      if (r.status === 201) stored++;
    }),
    { numRuns: 150, seed: 99 },
  );
  t.log(`${stored} damaged files were still valid sites and stored`);
});
