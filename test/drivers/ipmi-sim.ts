// OpenIPMI's BMC simulator (ipmi_sim, Debian `openipmi`) as a test BMC: IPMI 2.0 over LAN on a free loopback
// port, one admin user, and a chassis-control hook this file writes, which keeps the simulated chassis's
// power and boot device in files and logs every call ipmi_sim makes to it.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const haveIpmiSim =
  spawnSync('ipmi_sim', ['-h'], { stdio: 'ignore' }).error === undefined &&
  spawnSync('ipmitool', ['-V'], { stdio: 'ignore' }).error === undefined;

// `<device> get parm...` prints `parm:value` lines; `<device> set parm value...` changes them. Power is 1 or 0;
// a power cycle arrives as `set power 0` then `set power 1`.
const CHASSIS = `#!/bin/sh
dir=$(dirname "$0")
shift
op=$1
shift
echo "$op $*" >> "$dir/calls"
case $op in
get)
  for p in "$@"; do
    case $p in
      power) echo "power:$(cat "$dir/power")" ;;
      boot) echo "boot:$(cat "$dir/boot")" ;;
      *) echo "no such parameter: $p"; exit 1 ;;
    esac
  done ;;
set)
  while [ $# -gt 1 ]; do
    case $1 in
      power) echo "$2" > "$dir/power" ;;
      boot) echo "$2" > "$dir/boot" ;;
    esac
    shift 2
  done ;;
esac
`;

export interface IpmiSim {
  port: number;
  user: string;
  password: string;
  dir: string;
  /** The chassis as the hook keeps it. */
  power(): Promise<'on' | 'off'>;
  boot(): Promise<string>;
  /** Every call ipmi_sim made to the hook (`get power`, `set power 0`, ...). */
  calls(): Promise<string[]>;
  /** The BMC stops answering (SIGSTOP): its process is alive, no packet is answered. */
  freeze(): void;
  stop(): Promise<void>;
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function startIpmiSim(power: 'on' | 'off' = 'off'): Promise<IpmiSim> {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-ipmi-sim-'));
  const port = await freeUdpPort();
  const user = 'admin';
  const password = 'xsm-bmc-pass';
  await writeFile(join(dir, 'chassis'), CHASSIS);
  await chmod(join(dir, 'chassis'), 0o755);
  await writeFile(join(dir, 'power'), power === 'on' ? '1\n' : '0\n');
  await writeFile(join(dir, 'boot'), 'default\n');
  await writeFile(join(dir, 'calls'), '');
  await mkdir(join(dir, 'state'));
  await writeFile(
    join(dir, 'lan.conf'),
    [
      'name "xsm"',
      'set_working_mc 0x20',
      '  startlan 1',
      `    addr 127.0.0.1 ${port}`,
      '    priv_limit admin',
      '    allowed_auths_callback md5',
      '    allowed_auths_user md5',
      '    allowed_auths_operator md5',
      '    allowed_auths_admin md5',
      '    guid a123456789abcdefa123456789abcdef',
      '  endlan',
      `  chassis_control "${join(dir, 'chassis')} 0x20"`,
      `  user 2 true "${user}" "${password}" admin 10 md5`,
      '',
    ].join('\n'),
  );
  await writeFile(
    join(dir, 'bmc.emu'),
    'mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n',
  );
  // ipmi_sim reads commands on stdin and cannot watch /dev/null: give it a pipe that stays open.
  const proc: ChildProcess = spawn(
    'ipmi_sim',
    ['-c', join(dir, 'lan.conf'), '-f', join(dir, 'bmc.emu'), '-s', join(dir, 'state')],
    { stdio: ['pipe', 'ignore', 'ignore'] },
  );
  const sim: IpmiSim = {
    port,
    user,
    password,
    dir,
    power: async () => ((await readFile(join(dir, 'power'), 'utf8')).trim() === '1' ? 'on' : 'off'),
    boot: async () => (await readFile(join(dir, 'boot'), 'utf8')).trim(),
    calls: async () => (await readFile(join(dir, 'calls'), 'utf8')).split('\n').filter(Boolean),
    freeze: () => void proc.kill('SIGSTOP'),
    stop: async () => {
      proc.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
  // Ready once an ipmitool session gets an answer.
  for (let i = 0; i < 50; i++) {
    const r = spawnSync(
      'ipmitool',
      [
        ...['-I', 'lanplus', '-H', '127.0.0.1', '-p', String(port), '-U', user, '-E', '-N', '1', '-R', '1'],
        ...['chassis', 'power', 'status'],
      ],
      { env: { ...process.env, IPMI_PASSWORD: password }, encoding: 'utf8' },
    );
    if (r.status === 0) {
      await writeFile(join(dir, 'calls'), '');
      return sim;
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  await sim.stop();
  throw new Error('ipmi_sim did not answer on its LAN port within 5 s');
}
