import type { ProgressEvent } from '../../core/progress.js';
import { formatBytes } from './format.js';
import type { RendererMode } from './renderer-mode.js';
import { formatEta, type TransferMeter, type TransferReading } from './transfer-meter.js';

/** Plain mode prints a component's progress at most this often (plus once when it is done). */
export const PLAIN_TRANSFER_INTERVAL_MS = 10_000;

export interface TransferLinesOptions {
  mode: RendererMode;
  now?: () => number;
  /** A meter per transfer; tests pass meters on their fake clock. */
  createMeter: () => TransferMeter;
  plainIntervalMs?: number;
}

interface Transfer {
  meter: TransferMeter;
  /** When plain mode last printed this transfer's line. */
  printedAt: number | undefined;
  finished: boolean;
  /** The line last handed out: the same one again would only repeat it in a log. */
  shown: string | undefined;
}

/**
 * Turns byte progress events into the line to show, per component:
 * `model  1.20 GB / 16.1 GB  210 MB/s  ETA 1m12s`. Live mode gets a line for every event
 * (listr2 redraws it in place); plain mode only every `plainIntervalMs` and when a component
 * is done, so a CI log gets a few lines per component, never a flood.
 */
export class TransferLines {
  private readonly transfers = new Map<string, Transfer>();
  private readonly now: () => number;
  private readonly interval: number;

  constructor(private readonly options: TransferLinesOptions) {
    this.now = options.now ?? Date.now;
    this.interval = options.plainIntervalMs ?? PLAIN_TRANSFER_INTERVAL_MS;
  }

  /** The line to show for this event, or undefined when nothing should change. */
  line(event: ProgressEvent): string | undefined {
    const { bytes } = event;
    if (bytes === undefined) return undefined;
    const key = event.component ?? event.step;
    let transfer = this.transfers.get(key);
    if (transfer === undefined) {
      transfer = {
        meter: this.options.createMeter(),
        printedAt: undefined,
        finished: false,
        shown: undefined,
      };
      this.transfers.set(key, transfer);
    }
    const reading = transfer.meter.update(bytes);
    const text = formatTransfer(event.component, reading, event.component ? undefined : event.detail);
    if (text === transfer.shown) return undefined;
    if (this.options.mode !== 'plain') {
      transfer.shown = text;
      return text;
    }

    const complete = bytes.total > 0 && bytes.done >= bytes.total;
    if (!complete) transfer.finished = false;
    const now = this.now();
    const due = transfer.printedAt === undefined || now - transfer.printedAt >= this.interval;
    if (complete ? transfer.finished : !due) return undefined;
    transfer.finished = complete;
    transfer.printedAt = now;
    transfer.shown = text;
    return text;
  }
}

/** `model  1.20 GB / 16.1 GB  210 MB/s  ETA 1m12s`; rate and ETA only once known. */
export function formatTransfer(label: string | undefined, reading: TransferReading, detail?: string): string {
  const parts = [`${formatBytes(reading.done)} / ${formatBytes(reading.total)}`];
  if (label !== undefined) parts.unshift(label);
  if (reading.bytesPerSecond !== undefined)
    parts.push(`${formatBytes(Math.round(reading.bytesPerSecond))}/s`);
  if (reading.etaMs !== undefined) parts.push(`ETA ${formatEta(reading.etaMs)}`);
  if (detail) parts.push(detail);
  return parts.join('  ');
}
