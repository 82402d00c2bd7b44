// Single operations (migrate a VM, resize it, remove it) as edits of the site file: the file stays the
// truth, so an operator's one-off `migrate` becomes a new version that the plan engine then carries out,
// and the next apply of an old file cannot silently undo it.

import type { Site, VmSpec } from './model.ts';

export type SiteEdit =
  | { kind: 'migrate'; vm: string; to: string }
  | { kind: 'reconfigure'; vm: string; memMiB?: number; vcpus?: number }
  /** deleteDisks: the VM's pooled disks go too (else they are kept, and the plan says where). */
  | { kind: 'remove'; vm: string; deleteDisks?: boolean };

export class EditError extends Error {
  constructor(
    message: string,
    readonly status: 404 | 422,
  ) {
    super(message);
    this.name = 'EditError';
  }
}

/** Returns a new site with the edit applied; the input is not modified. Validation happens on submit. */
export function applyEdit(site: Site, edit: SiteEdit): { site: Site; reason: string } {
  const vm = site.vms.find((v) => v.name === edit.vm);
  if (!vm) throw new EditError(`no VM named "${edit.vm}" in the current site version`, 404);
  const replace = (next: VmSpec | undefined): Site => ({
    ...site,
    vms: next ? site.vms.map((v) => (v.name === vm.name ? next : v)) : site.vms.filter((v) => v.name !== vm.name),
    sets: next ? site.sets : site.sets.map((s) => ({ ...s, vms: s.vms.filter((n) => n !== vm.name) })),
  });
  switch (edit.kind) {
    case 'migrate': {
      if (!site.hosts.some((h) => h.name === edit.to))
        throw new EditError(
          `no host named "${edit.to}" in the current site version; known hosts: ${site.hosts.map((h) => h.name).join(', ')}`,
          404,
        );
      if (vm.host === edit.to) throw new EditError(`VM ${vm.name} is already placed on ${edit.to}`, 422);
      if (vm.placement.pinned)
        throw new EditError(`VM ${vm.name} is pinned to ${vm.host}; unpin it in the site file first`, 422);
      return { site: replace({ ...vm, host: edit.to }), reason: `migrate ${vm.name} from ${vm.host} to ${edit.to}` };
    }
    case 'reconfigure': {
      if (edit.memMiB === undefined && edit.vcpus === undefined)
        throw new EditError('give memMiB and/or vcpus to change', 422);
      for (const [k, v] of [
        ['memMiB', edit.memMiB],
        ['vcpus', edit.vcpus],
      ] as const) {
        if (v !== undefined && (!Number.isSafeInteger(v) || v <= 0))
          throw new EditError(`${k} must be a positive integer, got ${String(v)}`, 422);
      }
      const next = { ...vm, memMiB: edit.memMiB ?? vm.memMiB, vcpus: edit.vcpus ?? vm.vcpus };
      const what = [
        edit.memMiB !== undefined ? `MEM ${vm.memMiB}->${next.memMiB} MiB` : '',
        edit.vcpus !== undefined ? `VCPUS ${vm.vcpus}->${next.vcpus}` : '',
      ]
        .filter(Boolean)
        .join(', ');
      return { site: replace(next), reason: `reconfigure ${vm.name}: ${what}` };
    }
    case 'remove':
      return { site: replace(undefined), reason: `remove ${vm.name} from ${vm.host}` };
  }
}
