// `xsm site validate|diff|plan`: offline checks of site files, no Redis needed.

import { loadSiteFile } from '../../site/parse.ts';
import { formatIssue, type Site } from '../../site/model.ts';
import { diffSites, formatDiff } from '../../site/diff.ts';
import { planChanges, PlanError } from '../../site/plan.ts';
import { formatPlan, planJson } from '../../site/plan-format.ts';
import { parseArgs, UsageError, type CliIo, type Command } from '../command.ts';

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

export const sitePlan: Command = {
  name: 'site plan',
  usage: 'xsm site plan OLD NEW [--json]',
  summary: 'the ordered actions that take the site from OLD to NEW (a dry run)',
  async run(args, io) {
    const { positional, flags } = parseArgs(args);
    if (positional.length !== 2) throw new UsageError('give two site files: OLD NEW');
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
