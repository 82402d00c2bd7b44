// Reads the <Set>s of a plain site file straight from the text into VmSpecs, one VM at a time, during the
// one-pass read (xml-fast.ts): no document node and no element positions for 100,000 VMs, which were most
// of the memory and the garbage collector's time of `xsm site plan`. Each VM is checked by the same readVm
// as the document's VMs. It reads only the shapes a generated or hand-written site file has (known
// attributes, each child once, text without markup); anything else calls notPlain() and the file takes the
// full path, which reports what it would report.

import type { HostSpec, SetSpec } from './model.ts';
import type { Collector } from './parse-nodes.ts';
import { readDeclarations, readVm, startSet, type SiteReading, type VmFields } from './parse-sets.ts';
import type { PowerPolicy } from './power-policy.ts';
import { notPlain, ownString, type ElementReader, type ElementReading, type LineTracker } from './xml-fast.ts';
import type { ElementPos } from './xml-scan.ts';

const NO_CHILDREN: ElementPos[] = Object.freeze([]) as unknown as ElementPos[];

/** The leaf elements of a <VM>, in the order of VmPlaces' slots. */
const LEAVES = ['DOM0', 'VCPUS', 'HWADDR', 'IP', 'MEM'] as const;
type Leaf = (typeof LEAVES)[number];
const PLACEMENT_SLOT = LEAVES.length;
const PLACEMENT_ATTRS = new Set(['pinned', 'antiAffinity', 'affinity', 'excludeHosts', 'rebalance', 'priority']);

/** Where the children of the VM being read start: line and column per slot, 0 when absent. */
class VmPlaces {
  readonly lines = new Int32Array(LEAVES.length + 1);
  readonly cols = new Int32Array(LEAVES.length + 1);
  clear(): void {
    this.lines.fill(0);
  }
  /** These places, for a VM reported on later, after the next VM reused these. */
  copy(): (child: string) => ElementPos | undefined {
    const kept = new VmPlaces();
    kept.lines.set(this.lines);
    kept.cols.set(this.cols);
    return (child) => kept.at(child);
  }
  /** A child's place, made only when asked for (a warning or an error names it). */
  at(child: string): ElementPos | undefined {
    const slot = child === 'Placement' ? PLACEMENT_SLOT : LEAVES.indexOf(child as Leaf);
    if (slot < 0 || this.lines[slot] === 0) return undefined;
    return { name: child, line: this.lines[slot]!, col: this.cols[slot]!, children: NO_CHILDREN };
  }
}

/**
 * The reader of <XSMConfig>'s <Set>s. Before the first Set it reads the declarations (the root's children so
 * far: the one-pass read refuses another kind of child after a Set) and reports the root's unknown parts,
 * as loadSite does for a document; `reading` is then what finishSite completes.
 */
export class SetsReader implements ElementReader {
  readonly root = 'XSMConfig';
  readonly name = 'Set';
  reading: SiteReading | undefined;
  private readonly places = new VmPlaces();
  private readonly fields: VmFields = {
    name: undefined,
    config: undefined,
    dom0: undefined,
    vcpus: undefined,
    mem: undefined,
    hwaddr: undefined,
    ip: undefined,
    placement: undefined,
  };
  private readonly childAt = (child: string): ElementPos | undefined => this.places.at(child);

  constructor(
    private readonly c: Collector,
    private readonly inventory: HostSpec[] | undefined,
    private readonly policy: () => PowerPolicy | false,
  ) {}

  read(at: ElementReading): number {
    const r = (this.reading ??= this.declarations(at));
    const { text, lines } = at;
    const attrs: [string, string][] = [];
    let i = at.readAttrs(at.afterName, attrs);
    if (text.charCodeAt(i) !== 0x3e) notPlain(); // <Set/> holds nothing: the full path reads it
    const setName = onlyAttrs(attrs, 'name').name;
    lines.advance(at.lt);
    const setPos: ElementPos = { name: 'Set', line: lines.line, col: lines.col(at.lt), children: NO_CHILDREN };
    let owner: string | undefined;
    let set: SetSpec | undefined;
    for (i++; ;) {
      const lt = nextTag(text, i);
      if (text.startsWith('</Set', lt)) {
        set ??= startSet(r, setName, owner, setPos);
        return closeTag(text, lt + 5);
      }
      if (text.startsWith('<VM', lt) && isTagEnd(text.charCodeAt(lt + 3))) {
        set ??= startSet(r, setName, owner, setPos);
        i = this.readVm(r, set, at, lt);
      } else if (!set && owner === undefined && text.startsWith('<Owner>', lt)) {
        const leaf = readLeaf(text, lt + 7, 'Owner');
        owner = leaf.value;
        i = leaf.end;
      } else notPlain();
    }
  }

  private declarations(at: ElementReading): SiteReading {
    let policy: PowerPolicy | false;
    try {
      policy = this.policy();
    } catch {
      return notPlain(); // the full path throws it where it always has
    }
    const { node, pos } = at.root;
    this.c.unknown(node, pos, 'XSMConfig', ['version'], ['Hosts', 'Pools', 'Templates', 'Set']);
    return readDeclarations(this.c, node, pos, this.inventory, policy);
  }

