/**
 * The host's install audit log (DESIGN.md section 3, `<root>/audit.log`): one record per
 * install that changed the host, hash-chained like the RAG service's request log and in
 * the same canonical format, so `apertus audit verify --log <root>/audit.log` checks it
 * with the same verifier. A record maps onto the format's fields as:
 *
 *   caller          who ran apertus: `<user>@<machine>` of the installing process
 *   method          'INSTALL', or 'ROLLBACK' for `apertus rollback`
 *   endpoint        `<bundle name>@<version>` (for a rollback: the release it went back to)
 *   status          0 when the release went live, 1 when verification failed and it was rolled back
 *   requestSha256   the bundle manifest digest (hex): exactly what was installed
 *   responseSha256  SHA-256 of the install report written under reports/
 *   documents       [the report's path, the release the host runs afterwards or '']
 *
 * Appends happen under the host lock, so installs never interleave records.
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import {
  type AuditRecord,
  auditRecordHash,
  canonicalAuditLine,
  GENESIS_PREV,
  verifyAuditChain,
} from '../audit/verify-chain.js';
import { ApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { HostLayout } from './layout.js';

/** Where a new record chains on: the last record's seq and hash. */
export interface AuditTail {
  seq: number;
  hash: string;
}

/** Reads the last record of the log; refuses a log whose last line is not a sound record. */
export async function readAuditTail(
  transport: Transport,
  layout: HostLayout,
  signal?: AbortSignal,
): Promise<AuditTail> {
  const file = shellQuote([layout.auditLog]);
  const result = await transport.exec(`if [ -s ${file} ]; then tail -n 1 ${file}; else exit 3; fi`, {
    reject: false,
    signal,
  });
  if (result.exitCode === 3) return { seq: 0, hash: GENESIS_PREV };
  const line = result.stdout.trim();
  // The last record alone: a chain of one, which the verifier accepts only when seq is 1,
  // so check its form and hash here and leave the whole chain to `audit verify`.
  const record = parseRecord(line);
  if (result.exitCode !== 0 || record === null || auditRecordHash(record) !== record.hash) {
    throw new ApertusError(
      'install-audit-damaged',
      `The last line of ${layout.auditLog} on ${transport.description} is not a sound audit record; apertus will not chain a new record onto it.`,
      {
        kind: 'operation',
        hint: `Run \`apertus audit verify --log ${layout.auditLog}\` against the host to find the first broken record, and keep the damaged log as evidence before moving it aside.`,
      },
    );
  }
  return { seq: record.seq, hash: record.hash };
}

export interface InstallAuditEntry {
  bundle: { name: string; version: string; manifestDigest: string };
  ok: boolean;
  reportPath: string;
  reportText: string;
  /** The release `current` points at afterwards; null when none. */
  current: string | null;
  /** What changed the host; 'INSTALL' when not given. */
  method?: 'INSTALL' | 'ROLLBACK';
}

/** Appends one record after `tail` and returns it. */
export async function appendInstallRecord(
  transport: Transport,
  layout: HostLayout,
  tail: AuditTail,
  entry: InstallAuditEntry,
  signal?: AbortSignal,
): Promise<AuditRecord> {
  const body: Omit<AuditRecord, 'hash'> = {
    seq: tail.seq + 1,
    time: new Date().toISOString(),
    caller: `${os.userInfo().username}@${os.hostname()}`,
    method: entry.method ?? 'INSTALL',
    endpoint: `${entry.bundle.name}@${entry.bundle.version}`,
    status: entry.ok ? 0 : 1,
    requestSha256: entry.bundle.manifestDigest.replace(/^sha256:/, ''),
    responseSha256: createHash('sha256').update(entry.reportText).digest('hex'),
    documents: [entry.reportPath, entry.current ?? ''],
    prev: tail.hash,
  };
  const record: AuditRecord = { ...body, hash: auditRecordHash(body) };
  const line = canonicalAuditLine(record);
  // The writer and the verifier must agree: never append what `audit verify` would refuse.
  if (record.seq === 1 && !verifyAuditChain(`${line}\n`).ok)
    throw new Error('install audit record is not canonical');
  await transport.exec(
    `umask 027 && printf '%s\\n' ${shellQuote([line])} >> ${shellQuote([layout.auditLog])} && { sync ${shellQuote([layout.auditLog])} 2>/dev/null || true; }`,
    { signal },
  );
  return record;
}

function parseRecord(line: string): AuditRecord | null {
  try {
    const value = JSON.parse(line) as AuditRecord;
    return canonicalAuditLine(value) === line ? value : null;
  } catch {
    return null;
  }
}
