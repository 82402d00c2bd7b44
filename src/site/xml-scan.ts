// A light scan of the XML text that records where every element starts (line:col), as a tree that
// mirrors the document. fast-xml-parser gives the values but no positions; walking this tree beside the
// parsed object lets every error name `file:line:col`. It also finds DOCTYPE/ENTITY declarations (which
// XSM refuses before parsing) and measures nesting depth.

export interface ElementPos {
  name: string;
  line: number;
  col: number;
  children: ElementPos[];
  /** Children grouped by name, built on first lookup (keeps lookups O(1) for sets of thousands of VMs). */
  byName?: Map<string, ElementPos[]>;
}

export interface ScanResult {
  /** Synthetic document node; its children are the top-level elements. */
  root: ElementPos;
  maxDepth: number;
  /** First `<!DOCTYPE` or `<!ENTITY`, if any. */
  declaration?: { kind: string; line: number; col: number };
  /** First element whose name would collide with JavaScript object internals (`__proto__`, `constructor`). */
  reservedName?: { name: string; line: number; col: number };
}

const RESERVED_ELEMENTS = new Set(['__proto__', 'constructor', 'prototype']);

/** Maps an offset to line/col (1-based) by binary search over line starts. */
export class LineIndex {
  private readonly starts: number[] = [0];
  constructor(text: string) {
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) this.starts.push(i + 1);
  }
  at(offset: number): { line: number; col: number } {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - this.starts[lo]! + 1 };
  }
}

const NAME_START = /[A-Za-z_]/;

function isNameChar(c: number): boolean {
  // [A-Za-z0-9_.:-]: what XSM's element names use; anything else ends the name.
  return (
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x5f ||
    c === 0x2e ||
    c === 0x3a ||
    c === 0x2d
  );
}

/**
 * Where a start tag whose name ends at `from` ends: the offset of its `>`, or of a `<` or the text's end when it
 * is malformed. Quoted attribute values are skipped (they may contain '>' or '/').
 */
function tagEnd(text: string, from: number): number {
  let end = from;
  let quote = 0;
  for (; end < text.length; end++) {
    const c = text.charCodeAt(end);
    if (quote) {
      if (c === quote) quote = 0;
    } else if (c === 0x22 || c === 0x27) quote = c;
    else if (c === 0x3e /* > */ || c === 0x3c /* < */) break;
  }
  return end;
}

/**
 * One pass over the text, allocating only what it records (line/col are counted as it goes, not looked up).
 * Meant to run before the validator: on malformed input it records nonsense but stays linear and never throws.
 */
export function scanElements(text: string): ScanResult {
  const root: ElementPos = { name: '#document', line: 1, col: 1, children: [] };
  const stack: ElementPos[] = [root];
  let maxDepth = 0;
  let declaration: ScanResult['declaration'];
  let reservedName: ScanResult['reservedName'];
  let line = 1;
  let lineStart = 0;
  let nextNewline = text.indexOf('\n');
  /** Moves the line count up to offset `at` (offsets only grow); each newline is looked at once. */
  const advance = (at: number) => {
    while (nextNewline !== -1 && nextNewline < at) {
      line++;
      lineStart = nextNewline + 1;
      nextNewline = text.indexOf('\n', lineStart);
    }
  };
  let i = text.indexOf('<');
  while (i !== -1 && i < text.length) {
    const next = text.charCodeAt(i + 1);
    if (next === 0x21 /* ! */) {
      if (text.startsWith('<!--', i)) {
        const end = text.indexOf('-->', i + 4);
        i = end === -1 ? -1 : text.indexOf('<', end + 3);
        continue;
      }
      if (text.startsWith('<![CDATA[', i)) {
        const end = text.indexOf(']]>', i + 9);
        i = end === -1 ? -1 : text.indexOf('<', end + 3);
        continue;
      }
      const word = /^<!([A-Za-z]+)/.exec(text.slice(i, i + 12));
      if (word && !declaration) {
        advance(i);
        declaration = { kind: word[1]!.toUpperCase(), line, col: i - lineStart + 1 };
      }
      i = text.indexOf('<', i + 2);
      continue;
    }
    if (next === 0x3f /* ? */) {
      const end = text.indexOf('?>', i + 2);
      i = end === -1 ? -1 : text.indexOf('<', end + 2);
      continue;
    }
    if (next === 0x2f /* / */) {
      if (stack.length > 1) stack.pop();
      i = text.indexOf('<', i + 2);
      continue;
    }
    if (!NAME_START.test(text[i + 1] ?? '')) {
      i = text.indexOf('<', i + 1);
      continue;
    }
    let j = i + 2;
    while (j < text.length && isNameChar(text.charCodeAt(j))) j++;
    const name = text.slice(i + 1, j);
    const end = tagEnd(text, j);
    if (end >= text.length || text.charCodeAt(end) !== 0x3e) {
      i = text.indexOf('<', i + 1);
      continue;
    }
    advance(i);
    const pos: ElementPos = { name, line, col: i - lineStart + 1, children: [] };
    if (!reservedName && RESERVED_ELEMENTS.has(name)) reservedName = { name, line: pos.line, col: pos.col };
    stack[stack.length - 1]!.children.push(pos);
    if (text.charCodeAt(end - 1) !== 0x2f /* / */) {
      stack.push(pos);
      if (stack.length - 1 > maxDepth) maxDepth = stack.length - 1;
    }
    i = text.indexOf('<', end + 1);
  }
  return { root, maxDepth, declaration, reservedName };
}

/** The k-th child element named `name` (document order), or undefined. */
export function childPos(parent: ElementPos | undefined, name: string, k = 0): ElementPos | undefined {
  if (!parent) return undefined;
  if (parent.children.length <= 16) {
    // Most parents (a VM, a Host) have a handful of children: a scan beats building an index.
    let seen = 0;
    for (const c of parent.children) if (c.name === name && seen++ === k) return c;
    return undefined;
  }
  if (!parent.byName) {
    parent.byName = new Map();
    for (const c of parent.children) {
      const list = parent.byName.get(c.name);
      if (list) list.push(c);
      else parent.byName.set(c.name, [c]);
    }
  }
  return parent.byName.get(name)?.[k];
}
