// A real gmond (Debian's ganglia-monitor) for tests: its own config in a temp dir, UDP and TCP on free
// loopback ports, in the foreground, killed in teardown.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type AddressInfo } from 'node:net';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';

export const haveGmond = existsSync('/usr/sbin/gmond');

export interface Gmond {
  udpPort: number;
  tcpPort: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

async function freeTcpPort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const p = (s.address() as AddressInfo).port;
  s.close();
  return p;
}
async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const p = s.address().port;
  s.close();
  return p;
}

export async function startGmond(cluster = 'xsm-test'): Promise<Gmond> {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-gmond-'));
  const udpPort = await freeUdpPort();
  const tcpPort = await freeTcpPort();
  const conf = `globals {
  daemonize = no
  setuid = no
  debug_level = 0
  mute = no
  deaf = no
  host_dmax = 0
  cleanup_threshold = 300
  send_metadata_interval = 0
}
cluster { name = "${cluster}" }
udp_recv_channel { bind = 127.0.0.1  port = ${udpPort} }
tcp_accept_channel { bind = 127.0.0.1  port = ${tcpPort} }
`;
  await writeFile(join(dir, 'gmond.conf'), conf);
  const proc = spawn('/usr/sbin/gmond', ['-c', join(dir, 'gmond.conf'), '-f'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const until = Date.now() + 10000;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const c = connect(tcpPort, '127.0.0.1', () => (c.destroy(), r(true)));
      c.on('error', () => r(false));
    });
    if (ok) break;
    if (proc.exitCode !== null || Date.now() > until) throw new Error(`gmond did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    udpPort,
    tcpPort,
    proc,
    stop: async () => {
      proc.kill('SIGKILL');
      if (proc.exitCode === null) await once(proc, 'exit');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
