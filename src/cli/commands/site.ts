// `xsm site validate|diff|plan`: offline checks of site files, no Redis needed; `xsm site plan FILE` asks
// the API for the plan the file would get now, and can save it for `xsm apply --plan`.

import { readFile, writeFile } from 'node:fs/promises';
import { loadSiteFile } from '../../site/parse.ts';
import { formatIssue, type Site } from '../../site/model.ts';
import { diffSites, formatDiff } from '../../site/diff.ts';
import { planChanges, PlanError } from '../../site/plan.ts';
import { formatPlan, planJson } from '../../site/plan-format.ts';
import { parseArgs, UsageError, type CliIo, type Command } from '../command.ts';
import { apiClient, ApiCallError } from '../api-client.ts';
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

export const siteValidate: Command = {
  name: 'site validate',
  usage: 'xsm site validate FILE',
  summary: 'check a site file; exit 0 when valid, 1 with every error (file:line:col) on stderr',
  async run(args, io) {
    const { positional } = parseArgs(args);
    if (positional.length !== 1) throw new UsageError('give exactly one site file');
    const site = await load(positional[0]!, io);
    if (!site) return 1;
    io.out(
      `${positional[0]}: valid: ${site.hosts.length} hosts, ${site.templates.length} templates, ${site.sets.length} sets, ${site.vms.length} VMs`,
    );
    return 0;
  },
};

export const siteDiff: Command = {
  name: 'site diff',
  usage: 'xsm site diff OLD NEW',
  summary: 'what changed between two site files, field by field',
  async run(args, io) {
    const { positional } = parseArgs(args);
    if (positional.length !== 2) throw new UsageError('give two site files: OLD NEW');
    const [a, b] = [await load(positional[0]!, io), await load(positional[1]!, io)];
    if (!a || !b) return 1;
    io.out(formatDiff(diffSites(a, b)));
    return 0;
  },
};

/** The plan FILE would get against the running site now; with --out, saved for `xsm apply --plan`. */
async function planAgainstSite(path: string, out: string | undefined, json: boolean, io: CliIo): Promise<number> {
  let xml: string;
  try {
    xml = await readFile(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let r: PlanAnswer & { warnings: { text: string }[] };
  try {
    r = await apiClient().call('POST', `/api/site/plan?file=${encodeURIComponent(path)}`, { xml });
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
    io.out(
      `plan ${r.planHash.slice(0, 12)} against version ${r.base} (observed ${new Date(r.observedAt).toISOString()}):`,
    );
    io.out(formatPlan(r.plan));
  }
  if (out) io.out(`saved to ${out}; run exactly this plan with: xsm apply --plan ${out}`);
  return 0;
}

export const sitePlan: Command = {
  name: 'site plan',
  usage: 'xsm site plan FILE [--out PLAN.json] [--json] | xsm site plan OLD NEW [--json]',
  summary:
    'the ordered actions FILE would get against the running site (saved with --out for `xsm apply --plan`), or OLD -> NEW offline',
  async run(args, io) {
    const { positional, flags } = parseArgs(args, ['out']);
    const out = flags.get('out');
    if (out === true) throw new UsageError('--out needs a file name');
    if (positional.length === 1) return planAgainstSite(positional[0]!, out, flags.has('json'), io);
    if (positional.length !== 2) throw new UsageError('give one site file (against the running site) or two: OLD NEW');
    if (out) throw new UsageError('--out saves a plan made against the running site: give one site file');
    const [a, b] = [await load(positional[0]!, io), await load(positional[1]!, io)];
    if (!a || !b) return 1;
    try {
      const plan = planChanges(a, b);
      io.out(flags.has('json') ? planJson(plan) : formatPlan(plan));
      return 0;
    } catch (e) {
      if (e instanceof PlanError) {
        io.err(`${positional[1]}: ${e.message}`);
        return 1;
      }
      throw e;
    }
  },
};
