// One pass over a well-formed site file that yields both what fast-xml-parser would build (with parse.ts's
// options) and the element positions scanElements records. Planning 100,000 VMs spent most of its time and
// memory reading the text three times (scan, validator, parser) and building the parser's intermediate tree.
// It accepts only a plain subset of XML (elements, quoted attributes, text without references, comments, an
// XML declaration first): anything else, and anything malformed, gets `undefined`, and parse.ts takes the
// full path, so every refusal keeps its message and place.

import type { XmlNode } from './parse-nodes.ts';
import type { ElementPos, ScanResult } from './xml-scan.ts';

/** What the parser's options make of a file: the document, and where each element is. */
export interface FastParse {
  doc: XmlNode;
  scan: ScanResult;
}

interface Frame {
  name: string;
  pos: ElementPos;
  attrs: [string, string][] | undefined;
  children: XmlNode | undefined;
  text: string | undefined;
}

const RESERVED = new Set(['__proto__', 'constructor', 'prototype']);
/** Leaves share this until they get a child; never written to. */
const NO_CHILDREN: ElementPos[] = Object.freeze([]) as unknown as ElementPos[];

function isNameStart(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f;
}
function isNameChar(c: number): boolean {
  return isNameStart(c) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d;
}
function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
}

/**
 * `s` as a string of its own. V8 makes a slice of 13 or more characters a view into the text it was cut
 * from, so one kept value (a path, a MAC) would keep the whole file alive, tens of MiB for a large site.
 */
export function ownString(s: string): string {
  return s.length < 13 ? s : (' ' + s).slice(1);
}

/** Thrown inside the pass when the text leaves the subset; caught below, never escapes. */
class NotPlain extends Error {}
/** Leaves the one-pass read: the caller takes the full path. An element reader (below) may call it too. */
export const notPlain = (): never => {
  throw new NotPlain();
};

/** The line a position is on, kept while the text is read forwards (never backwards). */
export class LineTracker {
  line = 1;
  lineStart = 0;
  private nextNewline: number;
  constructor(private readonly text: string) {
    this.nextNewline = text.indexOf('\n');
  }
  /** Moves to offset `at`; `line` and `col(at)` then describe it. */
  advance(at: number): void {
    while (this.nextNewline !== -1 && this.nextNewline < at) {
      this.line++;
      this.lineStart = this.nextNewline + 1;
      this.nextNewline = this.text.indexOf('\n', this.lineStart);
    }
  }
  col(at: number): number {
    return at - this.lineStart + 1;
  }
}

/** What the pass hands an element reader: the text, where the element starts, and the pass's own helpers. */
export interface ElementReading {
  text: string;
  /** Offset of the element's `<`. */
  lt: number;
  /** Offset just after its name (where its attributes start). */
  afterName: number;
  lines: LineTracker;
  /** Reads attributes from `i` up to `>`, `/>` or `?>` into `into` (`@_name`, trimmed value); returns the end. */
  readAttrs(i: number, into: [string, string][]): number;
  /** The root element read so far (its children before this element, then its attributes) and its place. */
  root: { node: XmlNode; pos: ElementPos };
}

/**
 * Reads one kind of child of the root element in place of the pass, which then neither builds its document
 * nor records its positions (for the <Set>s of a site: 100,000 VMs need neither). Once it has read one, any
 * other child element of the root after it leaves the one-pass read, so a reader can act on the root's
 * earlier children knowing they are all there is.
 */
export interface ElementReader {
  /** The root element's name, and the child's name, it reads. */
  root: string;
  name: string;
  /** Reads the element; returns the offset just after its end. Calls notPlain() on anything it cannot read. */
  read(at: ElementReading): number;
}

/**
 * Parses `text` as parse.ts's XMLParser would (attributes as `@_name`, values trimmed strings, `#text` after
 * child elements, `repeated` names always arrays) and records positions as scanElements would; `undefined`
 * when the text is outside the plain subset or deeper than `maxDepth`.
 */
export function parsePlainXml(
  text: string,
  repeated: ReadonlySet<string>,
  maxDepth: number,
  reader?: ElementReader,
): FastParse | undefined {
  if (text.includes('&')) return undefined;
  try {
    return parse(text, repeated, maxDepth, reader);
  } catch (e) {
    if (e instanceof NotPlain) return undefined;
    throw e;
  }
}

