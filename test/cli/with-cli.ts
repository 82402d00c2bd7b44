// The CLI as a script meets it, in-process: `xsm(args)` runs `main` and keeps what it printed, and
// `cliSite` starts a simulated site with an API and points the CLI's environment (XSM_API, XSM_TOKEN) at
// it, so each CLI test says only what it checks.
import type { ExecutionContext } from 'ava';
import { startTestSite, type TestSite } from '../integration/harness.ts';
import { startApi, type RunningApi } from '../../src/api/listen.ts';
import { TokenTable, type TokenSpec } from '../../src/api/auth.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { main } from '../../src/cli/main.ts';
import type { PromptingIo } from '../../src/cli/commands/plan-submit.ts';

export interface CliRun {
  code: number;
  out: string;
  err: string;
  /** The questions the CLI asked (only when an answer was given: without one it is not a terminal). */
  asked: string[];
}

/** Runs `xsm ARGS` in-process; `answer` is what the operator types when asked (absent: not a terminal). */
export async function xsm(args: string[], answer?: 'y' | 'n'): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const asked: string[] = [];
  const io: PromptingIo = {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    ...(answer ? { confirm: async (q: string) => (asked.push(q), answer === 'y') } : {}),
  };
  const code = await main(args, io);
  return { code, out: out.join('\n'), err: err.join('\n'), asked };
}

/**
 * A simulated site of `hosts` with an API in front of it, both closed when the test ends; the CLI's
 * environment points at the API as the first identity (default: one admin). `site` passes options to
 * the test site (agents, cache directories, ...).
 */
export async function cliSite(
  t: ExecutionContext,
  hosts: { name: string; memMiB: number; cpus?: number }[],
  opts: { identities?: TokenSpec[]; site?: Parameters<typeof startTestSite>[1] } = {},
): Promise<{ s: TestSite; api: RunningApi }> {
  const identities: TokenSpec[] = opts.identities ?? [
    { token: 'cli-admin-token-0123456789abcdef', role: 'admin', name: 'cli' },
  ];
  const s = await startTestSite(hosts, opts.site);
  const api = await startApi({
    rt: s.rt,
    tokens: new TokenTable(identities),
    log: silentLogger,
    upgradeMethod: s.updater.method,
  });
  t.teardown(async () => {
    await api.close();
    await s.close();
  });
  process.env.XSM_API = api.url;
  process.env.XSM_TOKEN = identities[0]!.token;
  return { s, api };
}
