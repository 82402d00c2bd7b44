// Loads a site file: untrusted XML in, a validated Site (or every problem, with file:line:col) out.
// The paper's <XSMConfig><Set><VM> format loads unchanged; <Hosts>, <Templates> and <Placement> extend it.

import { readFile, stat } from 'node:fs/promises';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { HostSpec, LoadResult, Site, SiteIssue } from './model.ts';
import { Collector, REPEATED, type XmlNode } from './parse-nodes.ts';
import { finishSite, readSite } from './parse-sets.ts';
import { SetsReader } from './parse-sets-fast.ts';
import { powerPolicyFromEnv, type PowerPolicy } from './power-policy.ts';
import { parsePlainXml } from './xml-fast.ts';
import { scanElements, type ElementPos, type ScanResult } from './xml-scan.ts';

export { decodeEntities } from './parse-nodes.ts';

export const MAX_SITE_BYTES = 64 * 1024 * 1024;
export const MAX_DEPTH = 16;

export interface LoadOptions {
  /** Hosts known from elsewhere (deployed hosts in Redis) for a file that declares no <Hosts>. */
  inventory?: HostSpec[];
  /**
   * Where <Power> may point (default: XSM_SECRETS_DIR, XSM_QMP_DIR, XSM_POWER_ALLOW_LOCAL). `false` for a
   * stored version, accepted when it was submitted: its power is checked again, on the real files, at use.
   */
  power?: PowerPolicy | false;
}

/** The full path's parser (exported for the test that holds xml-fast.ts to it). */
export const siteXmlParser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  // Entity processing is off: DOCTYPEs are refused before parsing, and the five XML built-ins and character
  // references are decoded by decodeEntities (parse-nodes.ts), so the parser never expands anything.
  processEntities: false,
  htmlEntities: false,
  // Callbacks get the matcher, not a rebuilt path string per element (a third of parse time otherwise).
  jPath: false,
  isArray: (name) => REPEATED.has(name),
});

/** More than this many issues is one mistake repeated (or a hostile file): the rest are summarised. */
export const MAX_ISSUES = 500;

function capped(issues: SiteIssue[], file: string): SiteIssue[] {
  if (issues.length <= MAX_ISSUES) return issues;
  const last = issues[MAX_ISSUES - 1]!;
  return [
    ...issues.slice(0, MAX_ISSUES),
    {
      file,
      line: last.line,
      col: last.col,
      element: 'XSMConfig',
      message: `${issues.length - MAX_ISSUES} more issues are not shown; fix the ones above and load again`,
    },
  ];
}

