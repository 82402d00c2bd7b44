// How the deploy starts XSM's host agent on a freshly installed Dom0: the image carries Node, XSM at
// /opt/xsm and the systemd unit (docker/xsm-host-agent.service); this gives the agent its host name and
// Redis in /etc/xsm/host-agent.env (0600: it may hold the Redis password), then enables and starts the
// unit, so it also starts at every later boot without the deploy server.

import { CommandError, runChecked, type Shell } from '../drivers/shell.ts';

export const HOST_AGENT_UNIT = 'xsm-host-agent.service';
export const HOST_AGENT_ENV_FILE = '/etc/xsm/host-agent.env';

/** The unit's environment file: this host's name, the local toolstack, then the site's own lines. */
export function hostAgentEnv(host: string, extra: string): string {
  const lines = extra.trim() ? `${extra.trim()}\n` : '';
  return `XSM_HOST=${host}\nXSM_HYPERVISOR=xl\n${lines}`;
}

/** Why the unit did not start: its status and last journal lines, read on the Dom0 (never throws). */
export async function hostAgentDiagnostics(s: Shell): Promise<string> {
  const read = async (program: string, args: string[]): Promise<string> => {
    const head = `$ ${[program, ...args].join(' ')}`;
    try {
      const r = await s.run(program, args, { timeoutMs: 60000 });
      return `${head}\n${(r.stdout + r.stderr).trim() || '(no output)'}`;
    } catch (e) {
      return `${head}\n(could not run it: ${(e as Error).message})`;
    }
  };
  return [
    await read('systemctl', ['status', HOST_AGENT_UNIT, '--no-pager', '-l']),
    await read('journalctl', ['-u', HOST_AGENT_UNIT, '-n', '50', '--no-pager']),
  ].join('\n');
}

/** An error for a failed start that carries what systemd said and what to do next. */
export class HostAgentStartError extends Error {
  constructor(
    readonly where: string,
    readonly command: CommandError,
    readonly diagnostics: string,
  ) {
    super(
      `${command.message}\n` +
        `The unit's status and journal on ${where} (the "status=N/NAME" exit code says which setup step ` +
        `failed: 200/CHDIR no /opt/xsm, 203/EXEC no /usr/bin/node, 226/NAMESPACE a sandboxing option ` +
        `or a missing path for it; an exit after "Started" is the agent's own error, e.g. 2 for its ` +
        `configuration in ${HOST_AGENT_ENV_FILE}). Fix it on the host, then \`systemctl restart ` +
        `${HOST_AGENT_UNIT}\` or retry the deploy step:\n${diagnostics}`,
    );
    this.name = 'HostAgentStartError';
  }
}

/** Writes the environment file and runs `systemctl enable --now` on the Dom0 behind `s`. */
export async function startHostAgentUnit(s: Shell, host: string, extraEnv: string): Promise<void> {
  await runChecked(s, 'install', ['-D', '-m', '0600', '/dev/stdin', HOST_AGENT_ENV_FILE], {
    input: hostAgentEnv(host, extraEnv),
  });
  try {
    await runChecked(s, 'systemctl', ['enable', '--now', HOST_AGENT_UNIT]);
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    throw new HostAgentStartError(s.where, e, await hostAgentDiagnostics(s));
  }
}
