// Only an admin may add, change or remove a host's <Power>: it names where XSM sends a BMC password and
// which machine fencing switches off. Every path that stores a new site version on behalf of a person calls
// checkPowerChanges(principal, base, next) before storing; a refusal stores nothing.

import type { PowerSpec, Site } from '../site/model.ts';
import { roleAllows, type Principal } from './auth.ts';

export interface PowerChange {
  /** `Host[name=xen01]/Power`, as site-file errors name elements. */
  element: string;
  change: 'added' | 'removed' | 'changed';
}

export class PowerChangeForbidden extends Error {
  constructor(
    readonly principal: Principal,
    readonly changes: PowerChange[],
  ) {
    super(
      `only an admin may add, change or remove a <Power> entry: ${changes.map((c) => `${c.element} (${c.change})`).join(', ')}; your token (${principal.name}) has ${principal.role}; nothing was stored`,
    );
    this.name = 'PowerChangeForbidden';
  }
}

function same(a: PowerSpec | undefined, b: PowerSpec | undefined): boolean {
  const norm = (p: PowerSpec | undefined) =>
    p && [p.driver, p.address ?? '', p.user ?? '', p.passwordFile ?? '', p.insecureTls ? 1 : 0];
  return JSON.stringify(norm(a)) === JSON.stringify(norm(b));
}

/** Every host whose Power differs between `base` (undefined: no site yet) and `next`. */
export function powerChanges(base: Site | undefined, next: Site): PowerChange[] {
  const before = new Map((base?.hosts ?? []).map((h) => [h.name, h.power]));
  const after = new Map(next.hosts.map((h) => [h.name, h.power]));
  const changes: PowerChange[] = [];
  for (const name of [...new Set([...before.keys(), ...after.keys()])].sort()) {
    const [a, b] = [before.get(name), after.get(name)];
    if (same(a, b)) continue;
    changes.push({ element: `Host[name=${name}]/Power`, change: !a ? 'added' : !b ? 'removed' : 'changed' });
  }
  return changes;
}

/** Throws PowerChangeForbidden (HTTP 403) when a non-admin's `next` differs from `base` in any host's Power. */
export function checkPowerChanges(principal: Principal, base: Site | undefined, next: Site): void {
  if (roleAllows(principal.role, 'admin')) return;
  const changes = powerChanges(base, next);
  if (changes.length) throw new PowerChangeForbidden(principal, changes);
}
