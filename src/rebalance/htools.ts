// Ganeti interop: reads the cluster snapshot hbal reads with -t (htools' text backend) and the dynamic
// utilisation file it reads with -U, into the rebalancer's hosts and VMs, so operators coming from Ganeti
// can compare both planners on their own clusters. Pure: text in, typed values or located errors out.
//
// Text backend: sections separated by an empty line: node groups, nodes, instances, then optional cluster
// tags and instance policies.
//   group:    name|uuid|alloc_policy|...
//   node:     name|t_mem|n_mem|f_mem|t_disk|f_disk|t_cpu|offline(Y/N)|group_uuid|spindles|...
//   instance: name|mem|disk|vcpus|status|auto_balance(Y/N)|pnode|snode|disk_template|tags|spindle_use|...
//   ipolicy:  owner|minmax specs|std spec|disk_templates|vcpu_ratio|spindle_ratio
// Utilisation: one line per instance: name cpu mem disk net (instances left out count 1 of each, as hbal).

import type { BalanceHost, BalanceVm } from './rules.ts';

export class HtoolsError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    message: string,
  ) {
    super(`${file}:${line}: ${message}`);
  }
}

export interface HtoolsCluster {
  hosts: BalanceHost[];
  vms: BalanceVm[];
  /** vCPUs per CPU the cluster's policy allows (hbal's vcpu-ratio; 4 unless the snapshot says). */
  maxVcpuRatio: number;
}

/** hbal's default instance policy: at most 4 vCPUs per physical CPU. */
const DEFAULT_VCPU_RATIO = 4;

interface Line {
  no: number;
  fields: string[];
}

/** Splits the text into blank-line separated sections of '|'-separated lines, keeping line numbers. */
function sections(text: string): Line[][] {
  const out: Line[][] = [[]];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === '') {
      if (out.at(-1)!.length) out.push([]);
      return;
    }
    out.at(-1)!.push({ no: i + 1, fields: raw.split('|') });
  });
  if (!out.at(-1)!.length) out.pop();
  return out;
}

export function parseHtools(text: string, file: string, utilText?: string, utilFile = 'util'): HtoolsCluster {
  const secs = sections(text);
  const err = (line: number, msg: string) => new HtoolsError(file, line, msg);
  if (secs.length < 3)
    throw err(
      text.split('\n').length,
      `expected three sections separated by empty lines (groups, nodes, instances); found ${secs.length}`,
    );
  const [groups, nodes, insts] = secs as [Line[], Line[], Line[]];
  const num = (l: Line, i: number, what: string, { integer = false, min = 0 } = {}): number => {
    const s = l.fields[i];
    if (s === undefined) throw err(l.no, `field ${i + 1} (${what}) is missing`);
    const v = Number(s);
    if (s.trim() === '' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min)
      throw err(
        l.no,
        `field ${i + 1} (${what}) must be ${integer ? 'a whole number' : 'a number'} >= ${min}, not "${s}"`,
      );
    return v;
  };
  const groupIds = new Set<string>();
  for (const g of groups) {
    if (g.fields.length < 3) throw err(g.no, 'a node group needs name|uuid|alloc_policy');
    groupIds.add(g.fields[1]!);
  }
  const hosts: BalanceHost[] = [];
  const free = new Map<string, number>();
  for (const l of nodes) {
    if (l.fields.length < 9)
      throw err(
        l.no,
        `a node needs at least 9 fields (name|t_mem|n_mem|f_mem|t_disk|f_disk|t_cpu|offline|group), found ${l.fields.length}`,
      );
    const name = l.fields[0]!;
    if (!name) throw err(l.no, 'node name is empty');
    if (free.has(name)) throw err(l.no, `node ${name} is listed twice`);
    const tMem = num(l, 1, 't_mem', { integer: true, min: 1 });
    num(l, 2, 'n_mem', { integer: true });
    const fMem = num(l, 3, 'f_mem', { integer: true });
    const cpus = num(l, 6, 't_cpu', { min: 1 });
    const offline = l.fields[7];
    if (offline !== 'Y' && offline !== 'N') throw err(l.no, `field 8 (offline) must be Y or N, not "${offline}"`);
    if (!groupIds.has(l.fields[8]!)) throw err(l.no, `node ${name} names group ${l.fields[8]}, which is not listed`);
    free.set(name, fMem);
    // An offline node is left by its instances and receives none: the rebalancer's maintenance.
    hosts.push({
      name,
      cpus,
      memMiB: fMem,
      totalMemMiB: tMem,
      loadPool: 1,
      // hbal's node uses one CPU itself (its uCpu starts at 1): the same vCPU ratio as hcheck scores.
      dom0Vcpus: 1,
      ...(offline === 'Y' ? { maintenance: true } : {}),
    });
  }
  const byHost = new Map(hosts.map((h) => [h.name, h]));
  const vms: BalanceVm[] = [];
  const seen = new Set<string>();
  for (const l of insts) {
    if (l.fields.length < 9)
      throw err(
        l.no,
        `an instance needs at least 9 fields (name|mem|disk|vcpus|status|auto_balance|pnode|snode|disk_template), found ${l.fields.length}`,
      );
    const name = l.fields[0]!;
    if (!name) throw err(l.no, 'instance name is empty');
    if (seen.has(name)) throw err(l.no, `instance ${name} is listed twice`);
    seen.add(name);
    const mem = num(l, 1, 'mem', { integer: true });
    const vcpus = num(l, 3, 'vcpus', { integer: true, min: 1 });
    const auto = l.fields[5];
    if (auto !== 'Y' && auto !== 'N') throw err(l.no, `field 6 (auto_balance) must be Y or N, not "${auto}"`);
    const host = byHost.get(l.fields[6]!);
    if (!host) throw err(l.no, `instance ${name} is on node ${l.fields[6]}, which is not listed`);
    // Only running instances hold node memory (as Ganeti counts it); f_mem already excludes theirs.
    const running = l.fields[4] === 'running';
    const memMiB = running ? mem : 0;
    host.memMiB += memMiB;
    vms.push({
      name,
      host: host.name,
      memMiB,
      vcpus,
      cpuLoad: 1,
      memLoad: 1,
      diskLoad: 1,
      netLoad: 1,
      ...(auto === 'N' ? { pinned: true } : {}),
    });
  }
  let maxVcpuRatio = DEFAULT_VCPU_RATIO;
  for (const l of secs[4] ?? []) {
    if (l.fields[0] === '' && l.fields.length >= 6) maxVcpuRatio = num(l, 4, 'vcpu_ratio');
  }
  if (utilText !== undefined) applyUtil(vms, utilText, utilFile);
  return { hosts, vms, maxVcpuRatio };
}

