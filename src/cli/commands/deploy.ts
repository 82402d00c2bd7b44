// `xsm host deploy`: install bare machines (named by boot MAC, declared in the site file) as Xen Dom0s.

import { defineCommand, EXIT } from '../command.ts';

export const hostDeploy = defineCommand({
  name: 'host deploy',
  summary:
    'PXE-boot, image and verify machines as Xen hosts (one durable job each; follow with xsm jobs --watch --queue deploy)',
  positionals: [{ name: 'MAC', variadic: true, description: 'boot MAC of a machine declared in the site file' }],
  options: {
    method: {
      type: 'choice',
      choices: ['unicast', 'multicast', 'broadcast', 'chain'],
      description: 'how the image travels: unicast (rsync), multicast or broadcast (udpcast) or chain (host to host)',
    },
    image: {
      type: 'string',
      value: 'NAME[:VERSION]',
      description: 'the image to install (default dom0; without :VERSION, its newest version)',
    },
    disk: { type: 'string', value: 'DEVICE', description: 'the disk to install on, e.g. /dev/sda' },
  },
  async run({ positionals: { MAC }, options }, { io, api, result }) {
    const body = {
      macs: MAC,
      ...(options.method ? { method: options.method } : {}),
      ...(options.image !== undefined ? { image: options.image } : {}),
      ...(options.disk !== undefined ? { disk: options.disk } : {}),
    };
    const r = await api().call<{ session: string; jobs: { host: string; mac: string; jobId: string }[] }>(
      'POST',
      '/api/hosts/deploy',
      { json: body },
    );
    for (const j of r.jobs) io.out(`${j.host} (${j.mac}): job ${j.jobId}`);
    io.out(`session ${r.session}; follow with: xsm jobs --watch --queue deploy`);
    result(r);
    return EXIT.ok;
  },
});
