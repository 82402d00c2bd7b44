// Names for plans and site contents: a sha256 over canonical JSON (keys sorted, source positions left
// out), so the same actions always hash the same, whichever process planned them and in whatever order
// their fields were written. A saved plan is run only if planning again gives the same hash.

import { createHash } from 'node:crypto';
import type { Action } from './actions.ts';
import type { Site } from './model.ts';

/**
 * JSON with object keys sorted at every level and `pos` (where something was in a file) omitted.
 *
 * For plain data (plain objects with their own enumerable data properties, arrays, strings, numbers,
 * booleans, null: every site and plan) it is JSON.stringify given every key the value uses, sorted, as its list
 * of keys to write: the engine then writes each object's keys in that list's order, which is sorted order, at
 * native speed (half the time of the walk below on 10,000 VMs' plan, whose hash every submit and every plan
 * preview computes, and on a whole site, which every submit compares with the current one). Anything else (a class
 * instance or Date, whose toJSON JSON.stringify would call; a function; a key Object.prototype also has, such
 * as `__proto__`, which JSON.stringify would read through to the prototype; more distinct keys than a site's
 * model has, where checking each listed key on every object would cost more than it saves) takes the walk,
 * which is the definition: both give the same text (test/site/plan-hash.test.ts).
 */
export function canonicalJson(value: unknown): string {
  const keys = new Set<string>();
  if (!collectPlainKeys(value, keys)) return canonicalJsonByWalk(value);
  return JSON.stringify(value, [...keys].sort()) ?? 'null';
}

/** Most distinct keys the fast path takes (a site's model has a few dozen). */
const MAX_LISTED_KEYS = 512;

/** Adds the keys `v` uses (but `pos` and what is under it) to `keys`; false when `v` is not plain data. */
function collectPlainKeys(v: unknown, keys: Set<string>): boolean {
  if (v === null) return true;
  const type = typeof v;
  if (type === 'string' || type === 'number' || type === 'boolean') return true;
  if (type !== 'object') return false;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      // A hole: JSON.stringify writes null where the walk writes nothing; parsed data has none.
      if (!(i in v)) return false;
      if (v[i] !== undefined && !collectPlainKeys(v[i], keys)) return false;
    }
    return true;
  }
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return false;
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (k === 'pos') continue;
    const item = o[k];
    if (item === undefined) continue;
    if (!keys.has(k)) {
      if (k in Object.prototype || keys.size >= MAX_LISTED_KEYS) return false;
      keys.add(k);
    }
    if (!collectPlainKeys(item, keys)) return false;
  }
  return true;
}

/** canonicalJson by walking the value: for any value. */
export function canonicalJsonByWalk(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJsonByWalk(v === undefined ? null : v)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([k, v]) => k !== 'pos' && v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJsonByWalk(v)}`).join(',')}}`;
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
