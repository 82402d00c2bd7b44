// A bare qemu machine of the real-Xen labs: the command line that boots Debian's Xen with a PVH Dom0
// under TCG (shared/lab/NOTES.md), powered through QMP, network first, one AHCI disk.

import { spawnSync } from 'node:child_process';

export interface QemuMachineSpec {
  mac: string;
  tap: string;
  qmp: string;
  serial: string;
  disk: string;
  /** vCPUs: with one, both Dom0s of a run died in the initramfs (busybox: invalid opcode in libc). */
  smp: number;
  memMiB: number;
}

/**
 * The emulated CPU of every lab machine (XSM_QLAB_CPU overrides it, for experiments). `max` because Xen's
 * PVH Dom0 needs hardware virtualisation, which TCG offers only as its SVM emulation in `max`; without
 * rdtscp because Xen then trusts a TSC TCG cannot keep.
 */
export function labCpuModel(): string {
  return process.env.XSM_QLAB_CPU || 'max,-rdtscp';
}

/**
 * qemu's accelerator in the labs (XSM_QLAB_ACCEL, default `tcg`: multi-threaded TCG, one host thread per
 * vCPU). `tcg,thread=single` runs a machine's vCPUs round-robin on one thread: tried in storage run 14 to see
 * whether the Dom0 crashes of runs 3, 9, 10, 12 came from vCPUs racing each other, it made them worse (both
 * Dom0s' kernels died in their first boot on a recursive page fault), so the default stays.
 */
export function labAccel(): string {
  const accel = process.env.XSM_QLAB_ACCEL || 'tcg';
  if (!/^(tcg|kvm)(,[a-z-]+=[a-z0-9-]+)*$/.test(accel))
    throw new Error(`XSM_QLAB_ACCEL must be qemu's -accel value (tcg, tcg,thread=single, kvm), not ${accel}`);
  return accel;
}

/**
 * qemu's priority in the labs (XSM_QLAB_NICE, default 0). The emulated Dom0 races fixed clocks (libxl's
 * hotplug timeout, the kernel's soft-lockup watchdog, the PIT calibration), so the labs give it the CPU before
 * anything else on the machine: at nice 10 beside other work, storage runs 1 and 5 took 365-485 s from Xen's
 * boot to `xl info`, and the local-boot lab's PIT calibration 206-380 s.
 */
export function labQemuNice(): number {
  const nice = Number(process.env.XSM_QLAB_NICE ?? 0);
  if (!Number.isInteger(nice) || nice < 0 || nice > 19)
    throw new Error(`XSM_QLAB_NICE must be a whole number 0-19, not ${process.env.XSM_QLAB_NICE}`);
  return nice;
}

/** Powered off (-S) until the power driver's `on`; boots from the network (SeaBIOS then tries the disk). */
export function qemuArgs(m: QemuMachineSpec): string[] {
  return [
    ...['-accel', labAccel(), '-machine', 'q35', '-device', 'intel-iommu,intremap=off,aw-bits=48'],
    ...['-cpu', labCpuModel(), '-m', String(m.memMiB), '-smp', String(m.smp)],
    ...['-display', 'none', '-monitor', 'none', '-S', '-boot', 'n'],
    ...['-serial', `file:${m.serial}`, '-qmp', `unix:${m.qmp},server=on,wait=off`],
    ...['-netdev', `tap,id=n0,ifname=${m.tap},script=no,downscript=no`, '-device', `e1000,netdev=n0,mac=${m.mac}`],
    ...['-drive', `if=none,id=d0,file=${m.disk},format=raw`, '-device', 'ide-hd,drive=d0,bus=ide.0'],
  ];
}

/** Why qemu cannot run a lab machine here, or undefined when it can (qemu found, TCG q35 starts). */
export function qemuUnavailable(): { qemu?: string; why?: string } {
  const qemu = spawnSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).stdout.trim();
  if (!qemu) return { why: 'qemu-system-x86_64 not found (Debian package qemu-system-x86)' };
  const probe = spawnSync(
    qemu,
    ['-accel', 'tcg', '-machine', 'q35', '-display', 'none', '-S', '-monitor', 'none', '-serial', 'none'].concat([
      '-no-reboot',
      '-qmp',
      'stdio',
    ]),
    { input: '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n', encoding: 'utf8', timeout: 30000 },
  );
  if (probe.status !== 0)
    return {
      qemu,
      why: `${qemu} -accel tcg -machine q35 exited ${probe.status ?? probe.signal}: ${(probe.stderr || probe.error?.message || '').trim().slice(0, 300)}`,
    };
  return { qemu };
}
