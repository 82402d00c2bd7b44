// CLI commands for the monitoring side: rebalance (now, as a dry run, or on a schedule) and host health,
// including the confirmation an operator gives when XSM asks to power a host without a BMC on or off.

import { readFile } from 'node:fs/promises';
import { formatTable } from '../../site/plan-format.ts';
import type { ApiClient } from '../api-client.ts';
import { defineCommand, EXIT, NO_WAIT, parseDecimal, UsageError, type CliContext } from '../command.ts';

interface Move {
  vm: string;
  from: string;
  to: string;
}
interface RebalanceAnswer {
  baseVersion: number;
  version?: number;
  moves: Move[];
  imbalanceBefore: number;
  imbalanceAfter: number;
  refused?: string;
  /** Another rebalancer holds the lease, or the last apply still runs: this run did nothing. */
  skipped?: string;
  /** The hysteresis thresholds held balancing moves back or cut them short. */
  held?: string;
}

/** Runs `fn` with the API client; an API error propagates to main, which prints it and picks the exit code. */
async function withApi(ctx: CliContext, fn: (api: ApiClient) => Promise<number>): Promise<number> {
  return fn(ctx.api());
}

const MODE = {
  type: 'choice',
  choices: ['performance', 'density'],
  description: 'performance spreads load; density packs VMs to free whole hosts',
} as const;
const MAX_MOVES = { type: 'integer', value: 'N', min: 1, max: 1000, description: 'at most N live migrations' } as const;
const ACT_ABOVE = {
  type: 'string',
  value: 'X',
  description:
    'hysteresis: start balancing when imbalance (std dev of CPU use + of memory use) reaches X (default 0.1)',
} as const;
const STOP_BELOW = {
  type: 'string',
  value: 'X',
  description: 'hysteresis: stop balancing once imbalance is at or below X (default 0.05; at most --act-above)',
} as const;

/** Highest threshold the API takes: imbalance is a sum of two standard deviations of shares (0..1 each). */
const MAX_THRESHOLD = 2;

/** A hysteresis threshold: a plain decimal from 0 to 2 (`0.1`, `.05`, `1`); anything else is a usage error. */
export function parseThreshold(text: string, what: string): number {
  const n = /^(\d+(\.\d*)?|\.\d+)$/.test(text) ? Number(text) : NaN;
  if (!Number.isFinite(n))
    throw new UsageError(`${what} must be a decimal number such as 0.1, got ${JSON.stringify(text)}`);
  if (n > MAX_THRESHOLD) throw new UsageError(`${what} must be from 0 to ${MAX_THRESHOLD}, got ${n}`);
  return n;
}

/** --act-above and --stop-below as the API's actAbove/stopBelow; a stop above the act threshold is refused. */
function hysteresis(options: { 'act-above'?: string | undefined; 'stop-below'?: string | undefined }): {
  actAbove?: number;
  stopBelow?: number;
} {
  const act = options['act-above'] === undefined ? undefined : parseThreshold(options['act-above'], '--act-above');
  const stop = options['stop-below'] === undefined ? undefined : parseThreshold(options['stop-below'], '--stop-below');
  // The defaults are the server's (0.1 / 0.05): compare against them when only one flag is given.
  if ((stop ?? 0.05) > (act ?? 0.1))
    throw new UsageError(
      `--stop-below ${stop ?? 0.05} is above --act-above ${act ?? 0.1}: balancing would never stop; give a stop threshold at or below the act one`,
    );
  return { ...(act !== undefined ? { actAbove: act } : {}), ...(stop !== undefined ? { stopBelow: stop } : {}) };
}

