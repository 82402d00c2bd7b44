// The paper's <Set><Owner> made to mean something: an operator may change only the Sets it owns (their
// <Owner> is its identity or one of its groups) and nothing outside Sets: hosts, templates and power are
// the admin's. A Set without an <Owner> is shared by every operator, as every Set was before owners
// counted. Every path that stores a version on behalf of a person calls checkOwnership before storing, so
// a refusal stores nothing; its answer names each Set and its Owner.

import type { HostSpec, Site, TemplateSpec, VmSpec } from '../site/model.ts';
import { roleAllows, type Principal } from './auth.ts';

export interface OwnershipChange {
  /** `Set[name=web]`, `Host[name=xen01]`, `Template[name=tiny]`, as site-file errors name elements. */
  element: string;
  change: 'added' | 'removed' | 'changed';
  /** The Set's owner(s) before and after, where they differ from the caller. */
  owner?: string;
}

export class OwnershipForbidden extends Error {
  constructor(
    readonly principal: Principal,
    readonly changes: OwnershipChange[],
  ) {
    const what = changes.map((c) => `${c.element} (${c.change}${c.owner ? `, owner ${c.owner}` : ''})`).join(', ');
    super(
      `your token (${principal.name}, ${principal.role}${principal.groups.length ? `, groups ${principal.groups.join(',')}` : ''}) may change only Sets it owns and nothing outside Sets; this change touches ${what}; nothing was stored`,
    );
    this.name = 'OwnershipForbidden';
  }
}

/** A record's meaning without where it was written: the same Set moved within the file is unchanged. */
function meaning(v: VmSpec | HostSpec | TemplateSpec | undefined): string {
  if (!v) return '';
  const { pos: _pos, ...rest } = v as typeof v & { pos?: unknown };
  return JSON.stringify(rest, Object.keys(rest).sort());
}

/** Sets, declared hosts and declared templates whose meaning differs between `base` and `next`. */
export function changedElements(
  base: Site | undefined,
  next: Site,
): {
  sets: { name: string; change: OwnershipChange['change']; owners: (string | undefined)[] }[];
  outside: OwnershipChange[];
} {
  const before = new Map((base?.sets ?? []).map((s) => [s.name, s]));
  const after = new Map(next.sets.map((s) => [s.name, s]));
  const vmsBefore = new Map((base?.vms ?? []).map((v) => [v.name, v]));
  const vmsAfter = new Map(next.vms.map((v) => [v.name, v]));
  const setOfVm = (site: Map<string, VmSpec>, name: string) => site.get(name)?.set;
  const sets: { name: string; change: OwnershipChange['change']; owners: (string | undefined)[] }[] = [];
  for (const name of [...new Set([...before.keys(), ...after.keys()])].sort()) {
    const [a, b] = [before.get(name), after.get(name)];
    if (a && b) {
      const vms = [...new Set([...a.vms, ...b.vms])];
      const same =
        a.owner === b.owner &&
        JSON.stringify(a.vms) === JSON.stringify(b.vms) &&
        vms.every(
          (v) =>
            setOfVm(vmsBefore, v) === setOfVm(vmsAfter, v) && meaning(vmsBefore.get(v)) === meaning(vmsAfter.get(v)),
        );
      if (!same) sets.push({ name, change: 'changed', owners: [a.owner, b.owner] });
    } else if (a) sets.push({ name, change: 'removed', owners: [a.owner] });
    else sets.push({ name, change: 'added', owners: [b!.owner] });
  }
  const outside: OwnershipChange[] = [];
  const compare = <T extends HostSpec | TemplateSpec>(kind: string, x: T[], y: T[]) => {
    const declared = (list: T[]) => new Map(list.filter((e) => !e.implied).map((e) => [e.name, e]));
    const [m, n] = [declared(x), declared(y)];
    for (const name of [...new Set([...m.keys(), ...n.keys()])].sort()) {
      const [a, b] = [m.get(name), n.get(name)];
      if (meaning(a) === meaning(b)) continue;
      outside.push({ element: `${kind}[name=${name}]`, change: !a ? 'added' : !b ? 'removed' : 'changed' });
    }
  };
  compare('Host', base?.hosts ?? [], next.hosts);
  compare('Template', base?.templates ?? [], next.templates);
  return { sets, outside };
}

/** True when `owner` names the principal or one of its groups; an unowned Set is every operator's. */
export function owns(principal: Principal, owner: string | undefined): boolean {
  return owner === undefined || owner === principal.name || principal.groups.includes(owner);
}

/**
 * Throws OwnershipForbidden (HTTP 403) when a non-admin's `next` changes a Set it does not own (before or
 * after the change: a Set cannot be taken over or handed to a stranger) or anything outside Sets. Returns
 * the names of the Sets the change touches, for the audit log.
 */
export function checkOwnership(principal: Principal, base: Site | undefined, next: Site): string[] {
  const { sets, outside } = changedElements(base, next);
  if (roleAllows(principal.role, 'admin')) return sets.map((s) => s.name);
  const refused: OwnershipChange[] = [...outside];
  for (const s of sets) {
    const foreign = s.owners.filter((o) => !owns(principal, o));
    if (foreign.length)
      refused.push({ element: `Set[name=${s.name}]`, change: s.change, owner: [...new Set(foreign)].join(' / ') });
  }
  if (refused.length) throw new OwnershipForbidden(principal, refused);
  return sets.map((s) => s.name);
}
