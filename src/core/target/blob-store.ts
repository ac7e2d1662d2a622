import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { ApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { BlobTransfer } from '../operations/install-plan.js';
import type { OnProgress } from '../progress.js';
import type { HostLayout } from './layout.js';
import { type HashTool, hashCommand } from './preflight.js';

export interface TransferOptions {
  transport: Transport;
  layout: HostLayout;
  hashTool: HashTool;
  uploads: BlobTransfer[];
  /** Opens a blob of the bundle from `start`: bundles are read in place, never copied. */
  openBlob: (digest: string, start: number) => Readable;
  signal?: AbortSignal | undefined;
  onProgress: OnProgress;
  /**
   * Blobs already hashed on this side in this run and found right: sent without hashing
   * again (the host hashes what arrives all the same). Blobs this transfer hashes and finds
   * right are added.
   */
  hashed?: Set<string> | undefined;
}

export interface TransferResult {
  blobs: number;
  bytes: number;
  ms: number;
}

/** Exit statuses of the receiver script (receiveScript). */
const EXIT = { corrupt: 86, short: 88, commitFailed: 89, badFrame: 90 } as const;

/** What the operator side sends after a blob whose bytes did not match its size. */
const WRONG_SIZE = 'wrong-size';

/**
 * Sends every missing blob in ONE remote command, each in one pass over its bytes: this side
 * reads it from the bundle, hashes it and sends it; the host writes it to `.incoming-<hex>`
 * and hashes it as it arrives. A blob is moved into the store (read-only, under its digest)
 * only when both hashes equal its digest, so a blob in the store is always whole and correct.
 *
 * One command for all blobs, because each command costs a login shell on the host (0.5 s
 * where ~/.bashrc does work, measured by `npm run bench`), and a bundle has many small blobs.
 * An interrupted upload keeps what arrived in `.incoming-<hex>`; the next run sends only the
 * rest (`resumeFrom`), and both sides hash the kept prefix from their own copy of it.
 */
export async function transferBlobs(options: TransferOptions): Promise<TransferResult> {
  const { transport, uploads, onProgress } = options;
  const total = uploads.reduce((sum, u) => sum + u.size - u.resumeFrom, 0);
  const started = Date.now();
  if (uploads.length === 0) return { blobs: 0, bytes: 0, ms: 0 };
  let done = 0;
  /** Set when a blob's source gave another number of bytes than its size; the stream stops there. */
  let wrongSize: { digest: string; read: number; size: number } | undefined;

  async function* frames(): AsyncGenerator<Buffer> {
    for (const blob of uploads) {
      const hex = hexOf(blob.digest);
      yield Buffer.from(`${hex} ${blob.size} ${blob.resumeFrom}\n`);
      // Read from the start: the kept prefix is hashed here too, but not sent again.
      const hash = options.hashed?.has(blob.digest) ? undefined : createHash('sha256');
      let read = 0;
      for await (const chunk of options.openBlob(blob.digest, 0)) {
        let data = (typeof chunk === 'string' ? Buffer.from(chunk) : chunk) as Buffer;
        if (read + data.length > blob.size) {
          // More bytes than the blob's size: the host still gets exactly its size, then is told.
          wrongSize = { digest: blob.digest, read: read + data.length, size: blob.size };
          data = data.subarray(0, blob.size - read);
        }
        hash?.update(data);
        const skip = Math.max(0, blob.resumeFrom - read);
        read += data.length;
        if (skip < data.length) {
          const part = skip > 0 ? data.subarray(skip) : data;
          done += part.length;
          onProgress({ step: 'transfer', status: 'info', bytes: { done, total } });
          yield part;
        }
        if (wrongSize !== undefined) break;
      }
      if (wrongSize === undefined && read < blob.size)
        wrongSize = { digest: blob.digest, read, size: blob.size };
      if (wrongSize !== undefined) {
        // Too short: end the stream here, and the host keeps what arrived (a prefix to resume
        // from). Too long: the host has the blob's size in bytes and is told they are wrong.
        if (wrongSize.read > blob.size) yield Buffer.from(`${WRONG_SIZE}\n`);
        return;
      }
      const sent = hash === undefined ? hex : hash.digest('hex');
      if (sent === hex) options.hashed?.add(blob.digest);
      yield Buffer.from(`${sent}\n`);
    }
  }

  const result = await transport.exec(receiveScript(options.layout, options.hashTool), {
    stdin: Readable.from(frames(), { objectMode: false }),
    reject: false,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const committed = new Set(
    result.stdout.split('\n').flatMap((line) => (line.startsWith('ok ') ? [line.slice(3)] : [])),
  );
  const failure = result.stdout
    .split('\n')
    .map((line) => line.split(' '))
    .find((words) => words[0] !== 'ok' && words[0] !== '');
  if (wrongSize !== undefined) {
    const { digest, read, size } = wrongSize;
    throw new ApertusError(
      'upload-size-mismatch',
      `Blob ${digest} of the bundle gave ${read} bytes while it was sent to ${transport.description}, but ${size} were expected.`,
      {
        kind: 'operation',
        hint: 'The bundle changed while it was read, or is damaged: run `apertus verify` on it, then install again (what arrived is kept, the upload resumes).',
      },
    );
  }
  if (result.exitCode === EXIT.corrupt && failure) throw corruptError(transport, failure);
  if (result.exitCode !== 0 || committed.size !== uploads.length) {
    const why = result.stderr.trim().split('\n').slice(-5).join('\n') || failure?.join(' ') || '';
    throw new ApertusError(
      result.exitCode === EXIT.commitFailed ? 'blob-commit-failed' : 'upload-failed',
      `Uploading ${uploads.length - committed.size} of ${uploads.length} blobs to ${options.layout.blobDir} on ${transport.description} failed (exit ${result.exitCode})${why ? `: ${why}` : ''}`,
      {
        kind: 'operation',
        hint: `Check that ${options.layout.blobDir} is writable and has space (df -h), then run install again: blobs already stored stay, a partial upload resumes.`,
        details: result,
      },
    );
  }
  return { blobs: uploads.length, bytes: total, ms: Date.now() - started };
}

function corruptError(transport: Transport, [, hex, host, operator]: string[]): ApertusError {
  if (operator !== hex) {
    return new ApertusError(
      'bundle-blob-corrupt',
      `Blob sha256:${hex} of the bundle hashes to ${operator === WRONG_SIZE ? 'bytes of the wrong size' : `sha256:${operator}`} as it is read; nothing of it was stored on ${transport.description}.`,
      {
        kind: 'operation',
        hint: 'The bundle is damaged: run `apertus verify` on it, copy it again from its source medium, then install again.',
      },
    );
  }
  return new ApertusError(
    'blob-corrupt-on-host',
    `Blob sha256:${hex} arrived on ${transport.description} with SHA-256 ${host === 'none' ? '(none)' : host}.`,
    {
      kind: 'operation',
      hint: 'The copy was damaged in transit or on the host disk; run install again to upload it anew, and check the host disk if it repeats.',
    },
  );
}

/**
 * The host's side: for each frame `<hex> <size> <from>\n`, then size-from bytes, then the
 * sender's hash and `\n`, write the bytes to `.incoming-<hex>` (appending after a kept
 * prefix of `from` bytes) while hashing the whole blob, and commit it when the size and
 * both hashes are right. `head -c` reads no byte past its count (GNU, busybox), so frames
 * follow each other on one stdin. Every value from the stream is checked before it becomes
 * part of a path; the directory is quoted here.
 */
function receiveScript(layout: HostLayout, tool: HashTool): string {
  const hash = hashCommand(tool);
  return [
    `d=${shellQuote([layout.blobDir])}`,
    'mkdir -p "$d" || exit 1',
    "while IFS=' ' read -r hex size from; do",
    `  case $hex in *[!0-9a-f]*) echo bad-frame; exit ${EXIT.badFrame};; esac`,
    `  case $size in ''|*[!0-9]*) echo bad-frame; exit ${EXIT.badFrame};; esac`,
    `  case $from in ''|*[!0-9]*) echo bad-frame; exit ${EXIT.badFrame};; esac`,
    `  [ \${#hex} -eq 64 ] && [ "$from" -le "$size" ] || { echo bad-frame; exit ${EXIT.badFrame}; }`,
    '  t="$d/.incoming-$hex"',
    '  if [ "$from" -gt 0 ]; then',
    `    got=$( { cat "$t"; head -c "$((size - from))" | tee -a "$t"; } | ${hash})`,
    '  else',
    `    got=$(head -c "$size" | tee "$t" | ${hash})`,
    '  fi',
    '  got=$(printf %s "$got" | cut -d" " -f1)',
    '  IFS= read -r theirs || theirs=none',
    '  have=$(wc -c < "$t") || have=0',
    // Cut short (the sender stopped, the disk filled up): keep the prefix, the next run resumes.
    `  if [ "$((have))" -lt "$size" ]; then echo "short $hex $((have))"; exit ${EXIT.short}; fi`,
    `  if [ "$((have))" -ne "$size" ] || [ "$got" != "$hex" ] || [ "$theirs" != "$hex" ]; then`,
    `    rm -f "$t"; echo "corrupt $hex \${got:-none} $theirs"; exit ${EXIT.corrupt}`,
    '  fi',
    `  chmod 0444 "$t" && mv -f "$t" "$d/$hex" || { echo "commit-failed $hex"; exit ${EXIT.commitFailed}; }`,
    '  echo "ok $hex"',
    'done',
  ].join('\n');
}

function hexOf(digest: string): string {
  return digest.replace(/^sha256:/, '');
}
