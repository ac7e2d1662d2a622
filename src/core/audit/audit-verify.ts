/**
 * `apertus audit verify`: read the RAG service's audit log on a host through the transport
 * and check its hash chain, and its signed checkpoints against it (checkpoints.ts). Files
 * are read in slices with `dd`, so a large log is never held whole, and only up to the size
 * it had when verification began: records the live service appends meanwhile are left for
 * the next run. The checkpoints are read before the log, so every checkpoint read anchors a
 * record already in the part of the log that is read.
 */
import { ApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { RunOptions } from '../progress.js';
import { ragDataPaths } from '../runtimes/rag/rag-service.js';
import { parsePublicKey } from '../sign/keys.js';
import { type InstallTarget, openTarget } from '../target/connect.js';
import { DEFAULT_HOST_ROOT, hostLayout, parseHostRoot } from '../target/layout.js';
import {
  auditCheckpointsPath,
  CheckpointReader,
  type CheckpointsRead,
  type CheckpointVerification,
  type HostKeyRead,
  judgeCheckpoints,
} from './checkpoints.js';
import { AuditChainVerifier, type ChainVerification } from './verify-chain.js';

/** dd block size; a slice is SLICE_BLOCKS of them. */
const BLOCK_BYTES = 1024 * 1024;
const SLICE_BLOCKS = 8;

/** `ok` is the whole verdict: the chain intact and, where checked, its checkpoints covered. */
export interface AuditLogVerification extends ChainVerification {
  /** The transport's description: 'ssh root@10.0.0.5:22' or 'local'. */
  host: string;
  logPath: string;
  /** Size of the log when verification began; the bytes verified. */
  bytes: number;
  /** The checkpoints held against the log; absent where they were not asked for (the install log). */
  checkpoints?: CheckpointVerification;
}

export interface AuditVerifyOptions extends RunOptions {
  target: InstallTarget;
  /** Install root on the host; the log defaults to <root>/data/rag/audit.log. */
  root?: string | undefined;
  logPath?: string | undefined;
  /** Hold the log to `<log>.checkpoints` (default true; the install log is anchored elsewhere). */
  checkpoints?: boolean | undefined;
  /** The host public key checkpoints verify with; default <root>/keys/host.pub. */
  hostPublicKeyPath?: string | undefined;
}

export interface CheckpointOptions {
  /** The host public key file on the host that checkpoints verify with. */
  hostPublicKeyPath: string;
}

/** The audit log's default path under an install root. */
export function defaultAuditLogPath(root: string = DEFAULT_HOST_ROOT): string {
  return ragDataPaths(root).auditLog;
}

export async function auditVerify(options: AuditVerifyOptions): Promise<AuditLogVerification> {
  const { signal, onProgress } = options;
  const root = parseHostRoot(options.root ?? DEFAULT_HOST_ROOT);
  const logPath = options.logPath ?? defaultAuditLogPath(root);
  const hostPublicKeyPath = options.hostPublicKeyPath ?? hostLayout(root).hostPublicKey;
  if (!logPath.startsWith('/')) {
    throw new ApertusError('usage', `The audit log path ${logPath} is not absolute.`, {
      hint: 'Pass --log with an absolute path on the host, e.g. /var/lib/apertus/data/rag/audit.log.',
    });
  }
  const transport = await openTarget(options.target, { signal, onProgress });
  try {
    return await verifyAuditLogOnHost(transport, logPath, {
      signal,
      onProgress,
      ...(options.checkpoints === false ? {} : { checkpoints: { hostPublicKeyPath } }),
    });
  } finally {
    await transport.close();
  }
}

/**
 * Verifies the audit log at `logPath` over an open transport (install's verification uses
 * this), and with `checkpoints`, holds it to `<log>.checkpoints`.
 */
export async function verifyAuditLogOnHost(
  transport: Transport,
  logPath: string,
  { signal, onProgress, checkpoints }: RunOptions & { checkpoints?: CheckpointOptions } = {},
): Promise<AuditLogVerification> {
  onProgress?.({ step: 'audit.read', status: 'start', detail: `${logPath} on ${transport.description}` });
  const anchors =
    checkpoints === undefined
      ? null
      : await readCheckpointsOnHost(transport, auditCheckpointsPath(logPath), checkpoints.hostPublicKeyPath, {
          signal,
        });

  const bytes = await fileSize(transport, logPath, signal);
  if (bytes === null && (anchors?.read?.count ?? 0) === 0) {
    throw new ApertusError(
      'audit-log-missing',
      `There is no audit log at ${logPath} on ${transport.description}.`,
      {
        kind: 'operation',
        hint: 'The RAG service writes it on its first request. Pass --log with its path if the service was started with another --audit-log, or --root for another install root.',
      },
    );
  }

  const verifier = new AuditChainVerifier({ rememberSeqs: anchors?.read?.verified.keys() ?? [] });
  await readInSlices(transport, logPath, bytes ?? 0, (text) => verifier.push(text), {
    signal,
    stopped: () => !verifier.ok,
    onSlice: (done) =>
      onProgress?.({ step: 'audit.read', status: 'info', bytes: { done, total: bytes ?? 0 } }),
  });
  const chain = verifier.finish({ allowIncompleteTail: true });
  const judged =
    anchors === null
      ? undefined
      : judgeCheckpoints(anchors.path, anchors.read, anchors.hostKey, {
          exists: bytes !== null,
          chain,
          hashes: verifier.rememberedHashes,
        });
  const ok = chain.ok && (judged?.ok ?? true);
  onProgress?.({
    step: 'audit.read',
    status: ok ? 'ok' : 'fail',
    detail: !chain.ok
      ? `line ${chain.firstBroken?.line}: ${chain.firstBroken?.reason}`
      : judged !== undefined && !judged.ok
        ? `checkpoints: ${judged.status}`
        : `${chain.records} records`,
  });
  return {
    host: transport.description,
    logPath,
    bytes: bytes ?? 0,
    ...chain,
    ok,
    ...(judged === undefined ? {} : { checkpoints: judged }),
  };
}

/** The checkpoints file (null when there is none) read against the host key. */
async function readCheckpointsOnHost(
  transport: Transport,
  path: string,
  hostPublicKeyPath: string,
  { signal }: { signal?: AbortSignal | undefined },
): Promise<{ path: string; read: CheckpointsRead | null; hostKey: HostKeyRead }> {
  const hostKey = await readHostPublicKey(transport, hostPublicKeyPath, signal);
  const bytes = await fileSize(transport, path, signal);
  if (bytes === null) return { path, read: null, hostKey };
  const reader = new CheckpointReader(hostKey.key);
  await readInSlices(transport, path, bytes, (text) => reader.push(text), { signal });
  return { path, read: reader.finish(), hostKey };
}

async function readHostPublicKey(
  transport: Transport,
  path: string,
  signal: AbortSignal | undefined,
): Promise<HostKeyRead> {
  const file = shellQuote([path]);
  const result = await transport.exec(`if [ -f ${file} ]; then cat ${file}; else exit 3; fi`, {
    reject: false,
    signal,
  });
  if (result.exitCode === 3) return { path, key: null, problem: 'missing' };
  if (result.exitCode !== 0) {
    return { path, key: null, problem: `unreadable (${result.stderr.trim() || `exit ${result.exitCode}`})` };
  }
  try {
    return { path, key: parsePublicKey(result.stdout, path) };
  } catch (error) {
    return { path, key: null, problem: `unusable (${(error as Error).message})` };
  }
}

/** A file's size on the host; null when there is no such file. */
async function fileSize(transport: Transport, path: string, signal?: AbortSignal): Promise<number | null> {
  const file = shellQuote([path]);
  const result = await transport.exec(`if [ -f ${file} ]; then wc -c < ${file}; else exit 3; fi`, {
    reject: false,
    signal,
  });
  if (result.exitCode === 3) return null;
  const bytes = Number.parseInt(result.stdout.trim(), 10);
  if (result.exitCode !== 0 || !Number.isSafeInteger(bytes)) {
    throw new ApertusError(
      'audit-log-unreadable',
      `Cannot read ${path} on ${transport.description}: ${result.stderr.trim() || result.stdout.trim() || `exit ${result.exitCode}`}.`,
      { kind: 'operation', hint: 'Check that the SSH user may read the audit files (they are mode 0640).' },
    );
  }
  return bytes;
}

/** Feeds the first `bytes` of a file on the host to `push`, one dd slice at a time. */
async function readInSlices(
  transport: Transport,
  path: string,
  bytes: number,
  push: (text: string) => void,
  {
    signal,
    stopped = () => false,
    onSlice,
  }: { signal?: AbortSignal | undefined; stopped?: () => boolean; onSlice?: (done: number) => void },
): Promise<void> {
  const file = shellQuote([path]);
  const sliceBytes = BLOCK_BYTES * SLICE_BLOCKS;
  for (let offset = 0; offset < bytes && !stopped(); offset += sliceBytes) {
    signal?.throwIfAborted();
    // `; echo .`: both transports strip one final newline from stdout, which may be the file's own.
    const result = await transport.exec(
      `dd if=${file} bs=${BLOCK_BYTES} skip=${offset / BLOCK_BYTES} count=${SLICE_BLOCKS} 2>/dev/null && echo .`,
      { reject: false, signal },
    );
    if (result.exitCode !== 0 || !result.stdout.endsWith('.')) {
      throw new ApertusError(
        'audit-log-unreadable',
        `Reading ${path} on ${transport.description} at byte ${offset} failed: ${result.stderr.trim() || `exit ${result.exitCode}`}.`,
        { kind: 'operation', hint: 'Check that the SSH user may read the file and that dd is installed.' },
      );
    }
    // Only what the file held when we began: the service may have appended since.
    push(result.stdout.slice(0, -1).slice(0, Math.min(sliceBytes, bytes - offset)));
    onSlice?.(Math.min(offset + sliceBytes, bytes));
  }
}