  /** Reads the <VM> at `lt` and hands it to readVm; returns the offset after `</VM>`. */
  private readVm(r: SiteReading, set: SetSpec, at: ElementReading, lt: number): number {
    const { text, lines } = at;
    const attrs: [string, string][] = [];
    let i = at.readAttrs(lt + 3, attrs);
    if (text.charCodeAt(i) !== 0x3e) notPlain();
    const { name, config } = onlyAttrs(attrs, 'name', 'config');
    lines.advance(lt);
    const vmPos: ElementPos = { name: 'VM', line: lines.line, col: lines.col(lt), children: NO_CHILDREN };
    const f = this.fields;
    const places = this.places;
    places.clear();
    f.name = name;
    f.config = config;
    f.dom0 = f.vcpus = f.mem = f.hwaddr = f.ip = undefined;
    f.placement = undefined;
    for (i++; ;) {
      const tag = nextTag(text, i);
      if (text.startsWith('</VM', tag)) {
        i = closeTag(text, tag + 4);
        break;
      }
      const slot = leafAt(text, tag);
      if (slot >= 0) {
        if (places.lines[slot] !== 0) notPlain(); // given twice: the full path says where both are
        markPlace(places, slot, lines, tag);
        const leaf = readLeaf(text, tag + LEAVES[slot]!.length + 2, LEAVES[slot]!);
        setLeaf(f, slot, leaf.value);
        i = leaf.end;
      } else if (text.startsWith('<Placement', tag) && isTagEnd(text.charCodeAt(tag + 10))) {
        if (places.lines[PLACEMENT_SLOT] !== 0) notPlain();
        markPlace(places, PLACEMENT_SLOT, lines, tag);
        const pl: [string, string][] = [];
        const end = at.readAttrs(tag + 10, pl);
        if (!text.startsWith('/>', end)) notPlain(); // <Placement> with children: the full path warns
        f.placement = placementNode(pl);
        i = end + 2;
      } else notPlain();
    }
    // A VM with <Placement> may be reported on after the Sets (excludeHosts): it keeps its own places.
    readVm(r, set, f, vmPos, f.placement ? places.copy() : this.childAt);
    return i;
  }
}

/** The offset of the next tag from `i`, skipping white space and comments; notPlain() on any other text. */
function nextTag(text: string, i: number): number {
  for (;;) {
    const lt = text.indexOf('<', i);
    if (lt === -1) return notPlain();
    for (let k = i; k < lt; k++) if (!isSpace(text.charCodeAt(k))) notPlain();
    if (!text.startsWith('<!--', lt)) return lt;
    const end = text.indexOf('-->', lt + 4);
    if (end === -1 || text.slice(lt + 4, end).includes('--')) notPlain();
    i = end + 3;
  }
}

/** The offset after the `>` that ends a closing tag whose name ends at `i`. */
function closeTag(text: string, i: number): number {
  while (isSpace(text.charCodeAt(i))) i++;
  if (text.charCodeAt(i) !== 0x3e) notPlain();
  return i + 1;
}

/** A leaf's trimmed text from `i` (just after its `>`) and the offset after its closing tag. */
function readLeaf(text: string, i: number, name: string): { value: string; end: number } {
  const lt = text.indexOf('<', i);
  if (lt === -1 || text.charCodeAt(lt + 1) !== 0x2f || !text.startsWith(name, lt + 2)) notPlain();
  return { value: ownString(text.slice(i, lt).trim()), end: closeTag(text, lt + 2 + name.length) };
}

/** The slot of the leaf whose plain opening tag (`<DOM0>`, no attributes) is at `lt`, else -1. */
function leafAt(text: string, lt: number): number {
  for (let s = 0; s < LEAVES.length; s++) {
    const leaf = LEAVES[s]!;
    if (text.startsWith(leaf, lt + 1) && text.charCodeAt(lt + 1 + leaf.length) === 0x3e) return s;
  }
  return -1;
}

function setLeaf(f: VmFields, slot: number, value: string): void {
  if (slot === 0) f.dom0 = value;
  else if (slot === 1) f.vcpus = value;
  else if (slot === 2) f.hwaddr = value;
  else if (slot === 3)
    f.ip = value === 'DHCP' ? 'DHCP' : value; // one string for the common value
  else f.mem = value;
}

function markPlace(places: VmPlaces, slot: number, lines: LineTracker, lt: number): void {
  lines.advance(lt);
  places.lines[slot] = lines.line;
  places.cols[slot] = lines.col(lt);
}

/** <Placement>'s attributes as the parser makes them; an unknown one takes the full path (which warns). */
function placementNode(attrs: [string, string][]): Record<string, unknown> {
  const node: Record<string, unknown> = {};
  for (const [k, v] of attrs) {
    if (!PLACEMENT_ATTRS.has(k.slice(2))) notPlain();
    node[k] = v;
  }
  return node;
}

/** The values of the attributes allowed; any other attribute takes the full path (which warns). */
function onlyAttrs(attrs: [string, string][], ...allowed: string[]): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of attrs) {
    const name = k.slice(2);
    if (!allowed.includes(name)) notPlain();
    out[name] = v;
  }
  return out;
}

function isTagEnd(c: number): boolean {
  return c === 0x3e || c === 0x2f || isSpace(c);
}
function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
}
