// The control queue's `rebalance` job (on demand or from its job scheduler): one run of the rebalancer.

import type { Job } from 'bullmq';
import type { RebalanceRequest } from '../runtime/queues.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';
import { runRebalance } from '../services/rebalance-service.ts';

export async function processRebalance(rt: XsmRuntime, job: Job<RebalanceRequest>): Promise<string> {
  const r = await runRebalance(rt, job.data);
  if (r.skipped) return r.skipped;
  if (r.refused) return r.refused;
  if (r.version) return `version ${r.version}: ${r.moves.length} moves${r.held ? ` (${r.held})` : ''}`;
  return r.held ?? `no move worth making (imbalance ${r.imbalanceBefore.toFixed(3)})`;
}
