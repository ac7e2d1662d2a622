import { assertBundleOfflineReady, writePlanModelViews } from '../operations/offline-gate.js';
import type { RunOptions } from '../progress.js';
import { PROJECT_ROOT } from '../project-root.js';
import type { OfflineVerdict } from '../runtimes/offline-verdict.js';
import { completeServices } from '../runtimes/resolve-services.js';
import { readSecretKey } from '../sign/keys.js';
import { defaultCacheDir } from '../sources/cache-dir.js';
import { collectCliFiles } from './cli-files.js';
import { deltaWrite, readDeltaBase } from './delta-bundle.js';
import { assertDiskRoom, type DiskPlanEntry, planDisk } from './disk-plan.js';
import type { WrittenSplit } from './part-writer.js';
import { type BundlePlanSummary, fetchBundle, resolveBundle } from './plan-bundle.js';
import { writeBundle } from './write-bundle.js';

export interface BundleOptions extends RunOptions {
  recipePath: string;
  outDir: string;
  /** Downloads are kept here between runs (resume, reuse); default defaultCacheDir(env). */
  cacheDir?: string | undefined;
  /** Where HF_TOKEN, HF_ENDPOINT and HF_HOME are read from. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** The Hugging Face Hub (or an internal mirror); overrides HF_ENDPOINT. */
  hubUrl?: string | undefined;
  /** minisign secret key (from `apertus keys generate`) to sign SHA256SUMS with. */
  secretKeyPath?: string | undefined;
  dryRun?: boolean | undefined;
  /** Write the tar as parts of this many bytes plus an index (see parsePartSize). */
  partSize?: number | undefined;
  /** Write a delta: leave out the layer blobs this old bundle (or list of digests) holds. */
  since?: string | undefined;
  /**
   * Carry the apertus CLI and its Node under apertus/ (about 113 MB). Default: yes for a
   * full bundle, no for a delta (the operator has the CLI from the base bundle).
   */
  cli?: boolean | undefined;
}

/** The steps `bundle` reports progress for, in order. */
export const BUNDLE_STEPS = ['plan', 'fetch', 'write'] as const;
export type BundleStep = (typeof BUNDLE_STEPS)[number];

/** The apertus CLI a bundle carries under apertus/. */
export interface CliSummary {
  files: number;
  bytes: number;
  version: string;
  node: string;
}

export type BundleResult =
  | {
      dryRun: true;
      plan: BundlePlanSummary;
      cli: CliSummary | null;
      disk: DiskPlanEntry[];
      /** The key ID the bundle would be signed with (its key was read and parsed), or null. */
      signingKeyId: string | null;
    }
  | {
      dryRun: false;
      plan: BundlePlanSummary;
      path: string;
      size: number;
      manifestDigest: string;
      blobs: number;
      /** The parts and index when written split; `path` is then the index. */
      split: WrittenSplit | null;
      signed: boolean;
      /** The key ID SHA256SUMS was signed with, or null. */
      signingKeyId: string | null;
      ms: number;
      /** A delta's left-out layer blobs; absent for a full bundle. */
      omitted?: { blobs: number; bytes: number };
      /** The CLI carried under apertus/, or null. */
      cli: CliSummary | null;
      /** What each filesystem needed, checked before the fetch. */
      disk: DiskPlanEntry[];
      /** Each served model judged for starting offline; warnings stay here (failures refuse the bundle). */
      offline: OfflineVerdict[];
    };

/** Plan a recipe, then (unless dry-run) write the bundle: `apertus bundle` in one call. */
export async function bundle(options: BundleOptions): Promise<BundleResult> {
  const started = Date.now();
  const env = options.env ?? {};
  const planOptions = {
    outDir: options.outDir,
    cacheDir: options.cacheDir ?? defaultCacheDir(env),
    env,
    hubUrl: options.hubUrl,
  };
  const ctx = { signal: options.signal, onProgress: options.onProgress };
  // Read before anything is resolved or fetched, dry run too: a wrong key file fails in a
  // second, not after the downloads; and so does a bad --since.
  const secretKey = options.secretKeyPath ? await readSecretKey(options.secretKeyPath) : undefined;
  const signingKeyId = secretKey?.keyId ?? null;
  const deltaBase =
    options.since === undefined ? undefined : await readDeltaBase(options.since, { signal: options.signal });
  options.onProgress?.({ step: 'plan', status: 'start' });
  const resolved = await resolveBundle(options.recipePath, planOptions, ctx);
  options.onProgress?.({
    step: 'plan',
    status: 'ok',
    detail: `${resolved.summary.components.length} components, ${resolved.summary.totalBytes} bytes`,
  });
  const cli =
    (options.cli ?? options.since === undefined)
      ? await collectCliFiles(PROJECT_ROOT, options.signal)
      : undefined;
  const cliSummary = cli
    ? { files: cli.files.length, bytes: cli.bytes, version: cli.version, node: cli.node }
    : null;
  const disk = await planDisk([
    { purpose: 'bundle', path: options.outDir, bytes: resolved.summary.totalBytes + (cli?.bytes ?? 0) },
    {
      purpose: 'downloads',
      path: planOptions.cacheDir,
      bytes: resolved.summary.components
        .filter((c) => c.source.startsWith('hf:') || c.source.startsWith('oci:'))
        .reduce((sum, c) => sum + c.bytes, 0),
    },
  ]);
  if (options.dryRun) return { dryRun: true, plan: resolved.summary, cli: cliSummary, disk, signingKeyId };
  assertDiskRoom(disk);

  options.onProgress?.({ step: 'fetch', status: 'start' });
  const writePlan = await fetchBundle(resolved, planOptions, {
    ...ctx,
    onProgress: (event) => options.onProgress?.({ ...event, step: 'fetch', status: 'info' }),
  });
  options.onProgress?.({ step: 'fetch', status: 'ok' });
  writePlan.services = await completeServices(writePlan.services, await writePlanModelViews(writePlan));
  const plan = { summary: resolved.summary, write: writePlan };
  // Refused before anything is written: a model that would reach for the network at start.
  const offline = await assertBundleOfflineReady(plan.write);

  options.onProgress?.({ step: 'write', status: 'start' });
  const written = await writeBundle(plan.write, {
    outDir: options.outDir,
    secretKey,
    split: options.partSize === undefined ? undefined : { partSize: options.partSize },
    delta: deltaBase === undefined ? undefined : await deltaWrite(plan.write, deltaBase),
    cli,
    signal: options.signal,
    onProgress: (event) => options.onProgress?.({ ...event, step: 'write' }),
  });
  options.onProgress?.({ step: 'write', status: 'ok', detail: written.path });
  return {
    dryRun: false,
    plan: plan.summary,
    ...written,
    signed: secretKey !== undefined,
    signingKeyId,
    cli: cliSummary,
    disk,
    offline,
    ms: Date.now() - started,
  };
}
