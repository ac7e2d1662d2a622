/**
 * The verdict on whether a service's model runs with no network at start: what each
 * runtime's offline judge returns (vllm/offline-readiness.ts) and what `bundle` and
 * `check --bundle` act on (operations/offline-gate.ts). JSON field names are a contract.
 */
import type { ComponentFile } from '../bundle/component-files.js';

/** A model component's files, as every reader of model files sees them (bundle/component-files.ts). */
export interface ModelFilesView {
  name: string;
  files: readonly ComponentFile[];
}

export interface OfflineFinding {
  /** Which rule found it: 'chat-template', 'tokenizer', 'remote-code', … */
  rule: string;
  /** fail: the runtime would reach for the network (or refuse) at start; warn: it starts, but behaves unlike online. */
  status: 'fail' | 'warn';
  /** The file the model lacks, when a file is what is missing. */
  file?: string;
  detail: string;
  /** The exact next step. */
  fix: string;
  /** Where the pitfall is documented (shared/reference/offline-pitfalls.md). */
  source: string;
}

export interface OfflineVerdict {
  service: string;
  /** The model component judged. */
  component: string;
  status: 'ok' | 'warn' | 'fail';
  findings: OfflineFinding[];
}
