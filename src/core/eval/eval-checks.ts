import type { ServiceCheck } from '../runtimes/service-check.js';
import { describeMiss } from './metrics.js';
import { describeSet, type EvalRun } from './run-eval.js';

/** An evaluation run as verification checks: one per set, failed when it misses a threshold or could not run. */
export function evalChecks(run: EvalRun): ServiceCheck[] {
  return run.sets.map((set) => {
    const problems = [...(set.error ? [set.error] : []), ...set.misses.map(describeMiss)];
    const metrics: Record<string, number> = {};
    for (const [key, value] of Object.entries(set.metrics))
      if (typeof value === 'number') metrics[key] = value;
    return {
      id: 'verify.eval',
      service: set.service,
      status: problems.length === 0 ? 'ok' : 'fail',
      detail: problems.length === 0 ? describeSet(set) : `set ${set.name}: ${problems.join('; ')}`,
      ms: set.cases.reduce((sum, c) => sum + c.latencyMs, 0),
      metrics,
    };
  });
}
