/** What the numbers were measured on: cores, CPU, memory, Node, the tools' versions, other load. */
import { readFile } from 'node:fs/promises';
import { availableParallelism, cpus, platform, release, totalmem } from 'node:os';
import { runProcess } from './measure.js';

export interface Machine {
  cores: number;
  cpu: string;
  memoryBytes: number;
  node: string;
  os: string;
  /** First version line of each tool compared against. */
  tools: string[];
  /** Cores other work kept busy just before the bench started, or null where unknown. */
  busyCoresBefore: number | null;
}

export async function describeMachine(): Promise<Machine> {
  const version = async (argv: string[], fromStderr = false) => {
    try {
      const result = await runProcess(argv, { captureStdout: true });
      return ((fromStderr ? result.stderr : result.stdout).split('\n')[0] ?? '').trim() || 'unknown';
    } catch {
      return `${argv[0]}: not found`;
    }
  };
  return {
    cores: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    memoryBytes: totalmem(),
    node: process.version,
    os: `${platform()} ${release()}`,
    tools: [
      await version(['tar', '--version']),
      await version(['sha256sum', '--version']),
      await version(['openssl', 'version']),
      await version(['ssh', '-V'], true),
    ],
    busyCoresBefore: (await busyCores(1000)) ?? null,
  };
}

/** Cores busy over `ms`, all processes together, from /proc/stat; undefined without it. */
async function busyCores(ms: number): Promise<number | undefined> {
  const sample = async () => {
    const ticks = ((await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? '')
      .trim()
      .split(/\s+/)
      .slice(1, 9)
      .map(Number);
    // user nice system idle iowait irq softirq steal: idle and iowait are the not-busy ones.
    return { idle: (ticks[3] ?? 0) + (ticks[4] ?? 0), total: ticks.reduce((sum, tick) => sum + tick, 0) };
  };
  try {
    const before = await sample();
    await new Promise((resolve) => setTimeout(resolve, ms));
    const after = await sample();
    const total = after.total - before.total;
    if (!(total > 0)) return undefined;
    return Number(((1 - (after.idle - before.idle) / total) * availableParallelism()).toFixed(2));
  } catch {
    return undefined;
  }
}
