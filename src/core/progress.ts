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
  /** Byte progress for long transfers and hashing. */
  bytes?: { done: number; total: number };
}

export type OnProgress = (event: ProgressEvent) => void;

export interface RunOptions {
  signal?: AbortSignal;
  onProgress?: OnProgress;
}

export const noProgress: OnProgress = () => {};
