import type { RunOptions } from '../progress.js';
import { readSecretKey } from '../sign/keys.js';
import { type BundlePlanSummary, planBundle } from './plan-bundle.js';
import { writeBundle } from './write-bundle.js';

export interface BundleOptions extends RunOptions {
  recipePath: string;
  outDir: string;
  /** minisign secret key (from `apertus keys generate`) to sign SHA256SUMS with. */
  secretKeyPath?: string | undefined;
  dryRun?: boolean | undefined;
}

export type BundleResult =
  | { dryRun: true; plan: BundlePlanSummary }
  | {
      dryRun: false;
      plan: BundlePlanSummary;
      path: string;
      size: number;
      manifestDigest: string;
      blobs: number;
      signed: boolean;
      ms: number;
    };

/** Plan a recipe, then (unless dry-run) write the bundle: `apertus bundle` in one call. */
export async function bundle(options: BundleOptions): Promise<BundleResult> {
  const started = Date.now();
  options.onProgress?.({ step: 'plan', status: 'start' });
  const plan = await planBundle(options.recipePath, { outDir: options.outDir });
  options.onProgress?.({
    step: 'plan',
    status: 'ok',
    detail: `${plan.summary.components.length} components`,
  });
  if (options.dryRun) return { dryRun: true, plan: plan.summary };

  const secretKey = options.secretKeyPath ? await readSecretKey(options.secretKeyPath) : undefined;
  options.onProgress?.({ step: 'write', status: 'start' });
  const written = await writeBundle(plan.write, {
    outDir: options.outDir,
    secretKey,
    signal: options.signal,
    onProgress: (event) => options.onProgress?.({ ...event, step: 'write' }),
  });
  options.onProgress?.({ step: 'write', status: 'ok', detail: written.path });
  return {
    dryRun: false,
    plan: plan.summary,
    ...written,
    signed: secretKey !== undefined,
    ms: Date.now() - started,
  };
}
