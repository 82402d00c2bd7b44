// The simulated Xen host: a hypervisor driver for machines without Xen (a laptop, CI). It keeps real
// state — memory (Dom0's share included), pCPUs, domains with ids, states, cpu time — and refuses what
// xl would refuse, with xl's words. State lives in a SimStore: in memory (fast, for benchmarks) or in a
// directory, one JSON file per host, so it outlives the agent process that drives it (as Xen outlives xl).

import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { xlConfigName } from '../../site/xl-config.ts';
import { readDomainConfig } from './domain-config.ts';
import {
  HypervisorRefusal,
  isConfigFileName,
  type ConfigFiles,
  type DomainConfig,
  type DomainInfo,
  type DomainState,
  type HostInfo,
  type Hypervisor,
  type MigrationTarget,
} from './hypervisor.ts';

export interface SimDomain {
  name: string;
  domid: number;
  state: DomainState;
  memMiB: number;
  maxMemMiB: number;
  vcpus: number;
  maxVcpus: number;
  /** CPU seconds accumulated up to `tickAt`. */
  cpuTimeSec: number;
  tickAt: number;
  /** Fraction of each vCPU the guest keeps busy (0..1); drives cpu time and the metrics. */
  utilisation: number;
  weight: number;
  config: string;
}

export interface SimHostState {
  name: string;
  totalMemMiB: number;
  dom0MemMiB: number;
  nrCpus: number;
  powered: boolean;
  /** When set, every command fails with this message (a broken host for failure tests). */
  failing?: string;
  nextDomid: number;
  domains: SimDomain[];
  /** The Dom0's xl config directory (default /etc/xen) and the files in it, as an operator wrote them. */
  configDir?: string;
  configFiles?: { name: string; text: string }[];
}

/** Where a simulated Dom0 keeps its xl config files unless its state says otherwise. */
export const SIM_CONFIG_DIR = '/etc/xen';

export interface SimStore {
  read(host: string): Promise<SimHostState | undefined>;
  /** Runs `fn` on the host's state under an exclusive lock and saves what it leaves. */
  update<T>(host: string, fn: (state: SimHostState) => T): Promise<T>;
  put(state: SimHostState): Promise<void>;
}

export class MemorySimStore implements SimStore {
  /** Each state is frozen once written and replaced, never changed, by update(): readers can share it.
   *  A clone at every read was a tenth of a simulated agent's CPU in the apply benchmark; freezing makes
   *  any reader that tries to change what it read fail loudly instead. */
  private readonly hosts = new Map<string, SimHostState>();
  async read(host: string) {
    return this.hosts.get(host);
  }
  async update<T>(host: string, fn: (s: SimHostState) => T): Promise<T> {
    const s = this.hosts.get(host);
    if (!s) throw new HypervisorRefusal(host, 'no such simulated host');
    // Work on a copy so a refusal thrown half-way leaves the state as it was.
    const copy = copyState(s);
    const out = fn(copy);
    this.hosts.set(host, deepFreeze(copy));
    return out;
  }
  async put(state: SimHostState) {
    this.hosts.set(state.name, deepFreeze(structuredClone(state)));
  }
}

/**
 * A copy `update` may change anywhere: the state's fields are plain values and arrays of flat records, so
 * copying the arrays and their records is a deep copy (structuredClone of the whole host at every change
 * was most of the simulator's update in the apply benchmark). A field added later that nests deeper stays
 * frozen in the copy, so a change to it throws rather than reaching the stored state.
 */
