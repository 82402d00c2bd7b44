import test from 'ava';
import { readFile } from 'node:fs/promises';
import { loadSite } from '../../src/site/parse.ts';

// The README's example is what new users copy first: it must stay a valid site file.
test('the site file example in the README is valid', async (t) => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const xml = /```xml\n([\s\S]*?)```/.exec(readme)?.[1];
  t.truthy(xml, 'the README has an xml example');
  const r = loadSite(xml!, 'README.md');
  t.true(r.ok, r.ok ? '' : r.errors.map((e) => e.message).join('\n'));
  if (r.ok)
    t.deepEqual(
      r.site.vms.map((v) => [v.name, v.host, v.memMiB, v.placement.antiAffinity]),
      [['vm1', 'xen01', 512, 'web']],
    );
});
