// Planning was made linear (issue 20: one pass over the text, a template compared once, lookups instead of
// scans in the scheduler); the plans must not change. The hashes below are those the planner gave on these
// generated sites before that work (computed with the same code path: loadSite, planChanges, planJson).
import test from 'ava';
import { loadSite } from '../../src/site/parse.ts';
import { planChanges } from '../../src/site/plan.ts';
import { planJson } from '../../src/site/plan-format.ts';
import { sha256 } from '../../src/site/plan-hash.ts';
import { serializeSite } from '../../src/site/serialize.ts';
import { changeSite, generateSite } from '../../bench/generate.ts';

const BEFORE = [
  {
    hosts: 10,
    vms: 100,
    changed: 0.2,
    seed: 1,
    actions: 18,
    waves: 1,
    hash: 'e96e3bc9eed80735ae05786e6140cb53c8eeb6a4599416ee7aec59a9675414c9',
  },
  {
    hosts: 100,
    vms: 1000,
    changed: 0.05,
    seed: 2,
    actions: 50,
    waves: 1,
    hash: '2b21c926a364769c309e8b45d868f4c06af0839e7c858dd643cf939144381deb',
  },
  {
    hosts: 200,
    vms: 3000,
    changed: 0.3,
    seed: 3,
    actions: 811,
    waves: 2,
    hash: '04075dbdc99b08a006cfde54ae5ddfdd20ff79944025c86c712a3d366e4d35a1',
  },
];

for (const b of BEFORE)
  test(`plans ${b.vms} generated VMs on ${b.hosts} hosts (${b.changed * 100}% changed) exactly as before`, (t) => {
    const base = generateSite(b.hosts, b.vms, b.seed);
    const old = loadSite(serializeSite(base), 'old.xml');
    const now = loadSite(serializeSite(changeSite(base, b.changed, b.seed + 10)), 'new.xml');
    if (!old.ok || !now.ok) return t.fail('generated sites must load');
    const plan = planChanges(old.site, now.site);
    t.is(plan.actions.length, b.actions);
    t.is(plan.waves, b.waves);
    t.is(sha256(planJson(plan)), b.hash);
  });