function copyState(s: SimHostState): SimHostState {
  // Object.assign, not a literal starting with `...s`: V8 writes the fields after such a spread on a slow path.
  return Object.assign({}, s, {
    domains: s.domains.map((d) => ({ ...d })),
    ...(s.configFiles ? { configFiles: s.configFiles.map((f) => ({ ...f })) } : {}),
  });
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** One JSON file per host, written by rename; a lock file (O_EXCL) serialises writers across processes. */
export class DirSimStore implements SimStore {
  constructor(readonly dir: string) {}
  private file(host: string) {
    return join(this.dir, `${host}.json`);
  }
  async read(host: string): Promise<SimHostState | undefined> {
    try {
      return JSON.parse(await readFile(this.file(host), 'utf8')) as SimHostState;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }
  async put(state: SimHostState): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await this.locked(state.name, async () => this.write(state));
  }
  private async write(state: SimHostState): Promise<void> {
    const tmp = `${this.file(state.name)}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(state));
    await rename(tmp, this.file(state.name));
  }
  async update<T>(host: string, fn: (s: SimHostState) => T): Promise<T> {
    return this.locked(host, async () => {
      const s = await this.read(host);
      if (!s) throw new HypervisorRefusal(host, 'no such simulated host');
      const out = fn(s);
      await this.write(s);
      return out;
    });
  }
  private async locked<T>(host: string, fn: () => Promise<T>): Promise<T> {
    const lock = join(this.dir, `${host}.lock`);
    for (let attempt = 0; ; attempt++) {
      try {
        const h = await open(lock, 'wx');
        await h.writeFile(String(process.pid));
        await h.close();
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        // A lock older than 5 s belongs to a process that died holding it (kill -9): take it over.
        const age = await stat(lock).then(
          (s) => Date.now() - s.mtimeMs,
          () => 0,
        );
        if (age > 5000) await rm(lock, { force: true });
        else await new Promise((r) => setTimeout(r, Math.min(2 + attempt, 20)));
      }
    }
    try {
      return await fn();
    } finally {
      await rm(lock, { force: true });
    }
  }
}

export interface SimHostSpec {
  name: string;
  totalMemMiB: number;
  nrCpus: number;
  dom0MemMiB?: number;
  /** Config files already in its config directory (what an operator put there before XSM came). */
  configFiles?: readonly { name: string; text: string }[];
}

export interface SimTiming {
  /** Time `xl create` takes before the domain exists (domain build). */
  createMs: number;
  /** Time `xl create` still takes after the domain exists (hotplug scripts, console): a crash window. */
  createSettleMs: number;
  shutdownMs: number;
  /** Live migration time per GiB of guest memory. */
  migrateMsPerGiB: number;
}

const sleep = (ms: number) => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());

export async function provisionSimHost(store: SimStore, spec: SimHostSpec): Promise<void> {
  const existing = await store.read(spec.name);
  if (existing) return;
  await store.put({
    name: spec.name,
    totalMemMiB: spec.totalMemMiB,
    dom0MemMiB: spec.dom0MemMiB ?? 1024,
    nrCpus: spec.nrCpus,
    powered: true,
    nextDomid: 1,
    domains: [],
    ...(spec.configFiles ? { configFiles: spec.configFiles.map((f) => ({ ...f })) } : {}),
  });
}

function freeMem(s: SimHostState): number {
  return s.totalMemMiB - s.dom0MemMiB - s.domains.reduce((sum, d) => sum + d.memMiB, 0);
}

function cpuNow(d: SimDomain, now: number): number {
  const running = d.state === 'running' || d.state === 'blocked';
  return d.cpuTimeSec + (running ? (d.utilisation * d.vcpus * (now - d.tickAt)) / 1000 : 0);
}

/**
 * The NICs of a domain's config text, parsed once per distinct text: every `xl list` of a host reports all
 * its domains, and parsing each one's config again at every listing was a fifth of a simulated agent's CPU
 * in the apply benchmark (which is meant to measure XSM, not the simulator). Bounded: cleared when full.
 */
const nicsOfConfig = new Map<string, DomainInfo['nics']>();
function configNics(text: string): DomainInfo['nics'] {
  // A copy each time: a caller that changes what it was given must not change the next listing.
  if (nicsOfConfig.has(text)) return nicsOfConfig.get(text)?.map((n) => ({ ...n }));
  let nics: DomainInfo['nics'];
  try {
    nics = readDomainConfig(text).nics;
  } catch {
    nics = undefined;
  }
  rememberNics(text, nics);
  return nics?.map((n) => ({ ...n }));
}

/** `create` parsed the config already: its first listing need not parse it again. */
function rememberNics(text: string, nics: DomainInfo['nics']): void {
  if (nicsOfConfig.size >= 20_000) nicsOfConfig.clear();
  nicsOfConfig.set(
    text,
    nics?.map((n) => ({ ...n })),
  );
}

function toInfo(d: SimDomain, now: number): DomainInfo {
  // The NICs Xen holds are those of the config the domain was created from (`xl list -l` nics).
  const nics = configNics(d.config);
  // Built whole, then put after `nics`: a literal that starts with a spread (`{ ...(nics ? { nics } : {}),
  // name, ... }`) made V8 add each later field on its slow path, 13 µs a domain, and every `xl list` lists
  // them all (`bench/apply.ts`: a twentieth of an agent's CPU).
  const info: DomainInfo = {
    name: d.name,
    domid: d.domid,
    state: d.state,
    memMiB: d.memMiB,
    maxMemMiB: d.maxMemMiB,
    vcpus: d.vcpus,
    maxVcpus: d.maxVcpus,
    cpuTimeSec: cpuNow(d, now),
    weight: d.weight,
  };
  return nics?.length ? { nics, ...info } : info;
}

export class SimulatedXenHost implements Hypervisor {
  private readonly timing: SimTiming;
  constructor(
    readonly store: SimStore,
    readonly hostName: string,
    timing: Partial<SimTiming> = {},
  ) {
    this.timing = { createMs: 20, createSettleMs: 0, shutdownMs: 10, migrateMsPerGiB: 50, ...timing };
  }

  private async state(): Promise<SimHostState> {
    const s = await this.store.read(this.hostName);
    if (!s) throw new HypervisorRefusal(this.hostName, 'no such simulated host; provision it first');
    this.reachable(s);
    return s;
  }
  private reachable(s: SimHostState): void {
    if (!s.powered) throw new Error(`${this.hostName}: host is powered off (no route to host)`);
    if (s.failing) throw new Error(`${this.hostName}: ${s.failing}`);
  }
  private update<T>(fn: (s: SimHostState) => T): Promise<T> {
    return this.store.update(this.hostName, (s) => {
      this.reachable(s);
      return fn(s);
    });
  }
  private static domain(s: SimHostState, name: string, host: string): SimDomain {
    const d = s.domains.find((x) => x.name === name);
    if (!d) throw new HypervisorRefusal(host, `${name} is an invalid domain identifier (rc=-6)`);
    return d;
  }

  async info(): Promise<HostInfo> {
    const s = await this.state();
    return {
      host: s.name,
      totalMemMiB: s.totalMemMiB,
      freeMemMiB: freeMem(s),
      nrCpus: s.nrCpus,
      xenVersion: '4.17.7-sim',
      scheduler: 'credit2',
    };
  }

  async list(): Promise<DomainInfo[]> {
    const s = await this.state();
    const now = Date.now();
    const dom0: DomainInfo = {
      name: 'Domain-0',
      domid: 0,
      state: 'running',
      memMiB: s.dom0MemMiB,
      maxMemMiB: s.dom0MemMiB,
      vcpus: s.nrCpus,
      maxVcpus: s.nrCpus,
      cpuTimeSec: 0,
      weight: 256,
    };
    return [dom0, ...s.domains.map((d) => toInfo(d, now))];
  }

  async find(name: string): Promise<DomainInfo | undefined> {
    if (name === 'Domain-0') return (await this.list())[0];
    const s = await this.state();
    const d = s.domains.find((x) => x.name === name);
    return d && toInfo(d, Date.now());
  }

  async create(config: DomainConfig): Promise<void> {
    const cfg = readDomainConfig(config.text);
    rememberNics(config.text, cfg.nics);
    if (cfg.name !== config.name)
      throw new HypervisorRefusal(this.hostName, `config names ${cfg.name}, not ${config.name}`);
    await sleep(this.timing.createMs);
    await this.update((s) => {
      if (s.domains.some((d) => d.name === cfg.name))
        throw new HypervisorRefusal(this.hostName, `libxl: error: Domain with name "${cfg.name}" already exists.`);
      if (cfg.vcpus > s.nrCpus)
        throw new HypervisorRefusal(this.hostName, `vcpus ${cfg.vcpus} exceed the host's ${s.nrCpus} pCPUs`);
      const free = freeMem(s);
      if (cfg.memMiB > free)
        throw new HypervisorRefusal(
          this.hostName,
          `libxl: error: failed to free memory for the domain: need ${cfg.memMiB} MiB, ${free} MiB free`,
        );
      // Object.assign, not `{ ...cfg, domid, ... }`: see copyState.
      const domain: SimDomain = Object.assign({}, cfg, {
        domid: s.nextDomid++,
        state: 'running' as const,
        cpuTimeSec: 0,
        tickAt: Date.now(),
        utilisation: 0.1,
        weight: 256,
        config: config.text,
      });
      s.domains.push(domain);
    });
    await sleep(this.timing.createSettleMs);
  }

  async shutdown(name: string, _timeoutMs: number, domid?: number): Promise<void> {
    if (domid !== undefined) {
      // As XlHypervisor: an instance that is gone ("invalid domain identifier" from xl) is nothing to stop,
      // and a later domain of the same name is another instance, never touched.
      const s = await this.state();
      if (!s.domains.some((x) => x.domid === domid && x.name === name)) return;
    }
    await this.update((s) => {
      const d = SimulatedXenHost.domain(s, name, this.hostName);
      d.state = 'shutdown';
    });
    await sleep(this.timing.shutdownMs);
    await this.destroy(name).catch((e: unknown) => {
      if (!(e instanceof HypervisorRefusal)) throw e;
    });
  }

  async destroy(name: string): Promise<void> {
    await this.update((s) => {
      SimulatedXenHost.domain(s, name, this.hostName);
      s.domains = s.domains.filter((d) => d.name !== name);
    });
  }

  async setMemory(name: string, memMiB: number): Promise<void> {
    await this.update((s) => {
      const d = SimulatedXenHost.domain(s, name, this.hostName);
      if (memMiB > d.maxMemMiB)
        throw new HypervisorRefusal(
          this.hostName,
          `cannot set domid ${d.domid} memory to ${memMiB}m: above maxmem ${d.maxMemMiB}m`,
        );
      if (memMiB - d.memMiB > freeMem(s))
        throw new HypervisorRefusal(
          this.hostName,
          `cannot balloon ${name} up by ${memMiB - d.memMiB} MiB: only ${freeMem(s)} MiB free`,
        );
      d.memMiB = memMiB;
    });
  }

  async setVcpus(name: string, vcpus: number): Promise<void> {
    await this.update((s) => {
      const d = SimulatedXenHost.domain(s, name, this.hostName);
      if (vcpus > d.maxVcpus)
        throw new HypervisorRefusal(
          this.hostName,
          `Cannot set vcpus greater than max vcpus on running domain (${d.maxVcpus})`,
        );
      if (vcpus > s.nrCpus)
        throw new HypervisorRefusal(
          this.hostName,
          `You are overcommmitting! You have ${s.nrCpus} physical CPUs and want ${vcpus} vCPUs`,
        );
      const now = Date.now();
      d.cpuTimeSec = cpuNow(d, now);
      d.tickAt = now;
      d.vcpus = Math.max(1, vcpus);
    });
  }

  async setWeight(name: string, weight: number): Promise<void> {
    if (!Number.isInteger(weight) || weight < 1 || weight > 65535)
      throw new HypervisorRefusal(this.hostName, `weight ${weight} is out of range 1..65535`);
    await this.update((s) => {
      SimulatedXenHost.domain(s, name, this.hostName).weight = weight;
    });
  }

  /** Sets how busy a guest is (what a workload would do); the metrics and the rebalancer see it. */
  async setUtilisation(name: string, utilisation: number): Promise<void> {
    await this.update((s) => {
      const d = SimulatedXenHost.domain(s, name, this.hostName);
      const now = Date.now();
      d.cpuTimeSec = cpuNow(d, now);
      d.tickAt = now;
      d.utilisation = Math.min(1, Math.max(0, utilisation));
    });
  }

  async migrate(name: string, target: MigrationTarget): Promise<void> {
    if (target.host === this.hostName)
      throw new HypervisorRefusal(this.hostName, 'cannot migrate a domain to its own host');
    const src = await this.state();
    const d = SimulatedXenHost.domain(src, name, this.hostName);
    const incoming = `${name}--incoming`;
    // The receiver claims the memory first (as xl migrate-receive does), then the stream runs.
    await this.store
      .update(target.host, (t) => {
        this.reachable(t);
        if (t.domains.some((x) => x.name === name))
          throw new HypervisorRefusal(target.host, `libxl: error: Domain with name "${name}" already exists.`);
        if (d.memMiB > freeMem(t))
          throw new HypervisorRefusal(
            target.host,
            `Migration failed due to problems at target: need ${d.memMiB} MiB, ${freeMem(t)} MiB free`,
          );
        t.domains = t.domains.filter((x) => x.name !== incoming);
        t.domains.push({ ...d, name: incoming, domid: t.nextDomid++, state: 'paused' });
      })
      .catch((e: unknown) => {
        if (e instanceof HypervisorRefusal) throw e;
        throw new Error(
          `${this.hostName}: migration of ${name} to ${target.host} failed, resuming at sender: ${(e as Error).message}`,
        );
      });
    await sleep((this.timing.migrateMsPerGiB * d.memMiB) / 1024);
    const now = Date.now();
    // Stop-and-copy: the sender suspends the guest before the receiver resumes it, as xl does, so the guest
    // never runs on two hosts at once; if the receiver cannot take it, the sender resumes it.
    const setSource = (state: SimDomain['state']) =>
      this.store.update(this.hostName, (s) => {
        const x = s.domains.find((y) => y.name === name);
        if (x) x.state = state;
      });
    await setSource('paused');
    await this.store
      .update(target.host, (t) => {
        const inc = t.domains.find((x) => x.name === incoming);
        if (!inc) throw new Error(`${target.host}: incoming domain ${incoming} vanished during migration`);
        inc.name = name;
        inc.state = 'running';
        inc.cpuTimeSec = cpuNow(d, now);
        inc.tickAt = now;
      })
      .catch(async (e: unknown) => {
        await setSource('running');
        throw e;
      });
    await this.store.update(this.hostName, (s) => {
      s.domains = s.domains.filter((x) => x.name !== name);
    });
  }

  async configFiles(): Promise<ConfigFiles> {
    const s = await this.state();
    const files = (s.configFiles ?? [])
      .map((f) => {
        const domain = xlConfigName(f.text);
        return {
          name: f.name,
          sha256: createHash('sha256').update(f.text).digest('hex'),
          ...(domain ? { domain } : {}),
        };
      })
      .sort((a, b) => a.name.localeCompare(b.name));
    return { dir: s.configDir ?? SIM_CONFIG_DIR, files };
  }

  async readConfigFile(name: string): Promise<string | undefined> {
    if (!isConfigFileName(name)) return undefined;
    return (await this.state()).configFiles?.find((f) => f.name === name)?.text;
  }

  /** What an operator does on the Dom0: writes (or replaces) `name` in its config directory. */
  async writeConfigFile(name: string, text: string): Promise<void> {
    if (!isConfigFileName(name))
      throw new HypervisorRefusal(this.hostName, `${name}: config files are NAME.cfg in the config directory`);
    await this.update((s) => {
      s.configFiles = [...(s.configFiles ?? []).filter((f) => f.name !== name), { name, text }];
    });
  }

  /** `rm` of a config file on the Dom0. */
  async removeConfigFile(name: string): Promise<void> {
    await this.update((s) => {
      s.configFiles = (s.configFiles ?? []).filter((f) => f.name !== name);
    });
  }

  /** `xl create PATH` for a file in the config directory: runs it exactly as written. */
  async createFromFile(path: string): Promise<void> {
    const s = await this.state();
    const dir = s.configDir ?? SIM_CONFIG_DIR;
    const name = path.startsWith(`${dir}/`) ? path.slice(dir.length + 1) : undefined;
    const text = name !== undefined ? await this.readConfigFile(name) : undefined;
    if (text === undefined)
      throw new HypervisorRefusal(this.hostName, `Failed to read config file: ${path}: No such file or directory`);
    await this.create({ name: readDomainConfig(text).name, text });
  }

  /** Pulls the plug: every domain is gone and the host stops answering. */
  async powerOff(): Promise<void> {
    await this.store.update(this.hostName, (s) => {
      s.powered = false;
      s.domains = [];
    });
  }
  async powerOn(): Promise<void> {
    await this.store.update(this.hostName, (s) => {
      s.powered = true;
      s.domains = [];
    });
  }
  async setFailing(message: string | undefined): Promise<void> {
    await this.store.update(this.hostName, (s) => {
      if (message) s.failing = message;
      else delete s.failing;
    });
  }
  async isPowered(): Promise<boolean> {
    return (await this.store.read(this.hostName))?.powered ?? false;
  }
}