export const rebalance = defineCommand({
  name: 'rebalance',
  summary:
    'plan live migrations that lower imbalance; without --dry-run, write them as a new site version and apply it',
  positionals: [],
  options: {
    'dry-run': { type: 'boolean', description: 'only show the migrations; write nothing' },
    mode: MODE,
    'max-moves': MAX_MOVES,
    'no-wait': NO_WAIT,
    'act-above': ACT_ABOVE,
    'stop-below': STOP_BELOW,
    htools: {
      type: 'string',
      value: 'FILE',
      description: "plan offline for a Ganeti cluster snapshot (hbal's -t format); needs --dry-run; no site touched",
    },
    'htools-util': {
      type: 'string',
      value: 'FILE',
      description: "with --htools: the instances' dynamic utilisation (hbal's -U format)",
    },
  },
  async run({ options }, ctx) {
    if (options['htools-util'] !== undefined && options.htools === undefined)
      throw new UsageError('--htools-util goes with --htools FILE');
    if (options.htools !== undefined) {
      if (!options['dry-run']) throw new UsageError('--htools plans offline only: add --dry-run');
      if (options['no-wait']) throw new UsageError('--no-wait does not apply to --htools (nothing is written)');
      if (options['act-above'] !== undefined || options['stop-below'] !== undefined)
        throw new UsageError(
          "--act-above/--stop-below hold a site's rebalancing between runs; --htools plans one snapshot once",
        );
      return rebalanceHtools(ctx, options.htools, options['htools-util'], options.mode, options['max-moves']);
    }
    const body = {
      dryRun: options['dry-run'],
      ...(options.mode ? { mode: options.mode } : {}),
      ...(options['max-moves'] !== undefined ? { maxMoves: options['max-moves'] } : {}),
      ...hysteresis(options),
    };
    return withApi(ctx, async (api) => {
      const { io } = ctx;
      const r = await api.call<RebalanceAnswer>('POST', '/api/rebalance', { json: body });
      if (r.skipped) {
        io.out(r.skipped);
        ctx.result(r);
        return EXIT.ok;
      }
      io.out(
        `imbalance ${r.imbalanceBefore.toFixed(3)} -> ${r.imbalanceAfter.toFixed(3)} with ${r.moves.length} live migration${r.moves.length === 1 ? '' : 's'} (from version ${r.baseVersion})`,
      );
      if (r.moves.length)
        io.out(
          formatTable(
            ['VM', 'FROM', 'TO'],
            r.moves.map((m) => [m.vm, m.from, m.to]),
          ),
        );
      if (r.held) io.out(r.held);
      if (r.refused) io.out(r.refused);
      if (!r.version) {
        if (body.dryRun && r.moves.length) io.out('dry run: nothing written');
        ctx.result(r);
        return EXIT.ok;
      }
      if (options['no-wait']) {
        io.out(`written as version ${r.version}; its migrations are queued (follow them with: xsm jobs --watch)`);
        ctx.result(r);
        return EXIT.ok;
      }
      io.out(`written as version ${r.version}; following its migrations`);
      // Loaded on use: the offline --htools path (benchmarked as a cold process) never needs it.
      const { followVersion } = await import('./ops.ts');
      const { code, outcome } = await followVersion(ctx, api, r.version);
      ctx.result({ ...r, outcome });
      return code;
    });
  },
});

