/**
 * The benchmark's results as data (the --json contract) and as a plain table.
 * JSON field names are a contract for scripts: add fields, never rename them.
 */
import type { Machine } from './machine.js';
import type { Sample } from './measure.js';

export type BenchGroup = 'write' | 'verify' | 'upload' | 'bundle' | 'delta' | 'transfer';

export interface BenchRow {
  group: BenchGroup;
  tool: string;
  operation: string;
  /** The exact command line for external tools ($BENCH: the temp dir); the core call for apertus. */
  command: string;
  /** Payload bytes the operation handles; MB/s is these over seconds. */
  bytes: number;
  /** Best (shortest) run, or null when every run failed. */
  seconds: number | null;
  /** 10^6 bytes per second. */
  mbPerSecond: number | null;
  cpuSeconds: number | null;
  /** Highest of the runs; null where it could not be measured (no GNU time). */
  peakRssBytes: number | null;
  /** Whole process of the best run, Node start-up included for apertus workers. */
  processSeconds: number | null;
  /** Every run, in order. */
  samples: Array<Pick<Sample, 'seconds' | 'cpuSeconds' | 'peakRssBytes' | 'processSeconds'>>;
  /** What the best run reported (apertus: cipher, phases, verification outcome). */
  detail: Sample['detail'];
  /** A part of the row before it (e.g. the upload inside transferBlobs), not a process of its own. */
  partOf: string | null;
  error: string | null;
}

export interface BenchReport {
  sizeBytes: number;
  runs: number;
  statistic: string;
  machine: Machine;
  results: BenchRow[];
  /** Groups that did not run, and why. */
  skipped: Array<{ group: BenchGroup; reason: string }>;
  upload: {
    demoHost: string | null;
    apertusCipher: string | null;
    opensshCipher: string | null;
    scpProtocol: 'sftp' | 'legacy-scp' | null;
  };
  notes: string[];
  /** Headline ratios of two rows' times, with the goal each is held to (lower is better). */
  ratios?: Array<{ name: string; value: number | null; goal: number }>;
}

/** How a report's rows were taken from `runs` runs of each measurement. */
export function statisticOf(runs: number): string {
  return runs === 1
    ? 'each measurement run once'
    : `each measurement run ${runs} times, interleaved; best (shortest) time shown, peak RSS is the highest of the runs`;
}

/** Collapses the runs of one measurement into a row: shortest time, highest RSS. */
export function bestOf(
  base: Omit<
    BenchRow,
    'seconds' | 'mbPerSecond' | 'cpuSeconds' | 'peakRssBytes' | 'processSeconds' | 'samples' | 'detail'
  >,
  samples: Sample[],
): BenchRow {
  const best = samples.reduce<Sample | undefined>(
    (winner, sample) => (winner === undefined || sample.seconds < winner.seconds ? sample : winner),
    undefined,
  );
  const rss = samples.map((s) => s.peakRssBytes).filter((value): value is number => value !== null);
  return {
    ...base,
    seconds: best?.seconds ?? null,
    mbPerSecond: best === undefined || base.bytes === 0 ? null : base.bytes / best.seconds / 1e6,
    cpuSeconds: best?.cpuSeconds ?? null,
    peakRssBytes: rss.length > 0 ? Math.max(...rss) : null,
    processSeconds: best?.processSeconds ?? null,
    samples: samples.map(({ seconds, cpuSeconds, peakRssBytes, processSeconds }) => ({
      seconds,
      cpuSeconds,
      peakRssBytes,
      processSeconds,
    })),
    detail: best?.detail ?? {},
  };
}

export function formatReport(report: BenchReport): string {
  const header = ['tool', 'operation', 'seconds', 'MB/s', 'CPU s', 'peak RSS', 'every run (s)'];
  const lines: string[][] = [];
  let group: BenchGroup | undefined;
  for (const row of report.results) {
    if (group !== undefined && row.group !== group) lines.push([]);
    group = row.group;
    const part = row.partOf !== null;
    lines.push([
      part ? '' : row.tool,
      part ? `  ${row.operation}` : row.operation,
      row.error !== null && row.seconds === null ? 'failed' : fixed(row.seconds, 2),
      fixed(row.mbPerSecond, 0),
      part ? '' : fixed(row.cpuSeconds, 2),
      part ? '' : row.peakRssBytes === null ? 'n/a' : `${(row.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
      row.samples.map((sample) => sample.seconds.toFixed(2)).join(' '),
    ]);
  }
  const widths = header.map((title, column) =>
    Math.max(title.length, ...lines.map((line) => (line[column] ?? '').length)),
  );
  const numeric = new Set([2, 3, 4, 5]);
  const render = (cells: string[]) =>
    cells
      .map((cell, column) =>
        numeric.has(column) ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0),
      )
      .join('  ')
      .trimEnd();
  const table = [render(header), render(widths.map((width) => '-'.repeat(width)))];
  for (const line of lines) table.push(line.length === 0 ? '' : render(line));

  const machine = report.machine;
  const out = [
    `apertus bench: ${formatSize(report.sizeBytes)} of random data; ${report.statistic}`,
    `machine: ${machine.cores} cores (${machine.cpu}), ${formatSize(machine.memoryBytes).split(' (')[0]} RAM, Node ${machine.node}, ${machine.os}; cores busy before the start: ${machine.busyCoresBefore ?? 'n/a'}`,
    `tools: ${machine.tools.join('; ')}`,
    '',
    ...table,
    '',
  ];
  for (const row of report.results) {
    if (row.error !== null) out.push(`failed: ${row.tool} ${row.operation}: ${row.error}`);
  }
  for (const skip of report.skipped) out.push(`skipped ${skip.group}: ${skip.reason}`);
  for (const ratio of report.ratios ?? [])
    out.push(
      `ratio: ${ratio.name}: ${ratio.value === null ? 'n/a' : `${ratio.value.toFixed(2)}x`} (goal <= ${ratio.goal.toFixed(1)}x: ${ratio.value === null ? 'not measured' : ratio.value <= ratio.goal ? 'met' : 'NOT met'})`,
    );
  for (const note of report.notes) out.push(`- ${note}`);
  out.push('', 'commands ($BENCH is the temp dir):');
  for (const row of report.results) if (row.partOf === null) out.push(`  ${row.tool}: ${row.command}`);
  return `${out.join('\n')}\n`;
}

export function formatSize(bytes: number): string {
  for (const [unit, scale] of [
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ] as const) {
    if (bytes >= scale) {
      const value = bytes / scale;
      return `${Number.isInteger(value) ? value : value.toFixed(2)} ${unit} (${bytes} bytes)`;
    }
  }
  return `${bytes} bytes`;
}

function fixed(value: number | null, digits: number): string {
  return value === null ? '-' : value.toFixed(digits);
}
