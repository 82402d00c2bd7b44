// The planner's part for VMs whose `config` names an xl config file on the Dom0 (the paper's format): the
// file must be on every host the plan starts the VM on or moves it to, as that host's agent reports it. A
// missing file refuses the whole plan before anything is stored, naming the VM's place in the site file,
// the file and the host. Where the file is there, the action carries its hash as a precondition, so a file
// changed after planning stops the action as stale (what was shown is what runs). A live migration
// between hosts whose copies of the file differ is reported in the plan.

import type { Action, Precondition } from './actions.ts';
import type { TemplateSpec, VmSpec } from './model.ts';
import type { ConfigFileInfo, ObservedState } from './observed.ts';
import { PlanError } from './plan-types.ts';

interface ConfigFileCheck {
  templates: ReadonlyMap<string, TemplateSpec>;
  vms: ReadonlyMap<string, VmSpec>;
  observed: ObservedState | undefined;
  notes: string[];
}

/** Where `vm`'s config file must be for `a` to run, one entry per host the action starts the VM on. */
function targets(a: Action): { vm: string; config: string; host: string; from?: string }[] {
  switch (a.kind) {
    case 'create':
      return [{ vm: a.vm, config: a.spec.config, host: a.host }];
    case 'reconfigure':
      return a.mode === 'restart' ? [{ vm: a.vm, config: a.spec.config, host: a.host }] : [];
    case 'migrate':
      return [
        { vm: a.vm, config: a.spec.config, host: a.to, from: a.from },
        ...(a.via ?? []).map((v) => ({ vm: v.vm, config: v.spec.config, host: v.to, from: v.from })),
      ];
    case 'remove':
      return [];
  }
}

function located(vm: VmSpec | undefined, name: string): string {
  const at = vm?.pos ? `${vm.pos.file}:${vm.pos.line}:${vm.pos.col}: ` : '';
  return `${at}VM[name=${name}]@config`;
}

/**
 * Checks every action's config files against the agents' reports; adds preconditions and notes, and
 * throws PlanError naming every missing file at once.
 */
export function checkConfigFiles(actions: Action[], input: ConfigFileCheck): void {
  const missing: string[] = [];
  const unchecked = new Map<string, Set<string>>();
  for (const a of actions) {
    for (const t of targets(a)) {
      const file = input.templates.get(t.config)?.configFile;
      if (!file) continue;
      const host = input.observed?.hosts[t.host];
      if (!host?.configFiles) {
        const hosts = unchecked.get(file) ?? new Set<string>();
        unchecked.set(file, hosts.add(t.host));
        continue;
      }
      const dir = host.configDir ?? '/etc/xen';
      const held = host.configFiles.find((f) => f.name === file);
      if (!held) {
        missing.push(
          `${located(input.vms.get(t.vm), t.vm)}: config file ${dir}/${file} is missing on host ${t.host}` +
            ` (needed to ${a.kind === 'migrate' ? `move ${t.vm} there` : `start ${t.vm} there`}); copy it there or choose another DOM0`,
        );
        continue;
      }
      const pre: Precondition = { kind: 'config-file', host: t.host, file, sha256: held.sha256 };
      a.preconditions.push(pre);
      if (t.from) reportDifference(input, t.vm, file, t.from, t.host, held);
    }
  }
  if (missing.length)
    throw new PlanError(
      `${missing.length === 1 ? 'a config file is' : `${missing.length} config files are`} missing; nothing was stored:\n${missing.join('\n')}`,
    );
  for (const [file, hosts] of unchecked)
    input.notes.push(
      `config file ${file} not checked on ${[...hosts].sort().join(', ')}: no agent report of its config files yet`,
    );
}

function reportDifference(
  input: ConfigFileCheck,
  vm: string,
  file: string,
  from: string,
  to: string,
  there: ConfigFileInfo,
): void {
  const src = input.observed?.hosts[from]?.configFiles?.find((f) => f.name === file);
  if (!src) {
    if (input.observed?.hosts[from]?.configFiles)
      input.notes.push(`${vm} moves from ${from}, which has no ${file}, to ${to}, which has one`);
    return;
  }
  if (src.sha256 !== there.sha256)
    input.notes.push(
      `${file} differs between ${from} (sha256 ${src.sha256.slice(0, 12)}) and ${to} (sha256 ${there.sha256.slice(0, 12)}): ${vm} keeps running as it was started, but a restart on ${to} runs ${to}'s file`,
    );
}
