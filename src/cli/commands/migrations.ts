// `xsm migrations`: every migration XSM made or tried, newest first — who asked (operator, rebalance,
// drain, failover), why, the gain its planner predicted, how it ended and how long it took — from
// GET /api/migrations.

import { formatTable } from '../../site/plan-format.ts';
import { defineCommand, EXIT, parseDecimal } from '../command.ts';
import type { MigrationEntry } from '../../services/migration-history.ts';

/** One migration as the API answers it: times are ISO-8601. */
type Answer = Omit<MigrationEntry, 'at' | 'startedAt'> & { at: string; startedAt?: string };

const seconds = (ms: number | undefined) => (ms === undefined ? '' : `${(ms / 1000).toFixed(1)} s`);

export const migrations = defineCommand({
  name: 'migrations',
  summary: 'the migration history, newest first: source, reason, predicted gain, outcome and duration',
  positionals: [],
  options: {
    vm: { type: 'string', value: 'VM', description: "only this VM's migrations" },
    limit: { type: 'integer', value: 'N', min: 1, max: 10000, description: 'at most N migrations (default 100)' },
  },
  async run({ options }, ctx) {
    const q = new URLSearchParams();
    if (options.vm !== undefined) q.set('vm', options.vm);
    if (options.limit !== undefined) q.set('limit', String(parseDecimal(String(options.limit), '--limit', 1)));
    const { migrations: list } = await ctx
      .api()
      .call<{ migrations: Answer[] }>('GET', `/api/migrations?${q.toString()}`);
    ctx.result({ migrations: list });
    ctx.io.out(
      formatTable(
        ['STARTED', 'VM', 'FROM', 'TO', 'MODE', 'SOURCE', 'GAIN', 'OUTCOME', 'TOOK', 'VERSION', 'REASON'],
        list.map((m) => [
          m.startedAt ?? '',
          m.vm,
          m.from ?? '',
          m.to ?? '',
          m.mode ?? '',
          m.source,
          m.predictedGain === undefined ? '' : m.predictedGain.toFixed(4),
          m.outcome ? `${m.outcome}${m.error ? `: ${m.error}` : ''}` : 'planned',
          seconds(m.durationMs),
          `v${m.version}`,
          m.reason,
        ]),
      ),
    );
    return EXIT.ok;
  },
});
