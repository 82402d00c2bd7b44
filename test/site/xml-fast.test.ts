// The one-pass reader (src/site/xml-fast.ts) is only a shortcut: whatever it accepts, it must read exactly as
// the full path does (fast-xml-parser's document and scanElements' positions), and whatever the full path
// refuses, it must leave to the full path. Checked on every site file in the repository, on generated sites,
// and on damaged and random files.
import test from 'ava';
import fc from 'fast-check';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { XMLValidator } from 'fast-xml-parser';
import { MAX_DEPTH, siteXmlParser } from '../../src/site/parse.ts';
import { REPEATED } from '../../src/site/parse-nodes.ts';
import { parsePlainXml } from '../../src/site/xml-fast.ts';
import { scanElements, type ElementPos } from '../../src/site/xml-scan.ts';
import { serializeSite } from '../../src/site/serialize.ts';
import { changeSite, generateSite } from '../../bench/generate.ts';

const root = new URL('../../', import.meta.url).pathname;

function xmlFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) xmlFiles(p, out);
    else if (name.endsWith('.xml')) out.push(p);
  }
  return out;
}

/** Positions as plain data (the one-pass reader shares one empty list between leaves). */
function plainPos(p: ElementPos): unknown {
  return { name: p.name, line: p.line, col: p.col, children: p.children.map(plainPos) };
}

/** Holds the shortcut to the full path on one text; returns whether the shortcut took it. */
function same(xml: string): boolean {
  const fast = parsePlainXml(xml, REPEATED, MAX_DEPTH);
  if (!fast) return false;
  if (XMLValidator.validate(xml) !== true) throw new Error(`accepted what the validator refuses:\n${xml}`);
  const scan = scanElements(xml);
  const want = JSON.stringify([siteXmlParser.parse(xml), plainPos(scan.root), scan.maxDepth]);
  const got = JSON.stringify([fast.doc, plainPos(fast.scan.root), fast.scan.maxDepth]);
  if (got !== want) throw new Error(`reads differently:\n${xml}\nfull:  ${want}\nshort: ${got}`);
  return true;
}

test('reads every XSM site file in the repository exactly as the full path does', (t) => {
  const files = xmlFiles(root).filter((f) => readFileSync(f, 'utf8').includes('<XSMConfig'));
  t.true(files.length >= 10);
  let taken = 0;
  for (const f of files) if (same(readFileSync(f, 'utf8'))) taken++;
  // Most are plain; the ones with entities or a DOCTYPE go the full way.
  t.true(taken >= files.length / 2, `${taken} of ${files.length}`);
});

test('reads generated sites and their changed copies exactly as the full path does', (t) => {
  for (const [hosts, vms] of [
    [3, 10],
    [40, 400],
  ] as const) {
    const site = generateSite(hosts, vms);
    t.true(same(serializeSite(site)));
    t.true(same(serializeSite(changeSite(site, 0.2))));
  }
});

test('reads the shapes the parser treats specially exactly as it does', (t) => {
  const shapes = [
    '<a><b x=" 1 ">t</b><b/><c y="2"/><c>  </c><d>x<e/>y</d><f z="1">  </f><VM/><Set n="1"></Set></a>',
    '<?xml version="1.0" encoding="UTF-8"?>\n<a>  hi  <b>1</b></a>',
    '<a><!-- c --><b>1<!-- x -->2</b><c k=\'v\' j="w" /></a>\n<!-- after -->\n',
    '<a><d k="1">x<e/>y</d><d k="2"><e/></d><g k="1" j="2"/><h k="1">t</h><VM n="1">x</VM></a>',
    '<a><e/><f/><e/></a>',
    '<a\n  k="1"\n>\n\t<b\tc="2"></b   >\n</a>',
  ];
  for (const xml of shapes) t.true(same(xml), xml);
  for (const refused of [
    '<a>&amp;</a>',
    '<a><![CDATA[x]]></a>',
    '<!DOCTYPE a><a/>',
    '<a/><b/>',
    '<a b/>',
    '<a b=c/>',
    '<a b="1" b="2"/>',
    '<a><b></a>',
    '<a>',
    'x<a/>',
    '<a><__proto__/></a>',
    '<a><toString/><toString>x</toString></a>',
    '<a valueOf="1"/>',
    '<a><!-- x -- y --></a>',
    '<a b="<"/>',
    ' <?xml version="1.0"?><a/>',
  ])
    t.is(parsePlainXml(refused, REPEATED, MAX_DEPTH), undefined, refused);
  const deep = '<a>'.repeat(MAX_DEPTH + 1) + '</a>'.repeat(MAX_DEPTH + 1);
  t.is(parsePlainXml(deep, REPEATED, MAX_DEPTH), undefined);
});

test('on damaged and random files it reads as the full path does or leaves them to it', (t) => {
  const seed = serializeSite(generateSite(2, 3));
  const damaged = fc
    .array(
      fc.record({
        at: fc.nat(),
        len: fc.nat({ max: 12 }),
        text: fc.constantFrom('', '<', '>', '/', '"', "'", '=', ' ', '\n', '<VM>', '</VM>', '<!--', '-->', '<x/>', 'a'),
      }),
      { minLength: 1, maxLength: 5 },
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
    fc.property(fc.oneof(damaged, fc.string()), (xml) => {
      if (same(xml)) taken++;
    }),
    { numRuns: 3000, seed: 20261204 },
  );
  t.true(taken > 30, `only ${taken} damaged files were plain enough to take the shortcut`);
});
