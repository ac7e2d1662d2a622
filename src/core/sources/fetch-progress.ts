import type { OnProgress } from '../progress.js';

/** Byte events go out at most once per this many bytes, and whenever a file is settled. */
const REPORT_EVERY = 4 * 1024 * 1024;

/**
 * The byte count of one source's fetch, reported as `fetch` info events: `done` counts
 * bytes on disk (reused from a cache or a partial file included), `received` only those
 * that came over the network in this run, which is what a transfer rate is made of.
 */
export interface FetchProgress {
  /** `delta` more bytes are done (negative when a download starts over), `received` of them fresh. */
  advance(delta: number, received?: number, detail?: string): void;
  /** Reports now: a file was settled (reused, verified, or refused). */
  flush(detail?: string): void;
  readonly done: number;
  readonly received: number;
}

export function createFetchProgress(onProgress: OnProgress, total: number): FetchProgress {
  let done = 0;
  let received = 0;
  let reported = 0;
  const emit = (detail: string | undefined) => {
    reported = done;
    onProgress({
      step: 'fetch',
      status: 'info',
      bytes: { done, total, received },
      ...(detail === undefined ? {} : { detail }),
    });
  };
  return {
    advance(delta, fresh = 0, detail) {
      done += delta;
      received += fresh;
      if (Math.abs(done - reported) >= REPORT_EVERY) emit(detail);
    },
    flush(detail) {
      emit(detail);
    },
    get done() {
      return done;
    },
    get received() {
      return received;
    },
  };
}