async function readOrRefuse(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/** `--htools FILE --dry-run`: plans on a Ganeti snapshot, offline (no API, no Redis), and prints the moves. */
async function rebalanceHtools(
  ctx: CliContext,
  file: string,
  utilFile: string | undefined,
  mode: 'performance' | 'density' | undefined,
  maxMoves: number | undefined,
): Promise<number> {
  const { io } = ctx;
  const text = await readOrRefuse(file);
  const util = utilFile === undefined ? undefined : await readOrRefuse(utilFile);
  // Loaded on use: other commands never need the planner.
  const { parseHtools, HtoolsError } = await import('../../rebalance/htools.ts');
  const { balance } = await import('../../rebalance/balance.ts');
  let cluster;
  try {
    cluster = parseHtools(text, file, util, utilFile);
  } catch (e) {
    if (!(e instanceof HtoolsError)) throw e;
    io.err(e.message);
    ctx.result({ error: { code: 'malformed-snapshot', message: e.message } });
    return EXIT.failed;
  }
  const r = balance(cluster.hosts, cluster.vms, {
    mode: mode ?? 'performance',
    maxVcpuRatio: cluster.maxVcpuRatio,
    ...(maxMoves !== undefined ? { maxMoves } : {}),
  });
  io.out(
    `score ${r.imbalanceBefore.toFixed(4)} -> ${r.imbalanceAfter.toFixed(4)} with ${r.moves.length} live migration${r.moves.length === 1 ? '' : 's'} (hbal's cluster score; dry run, nothing touched)`,
  );
  if (r.moves.length)
    io.out(
      formatTable(
        ['VM', 'FROM', 'TO', 'SCORE BEFORE', 'AFTER'],
        r.moves.map((m) => [m.vm, m.from, m.to, m.scoreBefore.toFixed(4), m.scoreAfter.toFixed(4)]),
      ),
    );
  if (r.stuck.length) io.out(`stuck on offline nodes (no room elsewhere): ${r.stuck.join(', ')}`);
  ctx.result({
    moves: r.moves.map((m) => ({ vm: m.vm, from: m.from, to: m.to, before: m.scoreBefore, after: m.scoreAfter })),
    before: r.imbalanceBefore,
    after: r.imbalanceAfter,
    ...(r.stuck.length ? { stuck: r.stuck } : {}),
    ...(r.timedOut ? { timedOut: true } : {}),
  });
  return EXIT.ok;
}

export const rebalanceSchedule = defineCommand({
  name: 'rebalance schedule',
  summary: 'show the rebalancing schedule, or set it (every MINUTES; 0 turns it off)',
  positionals: [{ name: 'MINUTES', optional: true, description: 'rebalance every MINUTES minutes; 0 turns it off' }],
  options: { mode: MODE, 'max-moves': MAX_MOVES, 'act-above': ACT_ABOVE, 'stop-below': STOP_BELOW },
  async run({ positionals: { MINUTES }, options }, ctx) {
    const every = MINUTES === undefined ? undefined : parseDecimal(MINUTES, 'MINUTES', 0, 10080);
    const thresholds = hysteresis(options);
    if (every === undefined && Object.keys(thresholds).length)
      throw new UsageError('--act-above/--stop-below set a schedule: give MINUTES too');
    return withApi(ctx, async (api) => {
      const { io } = ctx;
      if (every === undefined) {
        const s = await api.call<{ everyMinutes: number; next?: string | null }>('GET', '/api/rebalance/schedule');
        io.out(
          s.everyMinutes
            ? `every ${s.everyMinutes} min${s.next ? `, next at ${new Date(s.next).toISOString()}` : ''}`
            : 'not scheduled',
        );
        ctx.result({ everyMinutes: s.everyMinutes, next: s.next ? new Date(s.next).toISOString() : null });
        return EXIT.ok;
      }
      await api.call('PUT', '/api/rebalance/schedule', {
        json: {
          everyMinutes: every,
          ...(options.mode ? { mode: options.mode } : {}),
          ...(options['max-moves'] !== undefined ? { maxMoves: options['max-moves'] } : {}),
          ...thresholds,
        },
      });
      io.out(every ? `rebalancing every ${every} min` : 'rebalancing schedule removed');
      ctx.result({ everyMinutes: every });
      return EXIT.ok;
    });
  },
});

export const hostHealth = defineCommand({
  name: 'host health',
  summary: 'hosts that failover suspects, is fencing, has fenced, or failed to fence, with what to do',
  positionals: [],
  options: {},
  async run(_args, ctx) {
    return withApi(ctx, async (api) => {
      const { io } = ctx;
      const { health } = await api.call<{ health: Record<string, { state: string; since: string; detail?: string }> }>(
        'GET',
        '/api/hosts/health',
      );
      const rows = Object.entries(health).sort(([a], [b]) => a.localeCompare(b));
      ctx.result({
        health: Object.fromEntries(rows.map(([h, v]) => [h, { ...v, since: new Date(v.since).toISOString() }])),
      });
      if (!rows.length) {
        io.out('all hosts healthy');
        return EXIT.ok;
      }
      io.out(
        formatTable(
          ['HOST', 'STATE', 'SINCE', 'DETAIL'],
          rows.map(([h, s]) => [h, s.state, new Date(s.since).toISOString(), s.detail ?? '']),
        ),
      );
      return 0;
    });
  },
});

export const hostPowerConfirm = defineCommand({
  name: 'host power-confirm',
  summary: 'confirm that you switched a host without a BMC as XSM asked (manual power driver)',
  positionals: [{ name: 'HOST', description: 'the host XSM asked you to switch' }],
  options: {},
  async run({ positionals: { HOST } }, ctx) {
    return withApi(ctx, async (api) => {
      await api.call('POST', `/api/hosts/${encodeURIComponent(HOST)}/power/confirm`);
      ctx.io.out(`confirmed for ${HOST}`);
      ctx.result({ host: HOST, confirmed: true });
      return EXIT.ok;
    });
  },
});

export const monitorCommands = [rebalance, rebalanceSchedule, hostHealth, hostPowerConfirm];
