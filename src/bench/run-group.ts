/** Runs a group of measurements several times, interleaved, and turns them into rows. */
import type { Sample } from './measure.js';
import { type BenchGroup, type BenchRow, bestOf } from './report.js';

export interface Measurement {
  tool: string;
  operation: string;
  command: string;
  bytes: number;
  /** Before each run, outside the time: remove the previous output, flush dirty pages. */
  prepare?: () => Promise<void>;
  run: () => Promise<Sample>;
  /** Phases of the best run, shown as rows under this one. */
  parts?: (best: Sample) => Array<{ operation: string; seconds: number; bytes: number }>;
}

export interface GroupContext {
  runs: number;
  signal: AbortSignal;
  log: (line: string) => void;
}

/**
 * Run 1 of every measurement, then run 2 of every one, and so on, so that drift (page
 * cache, writeback, other load) hits all alike. A measurement that fails once is not run
 * again; its row carries the error. Only an abort stops the group.
 */
export async function runGroup(
  group: BenchGroup,
  measurements: Measurement[],
  ctx: GroupContext,
): Promise<BenchRow[]> {
  const samples = measurements.map((): Sample[] => []);
  const errors = measurements.map((): string | null => null);
  for (let run = 1; run <= ctx.runs; run++) {
    for (const [index, measurement] of measurements.entries()) {
      if (errors[index] !== null) continue;
      ctx.signal.throwIfAborted();
      const name = `${measurement.tool}: ${measurement.operation}`;
      try {
        await measurement.prepare?.();
        const sample = await measurement.run();
        samples[index]?.push(sample);
        ctx.log(`  ${group} ${run}/${ctx.runs}  ${name}: ${sample.seconds.toFixed(2)} s`);
      } catch (error) {
        if (ctx.signal.aborted) throw error;
        errors[index] = (error as Error).message.trim().split('\n').slice(0, 3).join(' | ');
        ctx.log(`  ${group} ${run}/${ctx.runs}  ${name}: FAILED: ${errors[index]}`);
      }
    }
  }
  const rows: BenchRow[] = [];
  for (const [index, measurement] of measurements.entries()) {
    const { tool, operation, command, bytes } = measurement;
    const mine = samples[index] ?? [];
    const row = bestOf(
      { group, tool, operation, command, bytes, partOf: null, error: errors[index] ?? null },
      mine,
    );
    rows.push(row);
    const best = mine.find((sample) => sample.seconds === row.seconds);
    for (const part of best && measurement.parts ? measurement.parts(best) : []) {
      rows.push({
        group,
        tool,
        operation: part.operation,
        command,
        bytes: part.bytes,
        seconds: part.seconds,
        mbPerSecond: part.bytes === 0 ? null : part.bytes / part.seconds / 1e6,
        cpuSeconds: null,
        peakRssBytes: null,
        processSeconds: null,
        samples: [],
        detail: {},
        partOf: operation,
        error: null,
      });
    }
  }
  return rows;
}
