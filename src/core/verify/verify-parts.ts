/**
 * Checks each part of a split bundle against its index (presence, size, sha256),
 * streaming, so the result names the one medium to copy again. One result per part,
 * its subject the part's file name.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { COPY_PART_AGAIN, describePart, type SplitIndex } from '../layout/split-index.js';
import { noProgress, type RunOptions } from '../progress.js';
import type { VerifyResult } from './verify-bundle.js';

const PROGRESS_EVERY = 32 << 20;

export async function verifySplitParts(
  indexPath: string,
  index: SplitIndex,
  options: RunOptions = {},
): Promise<VerifyResult[]> {
  const { signal } = options;
  const onProgress = options.onProgress ?? noProgress;
  const directory = dirname(indexPath);
  const results: VerifyResult[] = [];
  const total = index.tar.size;
  let done = 0;
  let reported = 0;
  onProgress({
    step: 'verify.parts',
    status: 'info',
    detail: `checking ${index.parts.length} parts`,
    bytes: { done, total },
  });

  for (const part of index.parts) {
    signal?.throwIfAborted();
    const path = join(directory, part.file);
    const what = describePart(index, part);
    const result = (status: VerifyResult['status'], problem: string): void => {
      results.push({
        subject: part.file,
        status,
        detail: status === 'ok' ? `${what} ${problem}` : `${what} ${problem} — ${COPY_PART_AGAIN}`,
      });
    };
    const stats = await stat(path).catch(() => undefined);
    if (stats === undefined || !stats.isFile()) {
      result('missing', stats === undefined ? 'is missing' : 'is not a regular file');
      done += part.size;
      continue;
    }
    if (stats.size !== part.size) {
      result('invalid', `is ${stats.size} bytes, the index says ${part.size}`);
      done += part.size;
      continue;
    }
    const hash = createHash('sha256');
    try {
      const stream = createReadStream(path, { highWaterMark: 1 << 20, ...(signal ? { signal } : {}) });
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        hash.update(chunk);
        done += chunk.length;
        if (done - reported >= PROGRESS_EVERY) {
          reported = done;
          onProgress({ step: 'verify.parts', status: 'info', bytes: { done, total } });
        }
      }
    } catch (error) {
      if (signal?.aborted) throw error;
      result('invalid', `cannot be read (${(error as Error).message})`);
      continue;
    }
    const actual = hash.digest('hex');
    if (actual === part.sha256) result('ok', 'sha256 matches the index');
    else
      result(
        'digest-mismatch',
        `digest mismatch (content sha256:${actual}, the index says sha256:${part.sha256})`,
      );
  }
  onProgress({ step: 'verify.parts', status: 'info', bytes: { done: total, total } });
  return results;
}
