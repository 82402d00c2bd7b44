// `xsm site validate|diff|plan`: offline checks of site files, no Redis needed.

import { loadSiteFile } from '../../site/parse.ts';
import { formatIssue, type Site } from '../../site/model.ts';
import { diffSites, formatDiff } from '../../site/diff.ts';
import { planChanges, PlanError } from '../../site/plan.ts';
import { formatPlan, planJson } from '../../site/plan-format.ts';
import { defineCommand, type CliIo } from '../command.ts';

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

export const sitePlan = defineCommand({
  name: 'site plan',
  summary: 'the ordered actions that take the site from OLD to NEW (a dry run)',
  positionals: OLD_NEW,
  options: {
    json: { type: 'boolean', description: 'print the plan as JSON' },
  },
  async run({ positionals: { OLD, NEW }, options }, { io }) {
    const [a, b] = [await load(OLD, io), await load(NEW, io)];
    if (!a || !b) return 1;
    try {
      const plan = planChanges(a, b);
      io.out(options.json ? planJson(plan) : formatPlan(plan));
      return 0;
    } catch (e) {
      if (e instanceof PlanError) {
        io.err(`${NEW}: ${e.message}`);
        return 1;
      }
      throw e;
    }
  },
});
