// `xsm site validate|diff|plan`: offline checks of site files, no Redis needed; `xsm site plan FILE` asks
// the API for the plan the file would get now, and can save it for `xsm apply --plan`.

import { readFile, writeFile } from 'node:fs/promises';
import { formatIssue } from '../../site/model.ts';
import { formatPlan } from '../../site/plan-format.ts';
import type { ApiClient } from '../api-client.ts';
import { defineCommand, EXIT, UsageError, type CliContext, type CliIo } from '../command.ts';
import { savedPlan, type PlanAnswer } from './plan-submit.ts';

/** A located problem under --json: what `formatIssue` prints, as fields. */
type IssueJson = { file: string; line: number; col: number; element: string; message: string };
type Issues = { errors: IssueJson[]; warnings: IssueJson[] };

/** Loads a site file, printing warnings and errors; under --json they also go into `issues`. */
async function load(path: string, io: CliIo, issues?: Issues) {
  // Loaded on use: the parser and its checks are most of the CLI's start-up time, and `xsm --version`,
  // `xsm status` or `xsm jobs` never need them.
  const { loadSiteFile } = await import('../../site/parse.ts');
  const r = await loadSiteFile(path);
  const plain = ({ file, line, col, element, message }: IssueJson) => ({ file, line, col, element, message });
  for (const w of r.warnings) io.err(`warning: ${formatIssue(w)}`);
  issues?.warnings.push(...r.warnings.map(plain));
  if (!r.ok) {
    for (const e of r.errors) io.err(formatIssue(e));
    issues?.errors.push(...r.errors.map(plain));
    io.err(`${path}: ${r.errors.length} error${r.errors.length === 1 ? '' : 's'}; nothing was applied`);
    return undefined;
  }
  return r.site;
}

/** The answer of a command whose files did not load: every located error, exit 1. */
function refusedFiles(ctx: CliContext, issues: Issues): number {
  ctx.result({ valid: false, ...issues });
  return EXIT.failed;
}

export const siteValidate = defineCommand({
  name: 'site validate',
  summary: 'check a site file; exit 0 when valid, 1 with every error (file:line:col) on stderr',
  positionals: [{ name: 'FILE', description: 'the site file (XML)' }],
  options: {},
  async run({ positionals: { FILE } }, ctx) {
    const issues: Issues = { errors: [], warnings: [] };
    const site = await load(FILE, ctx.io, issues);
    if (!site) return refusedFiles(ctx, issues);
    const counts = {
      hosts: site.hosts.length,
      templates: site.templates.length,
      sets: site.sets.length,
      vms: site.vms.length,
    };
    ctx.io.out(
      `${FILE}: valid: ${counts.hosts} hosts, ${counts.templates} templates, ${counts.sets} sets, ${counts.vms} VMs`,
    );
    ctx.result({ valid: true, file: FILE, ...counts, warnings: issues.warnings });
    return EXIT.ok;
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
  async run({ positionals: { OLD, NEW } }, ctx) {
    const issues: Issues = { errors: [], warnings: [] };
    const [a, b] = [await load(OLD, ctx.io, issues), await load(NEW, ctx.io, issues)];
    if (!a || !b) return refusedFiles(ctx, issues);
    const { diffSites, formatDiff } = await import('../../site/diff.ts');
    const diff = diffSites(a, b);
    ctx.io.out(formatDiff(diff));
    ctx.result({ diff });
    return EXIT.ok;
  },
});

/** The plan FILE would get against the running site now; with --out, saved for `xsm apply --plan`. */
async function planAgainstSite(
  path: string,
  out: string | undefined,
  ctx: CliContext,
  api: ApiClient,
): Promise<number> {
  const { io } = ctx;
  let xml: string;
  try {
    xml = await readFile(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const r = await api.call<PlanAnswer & { warnings: { text: string }[] }>(
    'POST',
    `/api/site/plan?file=${encodeURIComponent(path)}`,
    { xml },
  );
  for (const w of r.warnings) io.err(`warning: ${w.text}`);
  const saved = savedPlan(path, xml, r);
  if (out) await writeFile(out, JSON.stringify(saved, null, 2) + '\n');
  const at = new Date(r.observedAt).toISOString();
  io.out(`plan ${r.planHash.slice(0, 12)} against version ${r.base} (observed ${at}):`);
  io.out(formatPlan(r.plan));
  if (out) io.out(`saved to ${out}; run exactly this plan with: xsm apply --plan ${out}`);
  ctx.result({
    base: r.base,
    planHash: r.planHash,
    observedAt: at,
    plan: r.plan,
    ...(out ? { savedTo: out } : {}),
  });
  return EXIT.ok;
}

/** OLD -> NEW offline: no API, no observed state. */
async function planOffline(oldPath: string, newPath: string, ctx: CliContext): Promise<number> {
  const issues: Issues = { errors: [], warnings: [] };
  const [a, b] = [await load(oldPath, ctx.io, issues), await load(newPath, ctx.io, issues)];
  if (!a || !b) return refusedFiles(ctx, issues);
  const { planChanges, PlanError } = await import('../../site/plan.ts');
  const { planJson } = await import('../../site/plan-format.ts');
  try {
    const plan = planChanges(a, b);
    // Each form is made only when it is printed: the table for people, the JSON document under --json.
    if (ctx.json) ctx.result({ plan: JSON.parse(planJson(plan)) as unknown });
    else ctx.io.out(formatPlan(plan));
    return EXIT.ok;
  } catch (e) {
    if (e instanceof PlanError) {
      ctx.io.err(`${newPath}: ${e.message}`);
      ctx.result({ error: { code: 'no-plan', message: `${newPath}: ${e.message}` } });
      return EXIT.failed;
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
  },
  async run({ positionals: { FILE, NEW }, options }, ctx) {
    if (NEW === undefined) return planAgainstSite(FILE, options.out, ctx, ctx.api());
    if (options.out) throw new UsageError('--out saves a plan made against the running site: give one site file');
    return planOffline(FILE, NEW, ctx);
  },
});
