import type { Readable } from 'node:stream';
import { ApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { OnProgress } from '../progress.js';
import type { HostLayout } from './host-layout.js';
import type { BlobTransfer } from './install-plan.js';
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
}

export interface TransferResult {
  blobs: number;
  bytes: number;
  ms: number;
}

/**
 * Uploads each missing blob to `.incoming-<hex>` (appending after an interrupted upload),
 * verifies its SHA-256 on the host, and only then moves it into the store: a blob in the
 * store is always whole and correct.
 */
export async function transferBlobs(options: TransferOptions): Promise<TransferResult> {
  const { transport, layout, uploads, onProgress } = options;
  const total = uploads.reduce((sum, u) => sum + u.size - u.resumeFrom, 0);
  const started = Date.now();
  let done = 0;

  await transport.exec(shellQuote(['mkdir', '-p', layout.blobDir]), { signal: options.signal });
  for (const blob of uploads) {
    options.signal?.throwIfAborted();
    const incoming = layout.incoming(blob.digest);
    const before = done;
    const onBytes = (bytes: number) => {
      done = before + bytes;
      onProgress({ step: 'transfer', status: 'info', bytes: { done, total } });
    };
    const source = options.openBlob(blob.digest, blob.resumeFrom);
    if (blob.resumeFrom > 0) {
      await appendUpload(transport, source, incoming, onBytes, options.signal);
    } else {
      await transport.upload(source, incoming, { size: blob.size, signal: options.signal, onBytes });
    }
    done = before + blob.size - blob.resumeFrom;
    await commitBlob(options, blob.digest, incoming);
  }
  return { blobs: uploads.length, bytes: total, ms: Date.now() - started };
}

async function appendUpload(
  transport: Transport,
  source: Readable,
  file: string,
  onBytes: (done: number) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  let bytes = 0;
  source.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    onBytes(bytes);
  });
  await transport.exec(`cat >> ${shellQuote([file])}`, { stdin: source, signal });
}

async function commitBlob(options: TransferOptions, digest: string, incoming: string): Promise<void> {
  const { transport, layout } = options;
  const expected = digest.replace(/^sha256:/, '');
  const result = await transport.exec(hashCommand(options.hashTool, incoming), { signal: options.signal });
  const actual = result.stdout.trim().split(/\s+/)[0] ?? '';
  if (actual !== expected) {
    await transport.exec(shellQuote(['rm', '-f', incoming]), { reject: false });
    throw new ApertusError(
      'blob-corrupt-on-host',
      `Blob ${digest} arrived on ${transport.description} with SHA-256 ${actual || '(none)'}.`,
      {
        kind: 'operation',
        hint: 'The copy was damaged in transit or on the host disk; run install again to upload it anew, and check the host disk if it repeats.',
      },
    );
  }
  await transport.exec(
    `${shellQuote(['chmod', '0444', incoming])} && ${shellQuote(['mv', '-f', incoming, layout.blob(digest)])}`,
    { signal: options.signal },
  );
}