/** hbal's -U file: `name cpu mem disk net` per line; names not in the snapshot are refused. */
function applyUtil(vms: BalanceVm[], text: string, file: string): void {
  const byName = new Map(vms.map((v) => [v.name, v]));
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === '') return;
    const f = raw.trim().split(/\s+/);
    if (f.length !== 5)
      throw new HtoolsError(file, i + 1, `expected "name cpu mem disk net", found ${f.length} fields`);
    const v = byName.get(f[0]!);
    if (!v) throw new HtoolsError(file, i + 1, `instance ${f[0]} is not in the cluster snapshot`);
    const [cpu, mem, disk, net] = f.slice(1).map((s, k) => {
      const x = Number(s);
      if (!Number.isFinite(x) || x < 0)
        throw new HtoolsError(file, i + 1, `field ${k + 2} must be a number >= 0, not "${s}"`);
      return x;
    }) as [number, number, number, number];
    Object.assign(v, { cpuLoad: cpu, memLoad: mem, diskLoad: disk, netLoad: net });
  });
}

/** The placement back as htools text (for hcheck), with each node's free memory after the moves. */
export function writeHtools(original: string, placement: ReadonlyMap<string, string>): string {
  const secs = original.split(/\r?\n\r?\n/);
  const nodes = secs[1]!.split('\n').filter(Boolean);
  const insts = secs[2]!.split('\n').filter(Boolean);
  const delta = new Map<string, number>();
  const moved = insts.map((line) => {
    const f = line.split('|');
    const to = placement.get(f[0]!);
    if (to && to !== f[6]) {
      const mem = f[4] === 'running' ? Number(f[1]) : 0;
      delta.set(f[6]!, (delta.get(f[6]!) ?? 0) + mem);
      delta.set(to, (delta.get(to) ?? 0) - mem);
      f[6] = to;
    }
    return f.join('|');
  });
  const nodesOut = nodes.map((line) => {
    const f = line.split('|');
    f[3] = String(Number(f[3]) + (delta.get(f[0]!) ?? 0));
    return f.join('|');
  });
  return [secs[0], nodesOut.join('\n'), moved.join('\n'), ...secs.slice(3)].join('\n\n');
}
