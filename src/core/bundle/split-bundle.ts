/**
 * `apertus split`: cuts an existing bundle tar into parts plus an index, streaming it
 * once and hashing each part as it is written. The parts and index are the same bytes
 * `apertus bundle --split` writes for the same bundle and size.
 */
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { ApertusError } from '../errors.js';
import { openBundle } from '../layout/bundle-reader.js';
import { loadBundle } from '../layout/load-bundle.js';
import type { SplitIndex } from '../layout/split-index.js';
import { noProgress, type RunOptions } from '../progress.js';
import { SplitTarOutput } from './part-writer.js';

export interface SplitBundleOptions extends RunOptions {
  /** Bytes per part (see parsePartSize). */
  partSize: number;
  /** Where the parts and index go; the tar's directory by default. */
  outDir?: string | undefined;
}

export interface SplitBundleResult {
  /** The index file: what verify and install take. */
  path: string;
  /** The tar that was split (left in place). */
  source: string;
  /** `<tar>.parts.sha256`, for `sha256sum -c` in the parts' directory. */
  checksumsPath: string;
  name: string;
  version: string;
  manifestDigest: string;
  /** What the index file holds: the parts, their offsets, sizes and sha256. */
  index: SplitIndex;
}

const PROGRESS_EVERY = 32 << 20;

export async function splitBundle(tarPath: string, options: SplitBundleOptions): Promise<SplitBundleResult> {
  const { signal } = options;
  const onProgress = options.onProgress ?? noProgress;
  const source = resolve(tarPath);

  // Checked to be a bundle tar before a part is written: headers and manifests only, no hashing.
  const reader = await openBundle(source, signal ? { signal } : {});
  let loaded: Awaited<ReturnType<typeof loadBundle>>;
  let size: number;
  try {
    if (reader.format !== 'tar') {
      throw new ApertusError('split-not-tar', `${tarPath} is a ${reader.format} bundle, not a bundle tar`, {
        hint:
          reader.format === 'split'
            ? 'It is split already; to split it at another size, join the parts (cat) into a tar first.'
            : 'Pass the .tar written by `apertus bundle`.',
      });
    }
    loaded = await loadBundle(reader);
    size = reader.size;
  } finally {
    await reader.close();
  }

  const outDir = resolve(options.outDir ?? dirname(source));
  await mkdir(outDir, { recursive: true });
  const output = SplitTarOutput.create({ outDir, tarFileName: basename(source), partSize: options.partSize });
  onProgress({
    step: 'split',
    status: 'info',
    detail: `splitting ${source} into parts of ${options.partSize} bytes`,
    bytes: { done: 0, total: size },
  });
  try {
    let position = 0;
    let reported = 0;
    const stream = createReadStream(source, { highWaterMark: 1 << 20, ...(signal ? { signal } : {}) });
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (position + chunk.length > size) throw changed(tarPath);
      await output.write(chunk, position);
      position += chunk.length;
      if (position - reported >= PROGRESS_EVERY) {
        reported = position;
        onProgress({ step: 'split', status: 'info', bytes: { done: position, total: size } });
      }
    }
    if (position !== size) throw changed(tarPath);
    await output.finish();
  } catch (error) {
    await output.close();
    throw error;
  }
  onProgress({ step: 'split', status: 'info', bytes: { done: size, total: size } });
  const written = output.result;
  return {
    path: written.indexPath,
    source,
    checksumsPath: written.checksumsPath,
    name: loaded.config.name,
    version: loaded.config.version,
    manifestDigest: loaded.manifestDigest,
    index: written.index,
  };
}

function changed(path: string): ApertusError {
  return new ApertusError('source-changed', `${path} changed while it was being split`, {
    kind: 'operation',
    hint: 'Make sure nothing writes to the bundle, then split it again.',
  });
}
