/**
 * `apertus audit verify`: read the RAG service's audit log on a host through the transport
 * and check its hash chain. The log is read in slices with `dd`, so a large log is never
 * held whole, and only up to the size it had when verification began: records the live
 * service appends meanwhile are left for the next run.
 */
import { ApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { RunOptions } from '../progress.js';
import { ragDataPaths } from '../runtimes/rag/rag-service.js';
import { type InstallTarget, openTarget } from '../target/connect.js';
import { DEFAULT_HOST_ROOT } from '../target/layout.js';
import { AuditChainVerifier, type ChainVerification } from './verify-chain.js';

/** dd block size; a slice is SLICE_BLOCKS of them. */
const BLOCK_BYTES = 1024 * 1024;
const SLICE_BLOCKS = 8;

export interface AuditLogVerification extends ChainVerification {
  /** The transport's description: 'ssh root@10.0.0.5:22' or 'local'. */
  host: string;
  logPath: string;
  /** Size of the log when verification began; the bytes verified. */
  bytes: number;
}

export interface AuditVerifyOptions extends RunOptions {
  target: InstallTarget;
  /** Install root on the host; the log defaults to <root>/data/rag/audit.log. */
  root?: string | undefined;
  logPath?: string | undefined;
}

/** The audit log's default path under an install root. */
export function defaultAuditLogPath(root: string = DEFAULT_HOST_ROOT): string {
  return ragDataPaths(root).auditLog;
}

export async function auditVerify(options: AuditVerifyOptions): Promise<AuditLogVerification> {
  const { signal, onProgress } = options;
  const logPath = options.logPath ?? defaultAuditLogPath(options.root);
  if (!logPath.startsWith('/')) {
    throw new ApertusError('usage', `The audit log path ${logPath} is not absolute.`, {
      hint: 'Pass --log with an absolute path on the host, e.g. /var/lib/apertus/data/rag/audit.log.',
    });
  }
  const transport = await openTarget(options.target, { signal, onProgress });
  try {
    return await verifyAuditLogOnHost(transport, logPath, { signal, onProgress });
  } finally {
    await transport.close();
  }
}

/** Verifies the audit log at `logPath` over an open transport (install's verification uses this). */
export async function verifyAuditLogOnHost(
  transport: Transport,
  logPath: string,
  { signal, onProgress }: RunOptions = {},
): Promise<AuditLogVerification> {
  const file = shellQuote([logPath]);
  onProgress?.({ step: 'audit.read', status: 'start', detail: `${logPath} on ${transport.description}` });
  const sizeResult = await transport.exec(`if [ -f ${file} ]; then wc -c < ${file}; else exit 3; fi`, {
    reject: false,
    signal,
  });
  if (sizeResult.exitCode === 3) {
    throw new ApertusError(
      'audit-log-missing',
      `There is no audit log at ${logPath} on ${transport.description}.`,
      {
        kind: 'operation',
        hint: 'The RAG service writes it on its first request. Pass --log with its path if the service was started with another --audit-log, or --root for another install root.',
      },
    );
  }
  const bytes = Number.parseInt(sizeResult.stdout.trim(), 10);
  if (sizeResult.exitCode !== 0 || !Number.isSafeInteger(bytes)) {
    throw new ApertusError(
      'audit-log-unreadable',
      `Cannot read ${logPath} on ${transport.description}: ${sizeResult.stderr.trim() || sizeResult.stdout.trim() || `exit ${sizeResult.exitCode}`}.`,
      { kind: 'operation', hint: 'Check that the SSH user may read the log (it is mode 0640).' },
    );
  }

  const verifier = new AuditChainVerifier();
  const sliceBytes = BLOCK_BYTES * SLICE_BLOCKS;
  for (let offset = 0; offset < bytes && verifier.ok; offset += sliceBytes) {
    signal?.throwIfAborted();
    // `; echo .`: both transports strip one final newline from stdout, which may be the log's own.
    const result = await transport.exec(
      `dd if=${file} bs=${BLOCK_BYTES} skip=${offset / BLOCK_BYTES} count=${SLICE_BLOCKS} 2>/dev/null && echo .`,
      { reject: false, signal },
    );
    if (result.exitCode !== 0 || !result.stdout.endsWith('.')) {
      throw new ApertusError(
        'audit-log-unreadable',
        `Reading ${logPath} on ${transport.description} at byte ${offset} failed: ${result.stderr.trim() || `exit ${result.exitCode}`}.`,
        { kind: 'operation', hint: 'Check that the SSH user may read the log and that dd is installed.' },
      );
    }
    // Only what the log held when we began: the service may have appended since.
    verifier.push(result.stdout.slice(0, -1).slice(0, Math.min(sliceBytes, bytes - offset)));
    onProgress?.({
      step: 'audit.read',
      status: 'info',
      bytes: { done: Math.min(offset + sliceBytes, bytes), total: bytes },
    });
  }
  const verification = verifier.finish({ allowIncompleteTail: true });
  onProgress?.({
    step: 'audit.read',
    status: verification.ok ? 'ok' : 'fail',
    detail: verification.ok
      ? `${verification.records} records`
      : `line ${verification.firstBroken?.line}: ${verification.firstBroken?.reason}`,
  });
  return { host: transport.description, logPath, bytes, ...verification };
}
