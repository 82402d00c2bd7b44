// Prints a plan for people (a table, one action a line, with its reason) or machines (JSON).

import type { Action, Plan } from './actions.ts';

function change(a: Action): string {
  const parts: string[] = [];
  switch (a.kind) {
    case 'create':
      parts.push(`${a.spec.vcpus} vCPU, ${a.spec.memMiB} MiB`);
      break;
    case 'remove':
      break;
    case 'migrate':
      parts.push(`${a.spec.memMiB} MiB ${a.mode}`);
      break;
    case 'reconfigure':
      if (a.memMiB) parts.push(`mem ${a.memMiB.from}->${a.memMiB.to}`);
      if (a.vcpus) parts.push(`vcpu ${a.vcpus.from}->${a.vcpus.to}`);
      parts.push(a.mode);
      break;
  }
  if (a.disruptive) parts.push('STOPS VM');
  return parts.join(', ');
}

export function planRows(plan: Plan): string[][] {
  return plan.actions.map((a) => [
    String(a.wave),
    a.kind,
    a.vm,
    a.kind === 'migrate' ? a.from : a.host,
    a.kind === 'migrate' ? a.to : '',
    change(a),
    a.dependsOn.join(' '),
    a.reason,
  ]);
}

export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** The lines that ask for consent: each action that stops a running VM and how. */
export function formatDisruptions(actions: readonly Pick<Action, 'id' | 'disruption'>[]): string {
  const n = actions.length;
  return [
    `${n} action${n === 1 ? '' : 's'} stop${n === 1 ? 's' : ''} running VMs:`,
    ...actions.map((a) => `  ${a.id}: ${a.disruption ?? 'stops a running VM'}`),
  ].join('\n');
}

export function formatPlan(plan: Plan): string {
  const out: string[] = [];
  if (plan.actions.length === 0) out.push('Nothing to do: the site already matches the file.');
  else {
    out.push(formatTable(['WAVE', 'ACTION', 'VM', 'HOST/FROM', 'TO', 'CHANGE', 'AFTER', 'REASON'], planRows(plan)));
    const counts = new Map<string, number>();
    for (const a of plan.actions) counts.set(a.kind, (counts.get(a.kind) ?? 0) + 1);
    out.push(
      '',
      `${plan.actions.length} action${plan.actions.length === 1 ? '' : 's'} in ${plan.waves} wave${plan.waves === 1 ? '' : 's'}: ${[...counts].map(([k, n]) => `${n} ${k}`).join(', ')}`,
    );
    const disruptive = plan.actions.filter((a) => a.disruptive);
    if (disruptive.length) out.push(formatDisruptions(disruptive));
  }
  for (const n of plan.notes) out.push(`note: ${n}`);
  return out.join('\n');
}

export function planJson(plan: Plan): string {
  return JSON.stringify(plan, (k, v) => (k === 'pos' ? undefined : v), 2);
}
