// The host agent's environment file as the deploy writes it on a new Dom0 (/etc/xsm/host-agent.env).
import test from 'ava';
import { hostAgentEnv } from '../../src/deploy/host-agent-unit.ts';

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
