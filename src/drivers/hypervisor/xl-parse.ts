// Parsers for what `xl` prints (Xen 4.17). Pure functions, tested against output recorded on real Xen
// (test/drivers/fixtures/).

import type { DomainState, HostInfo } from './hypervisor.ts';

export interface XlListRow {
  name: string;
  domid: number;
  memMiB: number;
  vcpus: number;
  state: DomainState;
  cpuTimeSec: number;
}

/** The six state letters: r b p s <shutdown reason letter> d. A crash shows as `---sc-`. */
export function decodeState(flags: string): DomainState {
  if (flags.length !== 6) throw new Error(`xl list: state ${JSON.stringify(flags)} is not 6 characters`);
  if (flags[5] === 'd') return 'dying';
  if (flags[3] === 's') return flags[4] === 'c' ? 'crashed' : 'shutdown';
  if (flags[2] === 'p') return 'paused';
  if (flags[0] === 'r') return 'running';
  return 'blocked';
}

export function parseXlList(text: string): XlListRow[] {
  const rows: XlListRow[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('Name ')) continue;
    const f = line.trim().split(/\s+/);
    if (f.length < 6) throw new Error(`xl list: cannot read line ${JSON.stringify(line)}`);
    const [name, id, mem, vcpus, state, time] = f as [string, string, string, string, string, string];
    rows.push({
      name,
      domid: Number(id),
      memMiB: Number(mem),
      vcpus: Number(vcpus),
      state: decodeState(state),
      cpuTimeSec: Number(time),
    });
  }
  return rows;
}

export interface XlDomainDetails {
  domid: number;
  name: string;
  maxMemMiB?: number;
  targetMemMiB?: number;
  maxVcpus?: number;
  availVcpus?: number;
  weight?: number;
  /** `config.nics`: each vif's mac (and ip when the config gave one). */
  nics?: { mac: string; ip?: string }[];
}

const UNLIMITED_MEMKB = 17179869180;

/** `xl list -l`: a JSON array; every field may be missing (libxl omits defaults); memory in KiB. */
export function parseXlListLong(text: string): XlDomainDetails[] {
  const data: unknown = JSON.parse(text.trim() || '[]');
  if (!Array.isArray(data)) throw new Error('xl list -l: expected a JSON array');
  return data.map((entry: unknown) => {
    const e = (entry ?? {}) as {
      domid?: number;
      config?: {
        c_info?: { name?: string };
        b_info?: {
          max_memkb?: number;
          target_memkb?: number;
          max_vcpus?: number;
          avail_vcpus?: number[];
          sched_params?: { weight?: number };
        };
        nics?: { mac?: unknown; ip?: unknown }[];
      };
    };
    const b = e.config?.b_info ?? {};
    const out: XlDomainDetails = { domid: Number(e.domid ?? -1), name: e.config?.c_info?.name ?? '' };
    // A Dom0 with no ceiling shows max_memkb 17179869180 (16 TiB less a page: "unlimited", recorded on
    // real Xen 4.17); that is no maximum to report, so the caller falls back to the current size.
    if (typeof b.max_memkb === 'number' && b.max_memkb < UNLIMITED_MEMKB)
      out.maxMemMiB = Math.floor(b.max_memkb / 1024);
    if (typeof b.target_memkb === 'number') out.targetMemMiB = Math.floor(b.target_memkb / 1024);
    if (typeof b.max_vcpus === 'number') out.maxVcpus = b.max_vcpus;
    if (Array.isArray(b.avail_vcpus)) out.availVcpus = b.avail_vcpus.length;
    if (typeof b.sched_params?.weight === 'number') out.weight = b.sched_params.weight;
    const nics = (Array.isArray(e.config?.nics) ? e.config.nics : [])
      .filter((n) => typeof n?.mac === 'string')
      .map((n) => ({ mac: String(n.mac).toLowerCase(), ...(typeof n.ip === 'string' && n.ip ? { ip: n.ip } : {}) }));
    if (nics.length) out.nics = nics;
    return out;
  });
}

export function parseXlInfo(text: string): HostInfo & { raw: Map<string, string> } {
  const raw = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) raw.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  const num = (k: string) => {
    const v = Number(raw.get(k));
    if (!Number.isFinite(v)) throw new Error(`xl info: no numeric ${k}`);
    return v;
  };
  return {
    host: raw.get('host') ?? '',
    totalMemMiB: num('total_memory'),
    freeMemMiB: num('free_memory'),
    nrCpus: num('nr_cpus'),
    xenVersion: raw.get('xen_version') ?? '',
    scheduler: raw.get('xen_scheduler') ?? '',
    raw,
  };
}

/** xl error texts that mean "no, and asking again will not help". */
const REFUSALS = [
  /segment kernel too large/,
  /already exists/,
  /is an invalid domain identifier/,
  /does not exist/,
  /failed to free memory/i,
  /Cannot set vcpus/i,
  /invalid memory size/,
  /cannot set .* memory/i,
  /overcommmitting/,
  /not enough memory/i,
  /Migration failed due to problems at target/,
];

export function isRefusal(stderr: string): boolean {
  return REFUSALS.some((re) => re.test(stderr));
}

/**
 * What to do when libxl killed a hotplug script for its timeout (`async_exec_timeout`: 40 s in Xen 4.17),
 * or undefined. The bare libxl lines name neither the cause nor the next step. On the qemu lab every create of
 * a guest with its disk on an NFS pool died so (test/xen-lab/results/storage-proof-run2, -run3); run 3 found
 * the script was not slow but starved: the Dom0 was stuck in soft lockups while `xl` unmapped the guest's
 * memory page by page, and `losetup` on the same file took 0.6 s. Hence the starved Dom0 is named first.
 */
export function hotplugTimeoutHint(stderr: string): string | undefined {
  const m = /killing execution of (\S+) (add|remove|online|offline) because of timeout/.exec(stderr);
  if (!m) return undefined;
  const script = m[1]!;
  const what = /\/block(-\w+)?$/.test(script)
    ? "the guest's disk was not attached; if the Dom0 is not starved, time `losetup -f --show FILE` on the disk's file there (a slow or hung network pool shows there)"
    : /\/vif/.test(script)
      ? "the guest's network interface was not attached: check the bridge the site file names exists in the Dom0"
      : 'the device was not attached';
  return (
    `Xen's hotplug script \`${script} ${m[2]}\` outlasted libxl's timeout, so ${what}. ` +
    'First look for a starved Dom0: soft lockups in its `dmesg` or a high load mean the script never got the CPU ' +
    "(retry when it is calmer, or give Dom0 more CPU). The script's own messages are in the Dom0's /var/log/xen/xen-hotplug.log."
  );
}
