// What changed between two desired states, field by field: the input to review before a plan runs.

import type { HostSpec, Site, TemplateSpec, VmSpec } from './model.ts';

export interface FieldChange {
  field: string;
  from: string;
  to: string;
}
export interface Changed {
  name: string;
  changes: FieldChange[];
}
export interface Section {
  added: string[];
  removed: string[];
  changed: Changed[];
}
export interface SiteDiff {
  hosts: Section;
  templates: Section;
  vms: Section;
}

function fields(x: object): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (prefix: string, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, inner] of Object.entries(v))
        if (k !== 'pos' && k !== 'implied') walk(prefix ? `${prefix}.${k}` : k, inner);
    } else if (v !== undefined) out.set(prefix, JSON.stringify(v));
  };
  walk('', x);
  return out;
}

function section<T extends { name: string }>(a: readonly T[], b: readonly T[]): Section {
  const before = new Map(a.map((x) => [x.name, x]));
  const after = new Map(b.map((x) => [x.name, x]));
  const added = [...after.keys()].filter((n) => !before.has(n)).sort();
  const removed = [...before.keys()].filter((n) => !after.has(n)).sort();
  const changed: Changed[] = [];
  for (const name of [...after.keys()].filter((n) => before.has(n)).sort()) {
    const fa = fields(before.get(name)!);
    const fb = fields(after.get(name)!);
    const changes: FieldChange[] = [];
    for (const key of [...new Set([...fa.keys(), ...fb.keys()])].sort()) {
      const x = fa.get(key) ?? '-';
      const y = fb.get(key) ?? '-';
      if (x !== y) changes.push({ field: key, from: x, to: y });
    }
    if (changes.length) changed.push({ name, changes });
  }
  return { added, removed, changed };
}

export function diffSites(before: Site | undefined, after: Site): SiteDiff {
  return {
    hosts: section<HostSpec>(before?.hosts ?? [], after.hosts),
    templates: section<TemplateSpec>(before?.templates ?? [], after.templates),
    vms: section<VmSpec>(before?.vms ?? [], after.vms),
  };
}

export function formatDiff(d: SiteDiff): string {
  const lines: string[] = [];
  for (const [title, s] of [
    ['host', d.hosts],
    ['template', d.templates],
    ['VM', d.vms],
  ] as const) {
    for (const n of s.added) lines.push(`+ ${title} ${n}`);
    for (const n of s.removed) lines.push(`- ${title} ${n}`);
    for (const c of s.changed)
      for (const f of c.changes) lines.push(`~ ${title} ${c.name}: ${f.field} ${f.from} -> ${f.to}`);
  }
  return lines.length ? lines.join('\n') : 'no changes';
}
