// How the deploy starts XSM's host agent on a freshly installed Dom0: the image carries Node, XSM at
// /opt/xsm and the systemd unit (docker/xsm-host-agent.service); this gives the agent its host name and
// Redis in /etc/xsm/host-agent.env (0600: it may hold the Redis password), then enables and starts the
// unit, so it also starts at every later boot without the deploy server.

import { runChecked, type Shell } from '../drivers/shell.ts';

export const HOST_AGENT_UNIT = 'xsm-host-agent.service';
export const HOST_AGENT_ENV_FILE = '/etc/xsm/host-agent.env';

/** The unit's environment file: this host's name, the local toolstack, then the site's own lines. */
export function hostAgentEnv(host: string, extra: string): string {
  const lines = extra.trim() ? `${extra.trim()}\n` : '';
  return `XSM_HOST=${host}\nXSM_HYPERVISOR=xl\n${lines}`;
}

/** Writes the environment file and runs `systemctl enable --now` on the Dom0 behind `s`. */
export async function startHostAgentUnit(s: Shell, host: string, extraEnv: string): Promise<void> {
  await runChecked(s, 'install', ['-D', '-m', '0600', '/dev/stdin', HOST_AGENT_ENV_FILE], {
    input: hostAgentEnv(host, extraEnv),
  });
  await runChecked(s, 'systemctl', ['enable', '--now', HOST_AGENT_UNIT]);
}
