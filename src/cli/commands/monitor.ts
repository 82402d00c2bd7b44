// CLI commands for the monitoring side: rebalance (now, as a dry run, or on a schedule) and host health,
// including the confirmation an operator gives when XSM asks to power a host without a BMC on or off.

import { formatTable } from '../../site/plan-format.ts';
import { apiClient, ApiCallError } from '../api-client.ts';
import { parseArgs, UsageError, type CliIo, type Command } from '../command.ts';

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
}

async function withApi(io: CliIo, fn: (api: ReturnType<typeof apiClient>) => Promise<number>): Promise<number> {
  try {
    return await fn(apiClient());
  } catch (e) {
    if (e instanceof ApiCallError) {
      io.err(e.message);
      return 1;
    }
    throw e;
  }
}

function modeFlag(flags: Map<string, string | true>): 'performance' | 'density' | undefined {
  const m = flags.get('mode');
  if (m === undefined) return undefined;
  if (m !== 'performance' && m !== 'density')
    throw new UsageError('--mode is performance (spread load) or density (pack, free whole hosts)');
  return m;
}

export const rebalance: Command = {
  name: 'rebalance',
  usage: 'xsm rebalance [--dry-run] [--mode performance|density] [--max-moves N]',
  summary:
    'plan live migrations that lower imbalance; without --dry-run, write them as a new site version and apply it',
  async run(args, io) {
    const { positional, flags } = parseArgs(args, ['mode', 'max-moves']);
    if (positional.length) throw new UsageError(`unexpected ${positional[0]}`);
    const mode = modeFlag(flags);
    const maxMoves = flags.get('max-moves');
    const body = {
      dryRun: flags.has('dry-run'),
      ...(mode ? { mode } : {}),
      ...(typeof maxMoves === 'string' ? { maxMoves: Number(maxMoves) } : {}),
    };
    return withApi(io, async (api) => {
      const r = await api.call<RebalanceAnswer>('POST', '/api/rebalance', { json: body });
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
      if (r.refused) io.out(r.refused);
      if (r.version) io.out(`written as version ${r.version} and applied; follow it with: xsm jobs --watch`);
      else if (body.dryRun && r.moves.length) io.out('dry run: nothing written');
      return 0;
    });
  },
};

export const rebalanceSchedule: Command = {
  name: 'rebalance schedule',
  usage: 'xsm rebalance schedule [MINUTES] [--mode performance|density] [--max-moves N]',
  summary: 'show the rebalancing schedule, or set it (every MINUTES; 0 turns it off)',
  async run(args, io) {
    const { positional, flags } = parseArgs(args, ['mode', 'max-moves']);
    return withApi(io, async (api) => {
      if (positional.length === 0) {
        const s = await api.call<{ everyMinutes: number; next?: number | null }>('GET', '/api/rebalance/schedule');
        io.out(
          s.everyMinutes
            ? `every ${s.everyMinutes} min${s.next ? `, next at ${new Date(s.next).toISOString()}` : ''}`
            : 'not scheduled',
        );
        return 0;
      }
      const every = Number(positional[0]);
      if (!Number.isFinite(every) || every < 0) throw new UsageError('MINUTES is a number, 0 to turn rebalancing off');
      const mode = modeFlag(flags);
      const maxMoves = flags.get('max-moves');
      await api.call('PUT', '/api/rebalance/schedule', {
        json: {
          everyMinutes: every,
          ...(mode ? { mode } : {}),
          ...(typeof maxMoves === 'string' ? { maxMoves: Number(maxMoves) } : {}),
        },
      });
      io.out(every ? `rebalancing every ${every} min` : 'rebalancing schedule removed');
      return 0;
    });
  },
};

export const hostHealth: Command = {
  name: 'host health',
  usage: 'xsm host health',
  summary: 'hosts that failover suspects, is fencing, has fenced, or failed to fence, with what to do',
  async run(_args, io) {
    return withApi(io, async (api) => {
      const { health } = await api.call<{ health: Record<string, { state: string; since: number; detail?: string }> }>(
        'GET',
        '/api/hosts/health',
      );
      const rows = Object.entries(health).sort(([a], [b]) => a.localeCompare(b));
      if (!rows.length) {
        io.out('all hosts healthy');
        return 0;
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
};

export const hostPowerConfirm: Command = {
  name: 'host power-confirm',
  usage: 'xsm host power-confirm HOST',
  summary: 'confirm that you switched a host without a BMC as XSM asked (manual power driver)',
  async run(args, io) {
    const { positional } = parseArgs(args);
    if (positional.length !== 1) throw new UsageError('give the host');
    return withApi(io, async (api) => {
      await api.call('POST', `/api/hosts/${encodeURIComponent(positional[0]!)}/power/confirm`);
      io.out(`confirmed for ${positional[0]}`);
      return 0;
    });
  },
};

export const monitorCommands: Command[] = [rebalanceSchedule, rebalance, hostHealth, hostPowerConfirm];
