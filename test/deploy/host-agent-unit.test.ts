// The host agent's environment file as the deploy writes it on a new Dom0 (/etc/xsm/host-agent.env).
import { readFileSync } from 'node:fs';
import test from 'ava';
import { HostAgentStartError, hostAgentEnv, startHostAgentUnit } from '../../src/deploy/host-agent-unit.ts';
import type { Shell } from '../../src/drivers/shell.ts';

test("names the host and the local toolstack, then the site's own lines, one per line", (t) => {
  t.is(
    hostAgentEnv('xen01', 'XSM_REDIS_URL=redis://:pw@10.0.0.1:6379\nXSM_PREFIX=site\n'),
    'XSM_HOST=xen01\nXSM_HYPERVISOR=xl\nXSM_REDIS_URL=redis://:pw@10.0.0.1:6379\nXSM_PREFIX=site\n',
  );
});

test('without extra lines the file still ends with a newline and has no blank line', (t) => {
  t.is(hostAgentEnv('xen01', ''), 'XSM_HOST=xen01\nXSM_HYPERVISOR=xl\n');
  t.is(hostAgentEnv('xen01', '\n  \n'), 'XSM_HOST=xen01\nXSM_HYPERVISOR=xl\n');
});

/** A Dom0 whose `systemctl enable --now` fails as run 6's did; records what ran. */
function failingDom0(): { shell: Shell; ran: string[] } {
  const ran: string[] = [];
  const shell: Shell = {
    where: 'root@10.0.0.5',
    run(program, args) {
      const line = [program, ...args].join(' ');
      ran.push(line);
      if (line === 'systemctl enable --now xsm-host-agent.service')
        return Promise.resolve({
          code: 1,
          stdout: '',
          stderr: 'Job for xsm-host-agent.service failed because the control process exited with error code.',
        });
      if (program === 'systemctl')
        return Promise.resolve({
          code: 3,
          stdout:
            '× xsm-host-agent.service\n   Process: 812 ExecStart=/usr/bin/node (code=exited, status=226/NAMESPACE)',
          stderr: '',
        });
      if (program === 'journalctl') return Promise.reject(new Error('connection lost'));
      return Promise.resolve({ code: 0, stdout: '', stderr: '' });
    },
  };
  return { shell, ran };
}

test('a failed start says what systemd said about the unit and what to do next', async (t) => {
  const { shell, ran } = failingDom0();
  const e = await t.throwsAsync(startHostAgentUnit(shell, 'xen01', ''), { instanceOf: HostAgentStartError });
  t.deepEqual(ran.slice(1), [
    'systemctl enable --now xsm-host-agent.service',
    'systemctl status xsm-host-agent.service --no-pager -l',
    'journalctl -u xsm-host-agent.service -n 50 --no-pager',
  ]);
  t.regex(e.message, /control process exited with error code/);
  t.regex(e.message, /status=226\/NAMESPACE/);
  // A journal that cannot be read does not hide the status (nor the original error).
  t.regex(e.message, /journalctl -u xsm-host-agent.service -n 50 --no-pager\n\(could not run it: connection lost\)/);
  t.regex(e.message, /systemctl restart xsm-host-agent.service/);
});

test('the unit starts on a Dom0 where the paths it makes writable do not exist yet', (t) => {
  const unit = readFileSync(new URL('../../docker/xsm-host-agent.service', import.meta.url), 'utf8');
  const values = (key: string) =>
    unit
      .split('\n')
      .filter((l) => l.startsWith(`${key}=`))
      .flatMap((l) => l.slice(key.length + 1).split(/\s+/));
  const writable = values('ReadWritePaths');
  t.true(writable.length > 0);
  // systemd sets up the mount namespace before any Exec line runs, ExecStartPre=+ included: a missing
  // path without "-" fails the start with 226/NAMESPACE (lab run 6), before the mkdir can make it.
  for (const p of writable) t.true(p.startsWith('-'), `${p} needs "-"`);
  // ...and the ExecStartPre makes them, so the agent gets them writable from its first start on.
  const made = values('ExecStartPre').filter((w) => w.startsWith('/'));
  t.deepEqual(
    made,
    writable.map((p) => p.slice(1)),
  );
});
