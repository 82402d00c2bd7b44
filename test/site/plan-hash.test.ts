// canonicalJson writes plain data through JSON.stringify with a sorted key list, and anything else through
// the walk that defines it: the two must give the same text for every value, or a plan's hash would change
// with the path taken (a saved plan would then be refused as stale, or worse, two plans share a hash).
import test from 'ava';
import { canonicalJson, canonicalJsonByWalk, planHash } from '../../src/site/plan-hash.ts';
import { loadSite } from '../../src/site/parse.ts';
import { planChanges } from '../../src/site/plan.ts';
import { serializeSite } from '../../src/site/serialize.ts';
import { changeSite, generateSite } from '../../bench/generate.ts';

function loaded(xml: string) {
  const l = loadSite(xml, 'gen.xml');
  if (!l.ok) throw new Error(l.errors.map((e) => e.message).join('; '));
  return l.site;
}

test('a generated site, its plan from nothing and a plan of changes: the same text both ways', (t) => {
  const before = loaded(serializeSite(generateSite(20, 300, 3)));
  const after = loaded(serializeSite(changeSite(generateSite(20, 300, 3), 0.3, 4)));
  const fresh = planChanges(undefined, before);
  const changes = planChanges(before, after);
  t.true(new Set(changes.actions.map((a) => a.kind)).size >= 3, 'the change plans actions of several kinds');
  for (const value of [before, after, fresh, changes, fresh.actions, changes.actions]) {
    const text = canonicalJson(value);
    t.is(text, canonicalJsonByWalk(value));
    t.false(text.includes('"pos"'), 'source positions are left out');
  }
});

test('keys are sorted at every level by code unit, positions and undefined left out', (t) => {
  const value = {
    z: 1,
    é: [{ b: 2, a: undefined, pos: { line: 3 } }, undefined, null],
    '10': 'ten',
    '9': 'nine',
    '': { Z: true, a: false, _: -0 },
    A: { nested: { y: [1, { d: 'x', c: 'y' }], x: NaN } },
    pos: { line: 1, col: 2 },
  };
  const text = canonicalJson(value);
  t.is(text, canonicalJsonByWalk(value));
  t.is(
    text,
    '{"":{"Z":true,"_":0,"a":false},"10":"ten","9":"nine","A":{"nested":{"x":null,"y":[1,{"c":"y","d":"x"}]}},' +
      '"z":1,"é":[{"b":2},null,null]}',
  );
});

test('values that are not plain data take the walk and give its text', (t) => {
  const manyKeys = Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`k${i}`, i]));
  const nullProto = Object.assign(Object.create(null) as Record<string, unknown>, { b: 1, a: 2 });
  const values: unknown[] = [
    { when: new Date(0), a: 1 }, // toJSON: JSON.stringify would write the date, the walk writes {}
    JSON.parse('{"__proto__": {"x": 1}, "a": {"b": 2}}'), // an own __proto__: read through to the prototype
    { f: () => 1, a: 1 }, // a function
    [1, , 3], // a hole
    manyKeys,
    nullProto,
    { constructor: 'c', toString: 's', a: { b: 1 } },
    new Map([['a', 1]]),
    undefined,
    'text',
    12.5,
  ];
  for (const value of values) t.is(canonicalJson(value), canonicalJsonByWalk(value));
});

test('the plan hash is unchanged by the faster writing (the value recorded before it)', (t) => {
  const site = loaded(serializeSite(generateSite(10, 100, 1)));
  const actions = planChanges(undefined, site).actions;
  t.is(planHash(actions), planHash(JSON.parse(JSON.stringify(actions)) as typeof actions));
  t.is(planHash(actions), PLAN_HASH_BEFORE);
});

/** planHash of the site above's plan, as the walk alone computed it before the fast path existed. */
const PLAN_HASH_BEFORE = '818a523f1c32817d019aa20271a3d751fcb60f36808505c6ffdeb97f0c2a1242';