export async function loadSiteFile(path: string, options: LoadOptions = {}): Promise<LoadResult> {
  const info = await stat(path).catch((e: NodeJS.ErrnoException) => {
    throw new Error(`${path}: cannot read site file: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  });
  if (info.size > MAX_SITE_BYTES) {
    return {
      ok: false,
      warnings: [],
      errors: [
        {
          file: path,
          line: 1,
          col: 1,
          element: 'XSMConfig',
          message: `file is ${info.size} bytes; the limit is ${MAX_SITE_BYTES}`,
        },
      ],
    };
  }
  // One decode of the whole file: read with an encoding, Node decodes it chunk by chunk into a rope.
  return loadSite((await readFile(path)).toString('utf8'), path, options);
}

export function loadSite(xml: string, file: string, options: LoadOptions = {}): LoadResult {
  return (xml.length <= MAX_SITE_BYTES && loadPlainSite(xml, file, options)) || loadSiteDocument(xml, file, options);
}

/**
 * A plain site file without errors, read in one pass with its VMs read in place (parse-sets-fast.ts);
 * undefined for anything else, which loadSiteDocument reads and reports on as it always has. Exported for
 * the test that holds it to loadSiteDocument.
 */
export function loadPlainSite(xml: string, file: string, options: LoadOptions): LoadResult | undefined {
  const c = new Collector(file);
  const policy = () => options.power ?? powerPolicyFromEnv();
  const sets = new SetsReader(c, options.inventory, policy);
  const plain = parsePlainXml(xml, REPEATED, MAX_DEPTH, sets);
  if (!plain) return undefined;
  const rootPos = checkRoot(plain.scan, c);
  if (!rootPos) return undefined;
  let site: Site;
  if (sets.reading) site = finishSite(sets.reading);
  else {
    // No <Set>: the document is all there is.
    const root = (plain.doc.XSMConfig && typeof plain.doc.XSMConfig === 'object' ? plain.doc.XSMConfig : {}) as XmlNode;
    c.unknown(root, rootPos, 'XSMConfig', ['version'], ['Hosts', 'Pools', 'Templates', 'Set']);
    site = readSite(c, root, rootPos, options.inventory, policy());
  }
  // Errors are reported by the document's path, which also says where each child element is.
  if (c.errors.length) return undefined;
  return { ok: true, site, warnings: inFileOrder(c.warnings, c.file) };
}

/**
 * Reads the whole document, then the site from it: every file, every refusal. Exported for the test that
 * holds loadPlainSite to it.
 */
export function loadSiteDocument(xml: string, file: string, options: LoadOptions = {}): LoadResult {
  const c = new Collector(file);
  const read = readSiteXml(xml, c);
  if (!read) return refusal(c);
  const { doc, rootPos } = read;
  const root = (doc.XSMConfig && typeof doc.XSMConfig === 'object' ? doc.XSMConfig : {}) as XmlNode;
  c.unknown(root, rootPos, 'XSMConfig', ['version'], ['Hosts', 'Pools', 'Templates', 'Set']);

  const site = readSite(c, root, rootPos, options.inventory, options.power ?? powerPolicyFromEnv());
  if (c.errors.length) return refusal(c);
  return { ok: true, site, warnings: inFileOrder(c.warnings, c.file) };
}

/** Issues sorted in file order, so an operator can fix them top to bottom, and capped. */
function inFileOrder(issues: SiteIssue[], file: string): SiteIssue[] {
  issues.sort((a, b) => a.line - b.line || a.col - b.col);
  return capped(issues, file);
}

function refusal(c: Collector): LoadResult {
  return { ok: false, errors: inFileOrder(c.errors, c.file), warnings: inFileOrder(c.warnings, c.file) };
}

/**
 * The parsed document and its root's place, or undefined when refused. A plain well-formed file is read in
 * one pass (xml-fast.ts); anything else goes through the scan, the validator and the parser, which locate
 * and explain what is wrong.
 */
function readSiteXml(xml: string, c: Collector): { doc: XmlNode; rootPos: ElementPos } | undefined {
  if (xml.length > MAX_SITE_BYTES) {
    c.error(undefined, 'XSMConfig', `file is ${xml.length} bytes; the limit is ${MAX_SITE_BYTES}`);
    return undefined;
  }
  const plain = parsePlainXml(xml, REPEATED, MAX_DEPTH);
  if (plain) {
    const rootPos = checkRoot(plain.scan, c);
    return rootPos && { doc: plain.doc, rootPos };
  }
  const rootPos = checkSiteText(xml, c);
  if (!rootPos) return undefined;
  const doc = parseSiteXml(xml, c);
  return doc === undefined ? undefined : { doc, rootPos };
}

/** Checks the text before any XML library reads it; the root element's place, or undefined when refused. */
function checkSiteText(xml: string, c: Collector): ElementPos | undefined {
  const scan = scanElements(xml);
  if (!checkScanned(scan, c)) return undefined;
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    c.error(
      { name: '', line: valid.err.line, col: valid.err.col, children: [] },
      'XML',
      `malformed XML: ${valid.err.msg.length > 160 ? `${valid.err.msg.slice(0, 160)}...` : valid.err.msg}; fix the file at this place`,
    );
    return undefined;
  }
  if (scan.reservedName) {
    const r = scan.reservedName;
    c.error(
      { name: '', line: r.line, col: r.col, children: [] },
      `<${r.name}>`,
      `element name <${r.name}> is not allowed in a site file; remove it`,
    );
    return undefined;
  }
  return checkRoot(scan, c);
}

/** The place of the one root element when it is <XSMConfig>; undefined (refused) otherwise. */
function checkRoot(scan: ScanResult, c: Collector): ElementPos | undefined {
  const rootPos = scan.root.children[0];
  if (!rootPos || rootPos.name !== 'XSMConfig' || scan.root.children.length !== 1) {
    c.error(
      rootPos,
      rootPos?.name ?? 'XML',
      `the root element must be <XSMConfig>${rootPos ? `, not <${rootPos.name}>` : ''}`,
    );
    return undefined;
  }
  return rootPos;
}

/** Refuses what the scan found before the validator runs: declarations, deep nesting, a second root. */
function checkScanned(scan: ScanResult, c: Collector): boolean {
  if (scan.declaration) {
    c.error(
      { name: '', line: scan.declaration.line, col: scan.declaration.col, children: [] },
      `<!${scan.declaration.kind}>`,
      'DOCTYPE and ENTITY declarations are not allowed in a site file (no entity expansion, no external reads); remove it',
    );
    return false;
  }
  // Depth is checked before the validator and parser walk the text: a hostile file nests deeply on purpose.
  if (scan.maxDepth > MAX_DEPTH) {
    c.error(
      undefined,
      'XSMConfig',
      `elements are nested ${scan.maxDepth} deep; a site file needs at most ${MAX_DEPTH}: this is not a site file`,
    );
    return false;
  }
  // Reported before the validator, whose "Multiple possible root nodes" would not say which two they are.
  if (scan.root.children.length > 1) {
    const [first, second] = scan.root.children;
    c.error(
      second,
      `<${second!.name}>`,
      `the file has ${scan.root.children.length} root elements (<${first!.name}> at ${c.file}:${first!.line}:${first!.col} and <${second!.name}> here); a site file has exactly one <XSMConfig>: merge them or remove one`,
    );
    return false;
  }
  return true;
}

/** The parsed document, or undefined when the parser refuses text the validator let through. */
function parseSiteXml(xml: string, c: Collector): XmlNode | undefined {
  try {
    return siteXmlParser.parse(xml) as XmlNode;
  } catch (e) {
    // The validator and the parser disagree on a few malformed inputs (found by fuzzing: `<?"xml ...?>`
    // passes the validator and stops the parser). Such a file is refused like any malformed one, never
    // with an exception the caller would turn into a 500. The parser does not say where; the declaration
    // or the first element is the place to look.
    const message = e instanceof Error ? e.message : String(e);
    c.error(
      { name: '', line: 1, col: 1, children: [] },
      'XML',
      `malformed XML: ${message.slice(0, 160)}; check the XML declaration and the markup before <XSMConfig>`,
    );
    return undefined;
  }
}
