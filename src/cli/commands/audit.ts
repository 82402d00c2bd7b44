// `xsm audit`: who changed what, when, from where and how it ended, newest first, from GET /api/audit.

import { formatTable } from '../../site/plan-format.ts';
import { defineCommand, EXIT, parseDecimal } from '../command.ts';
import type { AuditEntry } from '../../state/audit-store.ts';

export const audit = defineCommand({
  name: 'audit',
  summary: 'the audit log, newest first: who changed what, when, from where, and how it ended',
  positionals: [],
  options: {
    user: { type: 'string', value: 'NAME', description: "only this identity's entries (system:rebalance, ...)" },
    set: { type: 'string', value: 'SET', description: 'only changes that touched this Set' },
    kind: { type: 'string', value: 'KIND', description: 'submit, edit, apply, retry, deploy, login, rebalance, ...' },
    since: { type: 'string', value: 'TIME', description: 'from this time on (ISO-8601, e.g. 2026-12-01T00:00Z)' },
    limit: { type: 'integer', value: 'N', min: 1, max: 10000, description: 'at most N entries (default 100)' },
  },
  async run({ options }, ctx) {
    const q = new URLSearchParams();
    for (const k of ['user', 'set', 'kind', 'since'] as const) if (options[k] !== undefined) q.set(k, options[k]!);
    if (options.limit !== undefined) q.set('limit', String(parseDecimal(String(options.limit), '--limit', 1)));
    const { entries } = await ctx.api().call<{ entries: AuditEntry[] }>('GET', `/api/audit?${q.toString()}`);
    ctx.result({ entries });
    ctx.io.out(
      formatTable(
        ['TIME', 'USER', 'FROM', 'KIND', 'OUTCOME', 'WHAT', 'SETS', 'RESULT'],
        entries.map((e) => [
          e.time,
          e.user,
          e.from,
          e.kind,
          e.status ? `${e.outcome} ${e.status}` : e.outcome,
          e.what,
          e.sets?.join(',') ?? '',
          [e.version ? `v${e.version}` : '', e.job ?? ''].filter(Boolean).join(' '),
        ]),
      ),
    );
    return EXIT.ok;
  },
});
