/**
 * Rate and time left of one transfer, from the byte counts it reports. Pure apart from
 * the clock, which is passed in, so tests drive it with a fake one.
 *
 * The rate is the bytes received over the last `windowMs` (a sliding window, so it follows
 * a link that speeds up or stalls), not the average since the start. Bytes reused from a
 * cache or a partial download count towards done but not towards the rate: `received`
 * says how many came over the network.
 */

export interface TransferSample {
  done: number;
  total: number;
  /** Network bytes so far; `done` stands in where a transfer reuses nothing. */
  received?: number | undefined;
}

export interface TransferReading {
  done: number;
  total: number;
  /** Undefined until the window holds enough time to say. */
  bytesPerSecond: number | undefined;
  /** Undefined while the rate is unknown or zero, and once done. */
  etaMs: number | undefined;
}

export interface TransferMeterOptions {
  now?: () => number;
  /** How far back the rate looks. */
  windowMs?: number;
  /** No rate before the samples span this long: the first chunk would give nonsense. */
  minSpanMs?: number;
}

interface Point {
  at: number;
  received: number;
}

/** Samples closer together than this replace each other, so the window stays small. */
const SAMPLE_SPACING_MS = 100;

export class TransferMeter {
  private readonly now: () => number;
  private readonly windowMs: number;
  private readonly minSpanMs: number;
  private readonly points: Point[] = [];

  constructor(options: TransferMeterOptions = {}) {
    this.now = options.now ?? Date.now;
    this.windowMs = options.windowMs ?? 10_000;
    this.minSpanMs = options.minSpanMs ?? 1_000;
  }

  update(sample: TransferSample): TransferReading {
    const at = this.now();
    const received = sample.received ?? sample.done;
    const last = this.points.at(-1);
    if (last !== undefined && received < last.received) this.points.length = 0; // a new count
    const previous = this.points.at(-2);
    if (last !== undefined && previous !== undefined && at - previous.at < SAMPLE_SPACING_MS) {
      last.at = at;
      last.received = received;
    } else {
      this.points.push({ at, received });
    }
    // Keep one point at or before the window's start, so the window is always full once it can be.
    while (this.points.length > 2 && (this.points[1] as Point).at <= at - this.windowMs) this.points.shift();

    const first = this.points[0] as Point;
    const span = at - first.at;
    const bytesPerSecond = span >= this.minSpanMs ? ((received - first.received) * 1000) / span : undefined;
    const remaining = Math.max(0, sample.total - sample.done);
    const etaMs =
      bytesPerSecond !== undefined && bytesPerSecond > 0 && remaining > 0
        ? (remaining / bytesPerSecond) * 1000
        : undefined;
    return { done: sample.done, total: sample.total, bytesPerSecond, etaMs };
  }
}

/** `45s`, `1m12s`, `2h05m`: short enough for a progress line. */
export function formatEta(ms: number): string {
  const seconds = Math.ceil(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}