function parse(text: string, repeated: ReadonlySet<string>, maxDepth: number, reader?: ElementReader): FastParse {
  const root: ElementPos = { name: '#document', line: 1, col: 1, children: [] };
  const doc: XmlNode = {};
  const stack: Frame[] = [];
  let depth = 0;
  let deepest = 0;
  const lines = new LineTracker(text);
  /** Whether the reader has read an element: no other child of the root may follow. */
  let readerStarted = false;
  /** Reads attributes from `i` up to `>`, `/>` or (in the declaration) `?>`; returns where they stopped. */
  const readAttrs = (i: number, into: [string, string][]): number => {
    for (;;) {
      const start = i;
      while (isSpace(text.charCodeAt(i))) i++;
      const c = text.charCodeAt(i);
      if (c === 0x3e || c === 0x2f || c === 0x3f) return i;
      if (i === start || !isNameStart(c)) notPlain();
      let j = i + 1;
      while (isNameChar(text.charCodeAt(j))) j++;
      const name = text.slice(i, j);
      if (name in Object.prototype) notPlain();
      const q = text.charCodeAt(j + 1);
      if (text.charCodeAt(j) !== 0x3d || (q !== 0x22 && q !== 0x27)) notPlain();
      const close = text.indexOf(q === 0x22 ? '"' : "'", j + 2);
      if (close === -1) notPlain();
      const value = text.slice(j + 2, close);
      if (value.includes('<')) notPlain();
      const key = `@_${name}`;
      for (const [k] of into) if (k === key) notPlain();
      into.push([key, ownString(value.trim())]);
      i = close + 1;
    }
  };
  const addText = (from: number, to: number) => {
    if (to <= from) return;
    const t = ownString(text.slice(from, to).trim());
    if (!t) return;
    const top = stack[stack.length - 1];
    if (!top) notPlain();
    else top.text = top.text === undefined ? t : top.text + t;
  };
  const close = (f: Frame) => {
    let val: unknown;
    if (f.children) {
      val = f.children;
      if (f.text !== undefined) f.children['#text'] = f.text;
    } else if (f.attrs) val = f.text !== undefined ? { '#text': f.text } : {};
    else val = f.text ?? '';
    if (f.attrs) for (const [k, v] of f.attrs) (val as XmlNode)[k] = v;
    const parent = stack[stack.length - 1];
    let into: XmlNode;
    if (parent) into = parent.children ??= {};
    else {
      if (Object.hasOwn(doc, f.name) || root.children.length > 1) notPlain();
      into = doc;
    }
    const had = Object.hasOwn(into, f.name) ? into[f.name] : undefined;
    if (had !== undefined) {
      if (Array.isArray(had)) had.push(val);
      else into[f.name] = [had, val];
    } else into[f.name] = repeated.has(f.name) ? [val] : val;
  };

  let i = 0;
  if (text.startsWith('<?xml') && isSpace(text.charCodeAt(5))) {
    const attrs: [string, string][] = [];
    i = readAttrs(5, attrs);
    if (!text.startsWith('?>', i)) notPlain();
    const decl: XmlNode = {};
    for (const [k, v] of attrs) decl[k] = v;
    doc['?xml'] = decl;
    i += 2;
  }
  let rootSeen = false;
  for (;;) {
    const lt = text.indexOf('<', i);
    addText(i, lt === -1 ? text.length : lt);
    if (lt === -1) break;
    const c = text.charCodeAt(lt + 1);
    if (c === 0x21 /* ! */) {
      if (!text.startsWith('<!--', lt)) notPlain();
      const end = text.indexOf('-->', lt + 4);
      if (end === -1 || text.slice(lt + 4, end).includes('--')) notPlain();
      i = end + 3;
      continue;
    }
    if (c === 0x2f /* / */) {
      const f = stack.pop() ?? notPlain();
      let j = lt + 2 + f.name.length;
      if (text.slice(lt + 2, j) !== f.name) notPlain();
      while (isSpace(text.charCodeAt(j))) j++;
      if (text.charCodeAt(j) !== 0x3e) notPlain();
      close(f);
      depth--;
      i = j + 1;
      continue;
    }
    if (!isNameStart(c)) notPlain();
    let j = lt + 2;
    while (isNameChar(text.charCodeAt(j))) j++;
    const name = text.slice(lt + 1, j);
    // The parser renames names that Object's own members have (`toString`): those go the full way.
    if (RESERVED.has(name) || name in Object.prototype) notPlain();
    if (stack.length === 0) {
      if (rootSeen) notPlain();
      rootSeen = true;
    }
    if (reader && stack.length === 1 && stack[0]!.name === reader.root) {
      if (name === reader.name) {
        readerStarted = true;
        i = reader.read({ text, lt, afterName: j, lines, readAttrs, root: rootSoFar(stack[0]!) });
        continue;
      }
      if (readerStarted) notPlain();
    }
    const attrs: [string, string][] = [];
    const end = readAttrs(j, attrs);
    const selfClosing = text.charCodeAt(end) === 0x2f;
    if (selfClosing ? text.charCodeAt(end + 1) !== 0x3e : text.charCodeAt(end) !== 0x3e) notPlain();
    lines.advance(lt);
    const pos: ElementPos = { name, line: lines.line, col: lines.col(lt), children: NO_CHILDREN };
    const parentPos = stack.length ? stack[stack.length - 1]!.pos : root;
    if (parentPos.children === NO_CHILDREN) parentPos.children = [];
    parentPos.children.push(pos);
    const frame: Frame = { name, pos, attrs: attrs.length ? attrs : undefined, children: undefined, text: undefined };
    if (++depth > maxDepth) notPlain();
    // Counted as scanElements counts it: an empty-element tag opens nothing.
    if (!selfClosing && depth > deepest) deepest = depth;
    stack.push(frame);
    if (selfClosing) {
      stack.pop();
      close(frame);
      depth--;
    }
    i = end + (selfClosing ? 2 : 1);
  }
  if (stack.length || !rootSeen) notPlain();
  return { doc, scan: { root, maxDepth: deepest } };
}

/** The root element as close() would make it from what is read so far: children, then attributes. */
function rootSoFar(f: Frame): { node: XmlNode; pos: ElementPos } {
  const node: XmlNode = { ...f.children };
  if (f.attrs) for (const [k, v] of f.attrs) node[k] = v;
  return { node, pos: f.pos };
}
