/**
 * How core operations report progress without touching the terminal: they call
 * `onProgress` with plain events, and the CLI decides how (or whether) to show them.
 */
export type StepStatus = 'start' | 'ok' | 'fail' | 'skip' | 'info';

export interface ProgressEvent {
  /** Stable step id, e.g. 'transfer' or 'verify.health'. */
  step: string;
  status: StepStatus;
  /** One human line: what happened, or what is happening. */
  detail?: string;
  /**
   * Byte progress for long transfers and hashing. `received`, where given, counts only the
   * bytes that came over the network in this run (`done` also counts bytes reused from a
   * cache or a partial download): a transfer rate is made of it.
   */
  bytes?: { done: number; total: number; received?: number };
  /** The bundle component the event is about (e.g. 'model'), where there is one. */
  component?: string;
}

export type OnProgress = (event: ProgressEvent) => void;

export interface RunOptions {
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

export const noProgress: OnProgress = () => {};
