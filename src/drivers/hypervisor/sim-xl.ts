// `xl` for a simulated Xen host: answers `xl info` and `xl list` from the simulator's state, in xl's own
// output format (keys padded to 23 characters, as xl_info.c prints them), so a test lab's "installed
// system" is checked over SSH with the same commands and parser as a real Dom0.
//   XSM_SIM_DIR (state directory), XSM_SIM_HOST (host name); the host is provisioned on first use with
//   XSM_SIM_MEM_MIB / XSM_SIM_CPUS (defaults 4096 / 4).

import { DirSimStore, SimulatedXenHost, provisionSimHost } from './simulated.ts';

const pad = (k: string) => k.padEnd(23);

async function main(argv: string[]): Promise<number> {
  const dir = process.env.XSM_SIM_DIR;
  const host = process.env.XSM_SIM_HOST;
  if (!dir || !host) {
    process.stderr.write('xl (simulated): set XSM_SIM_DIR and XSM_SIM_HOST\n');
    return 2;
  }
  const store = new DirSimStore(dir);
  if (!(await store.read(host)))
    await provisionSimHost(store, {
      name: host,
      totalMemMiB: Number(process.env.XSM_SIM_MEM_MIB ?? 4096),
      nrCpus: Number(process.env.XSM_SIM_CPUS ?? 4),
    });
  const hv = new SimulatedXenHost(store, host);
  const cmd = argv[0];
  if (cmd === 'info') {
    const i = await hv.info();
    const [major, minor, ...extra] = i.xenVersion.split('.');
    const lines: [string, string | number][] = [
      ['host', i.host],
      ['release', 'simulated'],
      ['machine', 'x86_64'],
      ['nr_cpus', i.nrCpus],
      ['total_memory', i.totalMemMiB],
      ['free_memory', i.freeMemMiB],
      ['xen_major', major ?? ''],
      ['xen_minor', minor ?? ''],
      ['xen_extra', extra.length ? `.${extra.join('.')}` : ''],
      ['xen_version', i.xenVersion],
      ['xen_scheduler', i.scheduler],
      ['xend_config_format', 4],
    ];
    process.stdout.write(lines.map(([k, v]) => `${pad(k)}: ${v}`).join('\n') + '\n');
    return 0;
  }
  if (cmd === 'list') {
    const rows = await hv.list();
    process.stdout.write('Name                                        ID   Mem VCPUs\tState\tTime(s)\n');
    for (const d of rows)
      process.stdout.write(
        `${d.name.padEnd(40)}${String(d.domid).padStart(6)}${String(d.memMiB).padStart(6)}${String(d.vcpus).padStart(6)}     r-----${d.cpuTimeSec.toFixed(1).padStart(11)}\n`,
      );
    return 0;
  }
  process.stderr.write(
    `xl (simulated): command "${cmd ?? ''}" is not simulated here; use the host agent with XSM_HYPERVISOR=sim\n`,
  );
  return 1;
}

main(process.argv.slice(2)).then(
  (c) => process.exit(c),
  (e: unknown) => {
    process.stderr.write(`xl: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
