// `xsm recover` (POST /api/admin/recover): after Redis was lost entirely, rebuilds the site store from the
// copies the host agents keep on their disks (src/services/recovery.ts). Admin only; the API audits it.
// --dry-run says what would be restored from which hosts and stores nothing.

import { apiTimeoutSeconds } from '../api-client.ts';
import { defineCommand, EXIT } from '../command.ts';
import type { RecoveryReport } from '../../services/recovery.ts';

export const recover = defineCommand({
  name: 'recover',
  summary: "rebuild the site store from the host agents' copies after Redis was lost (admin; empty Redis only)",
  positionals: [],
  options: {
    'dry-run': { type: 'boolean', description: 'say what would be restored from which hosts; store nothing' },
    wait: {
      type: 'integer',
      value: 'SECONDS',
      min: 1,
      max: 600,
      description: "how long to wait for the agents' answers (default 15; they answer on their next heartbeat)",
    },
    'over-older': {
      type: 'boolean',
      description: "Redis came back from an older backup: add the agents' newer version on top of what it holds",
    },
    'allow-missing': {
      type: 'boolean',
      description: 'recover even though hosts of the site did not answer (one of them may keep a newer version)',
    },
  },
  async run({ options }, ctx) {
    const waitSec = options.wait ?? 15;
    const timeout = apiTimeoutSeconds();
    if (waitSec + 5 > timeout) {
      ctx.io.err(`--wait ${waitSec} needs XSM_API_TIMEOUT above ${waitSec + 5} (it is ${timeout}); nothing was done`);
      return EXIT.usage;
    }
    const r = await ctx.api().call<RecoveryReport>('POST', '/api/admin/recover', {
      json: {
        waitMs: waitSec * 1000,
        ...(options['dry-run'] ? { dryRun: true } : {}),
        ...(options['over-older'] ? { overOlder: true } : {}),
        ...(options['allow-missing'] ? { allowMissing: true } : {}),
      },
    });
    const verb = r.dryRun ? 'would restore' : 'restored';
    ctx.io.out(`${verb} version ${r.version} (sha256 ${r.sha256.slice(0, 12)}) from ${r.from.join(', ')}`);
    for (const o of r.older) ctx.io.out(`  ${o.host} keeps the older version ${o.version}`);
    for (const w of r.without) ctx.io.out(`  ${w.host} has no copy: ${w.problem}`);
    if (r.missing.length) ctx.io.out(`  did not answer: ${r.missing.join(', ')}`);
    for (const [host, epoch] of Object.entries(r.epochs)) ctx.io.out(`  ${host}: fencing epoch ${epoch} restored`);
    if (r.drift.length)
      ctx.io.out(
        `what runs differs from version ${r.version}: ${r.drift.join(', ')}; \`xsm apply --repair\` makes it match`,
      );
    else ctx.io.out(r.dryRun ? 'the hosts run what it says' : 'the hosts run what it says: converged');
    ctx.result(r);
    return EXIT.ok;
  },
});
