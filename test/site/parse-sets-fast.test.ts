// Reading a plain site file's VMs in place (src/site/parse-sets-fast.ts, through loadPlainSite) is only a
// shortcut: whatever it reads must be exactly what reading the whole document gives (the site, the warnings
// and their places), and a file with errors, or in a shape it does not read, is left to the document's path.
import test from 'ava';
import fc from 'fast-check';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadPlainSite, loadSite, loadSiteDocument } from '../../src/site/parse.ts';
import { serializeSite } from '../../src/site/serialize.ts';
import { changeSite, generateSite } from '../../bench/generate.ts';

const root = new URL('../../', import.meta.url).pathname;

function xmlFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.') || name === 'dist') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) xmlFiles(p, out);
    else if (name.endsWith('.xml')) out.push(p);
  }
  return out;
}

/** As data, so a shared frozen object and a fresh one with the same fields compare equal, and key order counts. */
const data = (x: unknown) => JSON.stringify(x);

/** Holds the shortcut to the document's path on one text; returns whether the shortcut took it. */
function same(xml: string, file = 'site.xml'): boolean {
  const full = loadSiteDocument(xml, file, { power: false });
  const fast = loadPlainSite(xml, file, { power: false });
  if (!fast) return false;
  if (data(fast) !== data(full))
    throw new Error(`reads differently:\n${xml}\nfull:  ${data(full)}\nshort: ${data(fast)}`);
  return true;
}

test('reads every XSM site file in the repository exactly as the document path does', (t) => {
  const files = xmlFiles(root).filter((f) => readFileSync(f, 'utf8').includes('<XSMConfig'));
  t.true(files.length >= 10);
  let taken = 0;
  for (const f of files) if (same(readFileSync(f, 'utf8'), f)) taken++;
  t.true(taken >= files.length / 3, `${taken} of ${files.length}`);
});

test('reads generated sites and their changed copies exactly as the document path does', (t) => {
  for (const [hosts, vms] of [
    [3, 10],
    [40, 400],
  ] as const) {
    const site = generateSite(hosts, vms);
    t.true(same(serializeSite(site)));
    t.true(same(serializeSite(changeSite(site, 0.2))));
  }
});

const HOSTS = `<Hosts>
    <Host name="xen01" address="10.0.0.1" cpus="8" memory="4096" maintenance="true"/>
    <Host name="xen02" address="10.0.0.2" cpus="8" memory="4096"/>
  </Hosts>`;
const vm = (name: string, inner: string, attrs = 'config="web"') => `<VM name="${name}" ${attrs}>${inner}</VM>`;
const body = (dom0: string, mac: string, extra = '') =>
  `<DOM0>${dom0}</DOM0><VCPUS>1</VCPUS><HWADDR>${mac}</HWADDR><IP>DHCP</IP><MEM>512</MEM>${extra}`;
const site = (sets: string, before = HOSTS, after = '') =>
  `<?xml version="1.0"?>\n<XSMConfig version="1">\n  ${before}\n  ${sets}\n  ${after}</XSMConfig>\n`;

test('reads warnings, placement hints and owners in place, with the places the document path gives', (t) => {
  const taken = [
    // a VM on a host in maintenance is warned about at its DOM0; hints, comments and an Owner are read in place
    site(
      `<Set name="web">\n <Owner>ops</Owner>\n <!-- two -->\n ${vm('a', body('xen01', '00:16:3e:00:00:01'))}\n` +
        `${vm('b', `\n  ${body('10.0.0.2', '00:16:3E:00:00:02', '<Placement pinned="true" excludeHosts="xen01" priority="5"/>')}`)}</Set>`,
    ),
    // paper format: no <Hosts>, implied hosts and an xl config file, each warned about once
    site(`<Set name="p">${vm('a', body('192.168.5.101', '00:16:3e:00:00:01'), 'config="apache_svr"')}</Set>`, ''),
    // no Set at all, and an unknown root child before the Sets
    site('', `${HOSTS}<Extra/>`),
    site(`<Set name="x"></Set>`, `${HOSTS}<Extra/>`),
  ];
  for (const xml of taken) t.true(same(xml), xml);
});

test('leaves errors and shapes it does not read to the document path, which reports them', (t) => {
  const ok = body('xen02', '00:16:3e:00:00:01');
  const left = [
    // errors: a duplicate MAC, a bad MEM, an exclusion of the VM's own host, a duplicate name
    site(`<Set name="s">${vm('a', ok)}${vm('b', ok)}</Set>`),
    site(`<Set name="s">${vm('a', ok.replace('512', 'lots'))}</Set>`),
    site(`<Set name="s">${vm('a', `${ok}<Placement excludeHosts="xen02"/>`)}</Set>`),
    site(`<Set name="s">${vm('a', ok)}</Set><Set name="t">${vm('A', body('xen02', '00:16:3e:00:00:02'))}</Set>`),
    // shapes: unknown attributes and children, a child given twice, attributes on a leaf, a root child after
    // the Sets, an Owner after a VM, text in a Set, <Placement> with children
    site(`<Set name="s" colour="red">${vm('a', ok)}</Set>`),
    site(`<Set name="s">${vm('a', ok, 'config="web" size="2"')}</Set>`),
    site(`<Set name="s">${vm('a', `${ok}<Disk/>`)}</Set>`),
    site(`<Set name="s">${vm('a', `${ok}<MEM>512</MEM>`)}</Set>`),
    site(`<Set name="s">${vm('a', ok.replace('<MEM>', '<MEM unit="GiB">'))}</Set>`),
    site(`<Set name="s">${vm('a', ok)}</Set>`, HOSTS, '<Templates/>'),
    site(`<Set name="s">${vm('a', ok)}<Owner>ops</Owner></Set>`),
    site(`<Set name="s">stray ${vm('a', ok)}</Set>`),
    site(`<Set name="s">${vm('a', `${ok}<Placement><x/></Placement>`)}</Set>`),
  ];
  for (const xml of left) {
    t.is(loadPlainSite(xml, 'site.xml', { power: false }), undefined, xml);
    // and loadSite gives what the document's path gives
    t.is(data(loadSite(xml, 'site.xml', { power: false })), data(loadSiteDocument(xml, 'site.xml', { power: false })));
  }
  // the errors are located as before: the second VM's HWADDR, naming the first's
  const dup = loadSite(left[0]!, 'site.xml', { power: false });
  t.false(dup.ok);
  t.regex(dup.ok ? '' : dup.errors[0]!.message, /MAC 00:16:3e:00:00:01 is already used at site\.xml:7:\d+/);
});

test('on damaged files it reads as the document path does or leaves them to it', (t) => {
  const seed = serializeSite(generateSite(2, 4));
  const damaged = fc
    .array(
      fc.record({
        at: fc.nat(),
        len: fc.nat({ max: 12 }),
        text: fc.constantFrom('', '<', '>', '/', '"', ' ', '\n', '<VM>', '</VM>', '<!--', '-->', '<x/>', 'a', '1'),
      }),
      { minLength: 1, maxLength: 4 },
    )
    .map((edits) => {
      let s = seed;
      for (const e of edits) {
        const at = e.at % (s.length + 1);
        s = s.slice(0, at) + e.text + s.slice(at + e.len);
      }
      return s;
    });
  let taken = 0;
  fc.assert(
    fc.property(damaged, (xml) => {
      if (same(xml)) taken++;
    }),
    { numRuns: 1500, seed: 20261204 },
  );
  t.true(taken > 30, `only ${taken} damaged files were plain enough to take the shortcut`);
});
