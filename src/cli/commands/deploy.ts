// `xsm host deploy`: install bare machines (named by boot MAC, declared in the site file) as Xen Dom0s.

import { apiClient, ApiCallError } from '../api-client.ts';
import { parseArgs, UsageError, type Command } from '../command.ts';

export const hostDeploy: Command = {
  name: 'host deploy',
  usage: 'xsm host deploy MAC... [--method unicast|multicast|chain] [--image NAME] [--disk /dev/sda]',
  summary:
    'PXE-boot, image and verify machines as Xen hosts (one durable job each; follow with xsm jobs --watch --queue deploy)',
  async run(args, io) {
    const { positional, flags } = parseArgs(args, ['method', 'image', 'disk']);
    if (!positional.length) throw new UsageError('give the boot MAC of at least one machine');
    const method = flags.get('method');
    if (method !== undefined && method !== 'unicast' && method !== 'multicast' && method !== 'chain')
      throw new UsageError('--method is unicast (rsync), multicast (udpcast) or chain');
    const body = {
      macs: positional,
      ...(method ? { method } : {}),
      ...(typeof flags.get('image') === 'string' ? { image: flags.get('image') } : {}),
      ...(typeof flags.get('disk') === 'string' ? { disk: flags.get('disk') } : {}),
    };
    try {
      const r = await apiClient().call<{ session: string; jobs: { host: string; mac: string; jobId: string }[] }>(
        'POST',
        '/api/hosts/deploy',
        { json: body },
      );
      for (const j of r.jobs) io.out(`${j.host} (${j.mac}): job ${j.jobId}`);
      io.out(`session ${r.session}; follow with: xsm jobs --watch --queue deploy`);
      return 0;
    } catch (e) {
      if (e instanceof ApiCallError) {
        io.err(e.message);
        return 1;
      }
      throw e;
    }
  },
};
