// `xsm site validate|diff|plan`: offline checks of site files, no Redis needed; `xsm site plan FILE` asks
// the API for the plan the file would get now, and can save it for `xsm apply --plan`.

import { readFile, writeFile } from 'node:fs/promises';
import { loadSiteFile } from '../../site/parse.ts';
import { formatIssue, type Site } from '../../site/model.ts';
import { diffSites, formatDiff } from '../../site/diff.ts';
import { planChanges, PlanError } from '../../site/plan.ts';
import { formatPlan, planJson } from '../../site/plan-format.ts';
import { ApiCallError, type ApiClient } from '../api-client.ts';
import { defineCommand, UsageError, type CliIo } from '../command.ts';
import { savedPlan, type PlanAnswer } from './plan-submit.ts';

async function load(path: string, io: CliIo): Promise<Site | undefined> {
  const r = await loadSiteFile(path);
  for (const w of r.warnings) io.err(`warning: ${formatIssue(w)}`);
  if (!r.ok) {
    for (const e of r.errors) io.err(formatIssue(e));
    io.err(`${path}: ${r.errors.length} error${r.errors.length === 1 ? '' : 's'}; nothing was applied`);
    return undefined;
  }
  return r.site;
}

export const siteValidate = defineCommand({
  name: 'site validate',
  summary: 'check a site file; exit 0 when valid, 1 with every error (file:line:col) on stderr',
  positionals: [{ name: 'FILE', description: 'the site file (XML)' }],
  options: {},
  async run({ positionals: { FILE } }, { io }) {
    const site = await load(FILE, io);
    if (!site) return 1;
    io.out(
      `${FILE}: valid: ${site.hosts.length} hosts, ${site.templates.length} templates, ${site.sets.length} sets, ${site.vms.length} VMs`,
    );
    return 0;
  },
});

const OLD_NEW = [
  { name: 'OLD', description: 'the site file as it is' },
  { name: 'NEW', description: 'the site file as it should become' },
] as const;

export const siteDiff = defineCommand({
  name: 'site diff',
  summary: 'what changed between two site files, field by field',
  positionals: OLD_NEW,
  options: {},
  async run({ positionals: { OLD, NEW } }, { io }) {
    const [a, b] = [await load(OLD, io), await load(NEW, io)];
    if (!a || !b) return 1;
    io.out(formatDiff(diffSites(a, b)));
    return 0;
  },
});

/** The plan FILE would get against the running site now; with --out, saved for `xsm apply --plan`. */
async function planAgainstSite(
  path: string,
  out: string | undefined,
  json: boolean,
  io: CliIo,
  api: ApiClient,
): Promise<number> {
  let xml: string;
  try {
    xml = await readFile(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let r: PlanAnswer & { warnings: { text: string }[] };
  try {
    r = await api.call('POST', `/api/site/plan?file=${encodeURIComponent(path)}`, { xml });
  } catch (e) {
    if (!(e instanceof ApiCallError)) throw e;
    io.err(e.message);
    if (Array.isArray(e.details)) for (const d of e.details as { text?: string }[]) if (d.text) io.err(`  ${d.text}`);
    return 1;
  }
  for (const w of r.warnings) io.err(`warning: ${w.text}`);
  const saved = savedPlan(path, xml, r);
  if (out) await writeFile(out, JSON.stringify(saved, null, 2) + '\n');
  if (json) io.out(JSON.stringify(saved.plan, null, 2));
  else {
    const at = new Date(r.observedAt).toISOString();
    io.out(`plan ${r.planHash.slice(0, 12)} against version ${r.base} (observed ${at}):`);
    io.out(formatPlan(r.plan));
  }
  if (out) io.out(`saved to ${out}; run exactly this plan with: xsm apply --plan ${out}`);
  return 0;
}

/** OLD -> NEW offline: no API, no observed state. */
async function planOffline(oldPath: string, newPath: string, json: boolean, io: CliIo): Promise<number> {
  const [a, b] = [await load(oldPath, io), await load(newPath, io)];
  if (!a || !b) return 1;
  try {
    const plan = planChanges(a, b);
    io.out(json ? planJson(plan) : formatPlan(plan));
    return 0;
  } catch (e) {
    if (e instanceof PlanError) {
      io.err(`${newPath}: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

export const sitePlan = defineCommand({
  name: 'site plan',
  summary: 'the actions FILE would get against the running site (save with --out), or OLD -> NEW offline',
  details: [
    'With one file, the API plans it against the current version and what the agents observe; --out saves',
    'that plan (with the file) for `xsm apply --plan`, which runs exactly it or is refused if its base moved.',
    'With two files, the plan from OLD to NEW is computed offline.',
  ],
  positionals: [
    { name: 'FILE', description: 'the site file to plan (or OLD, with NEW)' },
    { name: 'NEW', optional: true, description: 'plan offline from FILE (as OLD) to NEW' },
  ],
  options: {
    out: { type: 'string', value: 'PLAN.json', description: 'save the plan for `xsm apply --plan` (one FILE only)' },
    json: { type: 'boolean', description: 'print the plan as JSON' },
  },
  async run({ positionals: { FILE, NEW }, options }, { io, api }) {
    if (NEW === undefined) return planAgainstSite(FILE, options.out, options.json, io, api());
    if (options.out) throw new UsageError('--out saves a plan made against the running site: give one site file');
    return planOffline(FILE, NEW, options.json, io);
  },
});
