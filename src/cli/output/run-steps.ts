import type { WriteStream } from 'node:tty';
import { Listr, ListrLogger, ProcessOutput } from 'listr2';
import type { OnProgress, ProgressEvent } from '../../core/progress.js';
import type { CliIO } from '../io.js';
import type { RendererMode } from './renderer-mode.js';
import { TransferLines } from './transfer-lines.js';
import { TransferMeter } from './transfer-meter.js';

/** A step the core reports by id, shown with this title. */
export interface StepDefinition {
  id: string;
  title: string;
}

type Outcome = { status: 'ok' | 'skip' | 'fail'; detail?: string | undefined };

interface Deferred {
  promise: Promise<Outcome>;
  resolve: (outcome: Outcome) => void;
  settled: boolean;
}

/**
 * Runs one core operation and shows its progress events as listr2 tasks: the
 * redrawing renderer on a TTY, listr2's line renderer elsewhere, nothing with --json.
 * Steps the operation never reports end as skipped; events for unlisted steps
 * become the output of the running step.
 */
export async function runSteps<T>(
  io: CliIO,
  mode: RendererMode,
  steps: readonly StepDefinition[],
  operation: (onProgress: OnProgress) => Promise<T>,
): Promise<T> {
  if (mode === 'silent') return operation(() => {});

  const deferreds = new Map<string, Deferred>(steps.map((step) => [step.id, deferred()]));
  // The task shown as running: events for steps not in the list become its output.
  let running: { output: string; title: string } | undefined;
  // Bytes, rate and ETA per component; plain lines keep logs to a few per component. listr2
  // draws live only when stdout is a terminal as well (else it falls back to its line
  // renderer), so `apertus bundle > result.txt` gets plain lines too.
  const drawsLive = mode === 'live' && process.stdout.isTTY === true;
  const transfers = new TransferLines({
    mode: drawsLive ? 'live' : 'plain',
    createMeter: () => new TransferMeter(),
  });

  const onProgress: OnProgress = (event: ProgressEvent) => {
    const target = deferreds.get(event.step);
    if (target && (event.status === 'ok' || event.status === 'skip' || event.status === 'fail')) {
      settle(target, { status: event.status, detail: event.detail });
      return;
    }
    if (!running) return;
    if (event.bytes) {
      const line = transfers.line(event);
      if (line !== undefined) running.output = line;
    } else if (event.detail && (event.status === 'info' || !target)) {
      running.output = event.detail;
    }
  };

  // Progress is not a result: both of listr2's streams are stderr, so stdout stays clean for pipes.
  const stderr = io.stderr as WriteStream;
  const logger = new ListrLogger({ processOutput: new ProcessOutput(stderr, stderr) });
  const list = new Listr(
    steps.map((step) => ({
      title: step.title,
      task: async (_ctx, task) => {
        running = task;
        const outcome = await (deferreds.get(step.id) as Deferred).promise;
        if (outcome.status === 'skip') {
          task.skip(`${step.title}${outcome.detail ? `: ${outcome.detail}` : ''}`);
          return;
        }
        if (outcome.detail) task.title = `${step.title}: ${outcome.detail}`;
        if (outcome.status === 'fail') throw new Error(task.title);
      },
    })),
    {
      concurrent: false,
      // A failed step ends the list: the steps after it were never run, and saying so for
      // each one is noise in CI logs.
      exitOnError: true,
      registerSignalListeners: false,
      renderer: 'default',
      fallbackRenderer: 'simple',
      fallbackRendererCondition: mode === 'plain',
      rendererOptions: { logger },
      fallbackRendererOptions: { logger },
      collectErrors: false,
    },
  );

  const rendering = list.run().catch(() => undefined);
  let failed = false;
  try {
    return await operation(onProgress);
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    // The step that was running when the operation threw is the one that failed.
    let first = true;
    for (const d of deferreds.values()) {
      if (d.settled) continue;
      settle(d, failed && first ? { status: 'fail' } : { status: 'skip', detail: 'not run' });
      first = false;
    }
    await rendering;
  }
}

function deferred(): Deferred {
  let resolve!: (outcome: Outcome) => void;
  const promise = new Promise<Outcome>((r) => {
    resolve = r;
  });
  return { promise, resolve, settled: false };
}

function settle(d: Deferred, outcome: Outcome): void {
  if (d.settled) return;
  d.settled = true;
  d.resolve(outcome);
}
