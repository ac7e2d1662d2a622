import type { WriteStream } from 'node:tty';
import { Listr, ListrLogger, ListrLogLevels, type LoggerFieldOptions, ProcessOutput } from 'listr2';
import type { OnProgress, ProgressEvent } from '../../core/progress.js';
import type { CliIO } from '../io.js';
import { humanizeByteCounts } from './format.js';
import type { RendererMode } from './renderer-mode.js';
import { TransferLines } from './transfer-lines.js';
import { TransferMeter } from './transfer-meter.js';

/** A step the core reports by id, shown with this title. */
export interface StepDefinition<Id extends string = string> {
  id: Id;
  title: string;
}

/** The core's step ids, in its order, with a title each: a step without one does not compile. */
export function stepDefinitions<Id extends string>(
  ids: readonly Id[],
  titles: Readonly<Record<Id, string>>,
): StepDefinition<Id>[] {
  return ids.map((id) => ({ id, title: titles[id] }));
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
 * become the output of the running step. Nothing is drawn before the first event, so an
 * operation that refuses its input before starting shows only the error.
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
    startRendering();
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
      running.output = humanizeByteCounts(event.detail);
    }
  };

  // Progress is not a result: both of listr2's streams are stderr, so stdout stays clean for pipes.
  const stderr = io.stderr as WriteStream;
  const processOutput = new ProcessOutput(stderr, stderr);
  const logger = new ListrLogger({ processOutput });
  const list = new Listr(
    steps.map((step) => ({
      title: step.title,
      task: async (_ctx, task) => {
        running = task;
        const outcome = await (deferreds.get(step.id) as Deferred).promise;
        // The outcome goes into the title: the live renderer shows the skip or error message in
        // its place, the line renderer (StepLineLogger) the title alone.
        if (outcome.detail) task.title = `${step.title}: ${humanizeByteCounts(outcome.detail)}`;
        if (outcome.status === 'skip') {
          task.skip(task.title);
          return;
        }
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
      fallbackRendererOptions: { logger: new StepLineLogger({ processOutput }) },
      collectErrors: false,
    },
  );

  let rendering: Promise<unknown> | undefined;
  function startRendering(): void {
    rendering ??= list.run().catch(() => undefined);
  }
  let failed = false;
  try {
    return await operation(onProgress);
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    // The step that was running when the operation threw is the one that failed; with
    // nothing drawn yet, there is nothing to close.
    let first = rendering !== undefined;
    for (const d of deferreds.values()) {
      if (d.settled) continue;
      settle(d, failed && first ? { status: 'fail' } : { status: 'skip', detail: 'not run' });
      first = false;
    }
    await rendering;
  }
}

/**
 * listr2's line renderer writes a failed or skipped step as its title plus `[FAILED: <error>]`
 * or `[SKIPPED: <message>]`; the title already says the outcome (and main.ts prints the
 * error), so that suffix only repeated it.
 */
class StepLineLogger extends ListrLogger {
  override log(level: string, message: string | unknown[], options?: LoggerFieldOptions): void {
    const repeats = level === ListrLogLevels.FAILED || level === ListrLogLevels.SKIPPED;
    super.log(level, message, repeats ? { ...options, suffix: undefined } : options);
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
