// What the site file's readers (parse.ts and the parse-*.ts beside it) share: typed reads of the nodes
// fast-xml-parser builds, entity decoding, the bounds on sizes, and the collector of issues with their places.

import type { SiteIssue, SourcePos } from './model.ts';
import { childPos, type ElementPos } from './xml-scan.ts';

export const MAX_MEM_MIB = 16 * 1024 * 1024; // 16 TiB
export const MAX_VCPUS = 512;

export type XmlNode = Record<string, unknown>;
export const REPEATED = new Set(['Set', 'VM', 'Host', 'Template', 'Disk', 'Pool', 'Layout']);
/** Elements that hold only text: attributes on them are ignored (and warned about). */
const LEAVES = new Set([
  'Owner',
  'DOM0',
  'VCPUS',
  'HWADDR',
  'IP',
  'MEM',
  'Kernel',
  'Ramdisk',
  'Bootloader',
  'Extra',
  'Bridge',
]);

const BUILTIN_ENTITIES = new Map([
  ['lt', '<'],
  ['gt', '>'],
  ['amp', '&'],
  ['quot', '"'],
  ['apos', "'"],
]);
const ENTITY_REF = /&(?:#(\d{1,7})|#x([0-9a-fA-F]{1,6})|([A-Za-z]+));/g;

/** Decodes the five XML built-in entities and character references; anything else is left as written. */
export function decodeEntities(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(ENTITY_REF, (whole, dec: string | undefined, hex: string | undefined, named: string | undefined) => {
    if (named !== undefined) return BUILTIN_ENTITIES.get(named) ?? whole;
    const cp = dec !== undefined ? Number(dec) : parseInt(hex!, 16);
    const ok =
      (cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0x10ffff)) &&
      cp !== 0xfffe &&
      cp !== 0xffff;
    return ok ? String.fromCodePoint(cp) : whole;
  });
}

export function text(node: unknown): string | undefined {
  if (node === undefined || node === null) return undefined;
  if (typeof node === 'string') return decodeEntities(node);
  if (typeof node === 'number' || typeof node === 'boolean') return String(node);
  // A repeated element: the first counts, and Collector.unknown refuses the rest.
  if (Array.isArray(node)) return text(node[0]);
  if (typeof node === 'object' && '#text' in (node as XmlNode))
    return decodeEntities(String((node as XmlNode)['#text']));
  if (typeof node === 'object') return '';
  return undefined;
}

export function attr(node: unknown, name: string): string | undefined {
  if (!node || typeof node !== 'object') return undefined;
  const v = (node as XmlNode)[`@_${name}`];
  return v === undefined ? undefined : decodeEntities(String(v));
}

export function asArray(v: unknown): XmlNode[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((x) => (x && typeof x === 'object' ? (x as XmlNode) : ({ '#text': x } as XmlNode)));
}

/** Every error and warning of one load, each at its place in the file. */
export class Collector {
  readonly errors: SiteIssue[] = [];
  readonly warnings: SiteIssue[] = [];
  constructor(readonly file: string) {}
  pos(p: ElementPos | undefined): SourcePos {
    return { file: this.file, line: p?.line ?? 1, col: p?.col ?? 1 };
  }
  error(p: ElementPos | undefined, element: string, message: string): void {
    this.errors.push({ file: this.file, line: p?.line ?? 1, col: p?.col ?? 1, element, message });
  }
  warn(p: ElementPos | undefined, element: string, message: string): void {
    this.warnings.push({ file: this.file, line: p?.line ?? 1, col: p?.col ?? 1, element, message });
  }
  /** Warn about attributes and child elements XSM does not know (a typo would otherwise be silently ignored). */
  unknown(
    node: XmlNode,
    p: ElementPos | undefined,
    element: string,
    attrs: readonly string[],
    children: readonly string[],
  ): void {
    for (const key of Object.keys(node)) {
      if (key === '#text') continue;
      if (key.startsWith('@_')) {
        if (!attrs.includes(key.slice(2))) this.warn(p, element, `unknown attribute ${key.slice(2)} is ignored`);
      } else if (!children.includes(key)) {
        this.warn(childPos(p, key) ?? p, `${element}/${key}`, `unknown element <${key}> is ignored`);
      } else if (LEAVES.has(key) && node[key] && typeof node[key] === 'object' && !Array.isArray(node[key])) {
        // e.g. <MEM unit="GiB">: the value is read as MiB all the same, so say that the attribute does nothing.
        for (const a of Object.keys(node[key] as XmlNode)) {
          if (a.startsWith('@_'))
            this.warn(
              childPos(p, key) ?? p,
              `${element}/${key}`,
              `attribute ${a.slice(2)} on <${key}> is ignored${key === 'MEM' ? ' (MEM is always MiB)' : ''}`,
            );
        }
      } else if (!REPEATED.has(key) && Array.isArray(node[key])) {
        const second = childPos(p, key, 1);
        const first = childPos(p, key, 0);
        this.error(
          second ?? p,
          `${element}/${key}`,
          `<${key}> is given more than once (first at ${this.file}:${first?.line ?? '?'}:${first?.col ?? '?'}); keep exactly one`,
        );
      }
    }
  }
}
