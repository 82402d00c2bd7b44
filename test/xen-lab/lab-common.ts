// What the real-Xen lab scripts share: their run log, their stop on SIGINT, and the site file of the tiny lab guest.

import { createLogger, type Logger } from '../../src/lib/log.ts';

export const secs = (ms: number) => (ms / 1000).toFixed(1);

/** The run log: XSM's structured lines and the script's own (`say`), in order, on stderr and in `lines`. */
export function runLog(tag: string): { lines: string[]; t0: number; say(msg: string): void; log: Logger } {
  const lines: string[] = [];
  const t0 = Date.now();
  const emit = (line: string) => {
    lines.push(line);
    process.stderr.write(line + '\n');
  };
  return {
    lines,
    t0,
    say: (msg) => emit(`[${tag} +${secs(Date.now() - t0)}s] ${msg}`),
    log: createLogger({}, 'info', emit),
  };
}

/**
 * What a lab run must undo (machines, taps, the bridge, its servers), undone newest first by `cleanup`. Calls
 * that come while one runs share it: two concurrent runs over one array (each reversing it in place) once
 * exited the process half-way and left two machines running (storage-proof runs 5-6, on a double SIGINT).
 * Undos added after a cleanup ended are run by the next one.
 */
export function labCleanup(say: (msg: string) => void): {
  cleanups: (() => Promise<void> | void)[];
  cleanup(): Promise<void>;
} {
  const cleanups: (() => Promise<void> | void)[] = [];
  let running: Promise<void> | undefined;
  const cleanup = () =>
    (running ??= (async () => {
      try {
        for (let undo = cleanups.pop(); undo; undo = cleanups.pop()) {
          try {
            await undo();
          } catch (e) {
            say(`cleanup: ${e instanceof Error ? e.message : String(e)}`);
          }
        }
      } finally {
        running = undefined;
      }
    })());
  return { cleanups, cleanup };
}

/**
 * Closes a worker or an agent, or gives up waiting after `ms`: each closes once its running job ends, which a
 * hung `xl` on a broken Dom0 never does, and a deploy job's verify-xen waits up to 10 minutes for a Dom0 that
 * crashed in its boot (storage run 14: stopped while both Dom0s lay panicked, the run's cleanup sat in that
 * wait with both machines and the bridge still up).
 */
export async function closeWithin(
  what: string,
  close: () => Promise<unknown>,
  ms: number,
  say: (msg: string) => void,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), ms)));
  const done = await Promise.race([close().then(() => 'closed' as const), late]);
  clearTimeout(timer);
  if (done === 'late') say(`cleanup: ${what} did not close within ${ms / 1000} s (a job still running); going on`);
}

/**
 * `stop` on the first SIGINT, once: `pkill -INT -f SCRIPT` reaches both tsx and the script it forwards the
 * signal to, and a second run of `stop` wrote the "interrupted" phase twice (storage-proof runs 5-6).
 */
export function onFirstSigint(stop: () => void): void {
  let stopping = false;
  process.removeAllListeners('SIGINT');
  process.on('SIGINT', () => {
    if (stopping) return;
    stopping = true;
    stop();
  });
}

export const TINY_GUEST = 'tiny';

/**
 * A site file with the given <Host> lines and, when `vm` is given, the tiny guest on one of them. The
 * guest is the probe's (fixtures/real/tiny.cfg): Debian's kernel + a busybox initramfs, put into the Dom0
 * by the lab's artifacts (/lab/guest); PVH, since PV guests fault under TCG; 96 MiB is the least that
 * kernel boots in.
 */
export function tinyGuestSite(
  hostsXml: string,
  vm?: { host: string; mem: number; vcpus: number; hwaddr: string; owner: string },
): string {
  const vmXml = vm
    ? `
  <Set name="lab">
    <Owner>${vm.owner}</Owner>
    <VM name="${TINY_GUEST}" config="tinyguest">
      <DOM0>${vm.host}</DOM0><VCPUS>${vm.vcpus}</VCPUS><HWADDR>${vm.hwaddr}</HWADDR><IP>DHCP</IP><MEM>${vm.mem}</MEM>
    </VM>
  </Set>`
    : '';
  return `<?xml version="1.0" encoding="UTF-8"?>
<XSMConfig>
  <Hosts>
${hostsXml}
  </Hosts>
  <Templates>
    <Template name="tinyguest" type="pvh" maxmem="96" maxvcpus="2">
      <Kernel>/lab/guest/vmlinuz</Kernel>
      <Ramdisk>/lab/guest/initrd.cpio.gz</Ramdisk>
      <Extra>console=hvc0 loglevel=4</Extra>
      <Bridge>xenbr0</Bridge>
    </Template>
  </Templates>${vmXml}
</XSMConfig>
`;
}
