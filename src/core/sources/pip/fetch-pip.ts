/**
 * The files of a resolved `pip:` source, ready to be written as layers: the lock, then
 * each wheel, every one checked against the digest it was locked with (the cache is a
 * directory other runs write to, and the host will refuse any byte that differs).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { ApertusError } from '../../errors.js';
import type { FetchedFile, SourceContext } from '../types.js';
import { LOCK_FILE, type PipResolvedSource, WHEELS_DIR } from './resolve-pip.js';

export async function fetchPip(
  resolved: PipResolvedSource,
  ctx: Pick<SourceContext, 'signal'>,
): Promise<FetchedFile[]> {
  const files: FetchedFile[] = [
    {
      path: LOCK_FILE,
      size: resolved.lock.size,
      digest: resolved.lock.digest,
      localPath: resolved.lock.localPath,
    },
  ];
  for (const wheel of resolved.wheels) {
    const digest = await sha256File(wheel.localPath, ctx.signal);
    if (digest !== wheel.digest) {
      throw new ApertusError(
        'pip-cache-changed',
        `${wheel.localPath} no longer has the digest it was locked with (${wheel.digest}).`,
        {
          kind: 'operation',
          hint: 'Something else wrote to the apertus cache; delete that file and bundle again.',
        },
      );
    }
    files.push({
      path: `${WHEELS_DIR}/${wheel.fileName}`,
      size: wheel.size,
      digest: wheel.digest,
      localPath: wheel.localPath,
    });
  }
  return files;
}

async function sha256File(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, signal ? { signal } : {})) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}
