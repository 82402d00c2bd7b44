// Names for plans and site contents: a sha256 over canonical JSON (keys sorted, source positions left
// out), so the same actions always hash the same, whichever process planned them and in whatever order
// their fields were written. A saved plan is run only if planning again gives the same hash.

import { createHash } from 'node:crypto';
import type { Action } from './actions.ts';
import type { Site } from './model.ts';

/** JSON with object keys sorted at every level and `pos` (where something was in a file) omitted. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([k, v]) => k !== 'pos' && v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function planHash(actions: readonly Action[]): string {
  return sha256(canonicalJson(actions));
}

/** Two sites are the same content when they differ only in layout, comments or where things were written. */
export function sameContent(a: Site, b: Site): boolean {
  return canonicalJson(a) === canonicalJson(b);
}
