/**
 * The host's log of the commands that changed it (DESIGN.md section 3, `<root>/audit.log`):
 * one record per install, rollback, trust change or gateway API key change, hash-chained like the RAG service's
 * request log and in the same canonical format, and signed by the host's own key
 * (host-key.ts). A record maps onto the format's fields as:
 *
 *   caller          who ran apertus: `<user>@<machine>` of the operator's process
 *   method          INSTALL, ROLLBACK, TRUST-ADD, TRUST-REMOVE, API-KEY-CREATE, API-KEY-REVOKE,
 *                   UNINSTALL, PRUNE or EVAL
 *   endpoint        `<bundle name>@<version>` (a rollback: the release it went back to; an
 *                   evaluation: the release it measured;
 *                   a trust change: the key id; an API key change: the key's name)
 *   status          0 when the command did what it set out to, 1 when it failed and put the host back
 *                   (an evaluation: 1 when a set missed a threshold)
 *   requestSha256   what it acted on: the bundle manifest digest (hex), or the key's sha256
 *                   (an API key: the SHA-256 of the key, as the key file holds it)
 *   responseSha256  SHA-256 of the command's report under reports/
 *   documents       [the report's path, the release current afterwards or '', and for an
 *                   install `signer:<KEY ID> <trusted comment>` or `signer:none`]
 *   sig             the host key's signature over the hash (audit/signatures.ts)
 *
 * Anchors: state.json keeps the seq and hash of the last record, and reports are named by
 * their record's seq. A log that lost its tail, was emptied, deleted or replaced by a
 * shorter chain no longer reaches them, and nothing is chained onto it.
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import { recordSigningMessage, signAuditMessage, verifyAuditSignature } from '../audit/signatures.js';
import {
  type AuditRecord,
  auditRecordHash,
  canonicalAuditLine,
  GENESIS_PREV,
} from '../audit/verify-chain.js';
import { ApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { PublicKey, SecretKey } from '../sign/keys.js';
import type { HostLayout } from './layout.js';
import type { HostProbe } from './probe.js';
import type { HostState } from './state.js';

/** Where a new record chains on: the last record's seq and hash. */
export interface AuditTail {
  seq: number;
  hash: string;
}

export type AuditMethod =
  | 'INSTALL'
  | 'ROLLBACK'
  | 'TRUST-ADD'
  | 'TRUST-REMOVE'
  | 'API-KEY-CREATE'
  | 'API-KEY-REVOKE'
  | 'UNINSTALL'
  | 'PRUNE'
  | 'EVAL';

export interface AuditEntry {
  method: AuditMethod;
  endpoint: string;
  ok: boolean;
  /** Hex SHA-256 of what the command acted on. */
  subjectSha256: string;
  reportPath: string;
  reportText: string;
  /** The release `current` points at afterwards; null when none. */
  current: string | null;
  /** More documents after the report and the release (an install's signer). */
  extra?: string[];
}

/** Reports named by their record: `reports/000042-install-....json`. */
const SEQ_REPORT = /^(\d{6,})-[a-z-]+-\d{8}T\d{6}Z\.json$/;

/**
 * The tail a new record chains onto, after checking the log against its anchors: its last
 * record is sound (and, where signed, signed by this host), and the log still reaches the
 * record state.json anchors and every report on disk. Throws, changing nothing, otherwise.
 */
export async function verifiedAuditTail(
  transport: Transport,
  layout: HostLayout,
  probe: HostProbe,
  state: HostState,
  hostKey: PublicKey | null,
  signal?: AbortSignal,
): Promise<AuditTail> {
  const head = probe.root.auditHead;
  const where = `${layout.auditLog} on ${transport.description}`;
  const reportSeq = Math.max(0, ...probe.root.reports.map((name) => Number(SEQ_REPORT.exec(name)?.[1] ?? 0)));
  const anchored = Math.max(state.audit?.seq ?? 0, reportSeq);
  if (head === undefined || head.bytes === 0) {
    if (anchored > 0) {
      throw gone(
        `${where} is ${head === undefined ? 'missing' : 'empty'}, but ${anchorName(state, reportSeq)} record ${anchored}: the log was ${head === undefined ? 'deleted' : 'emptied'}.`,
        layout,
      );
    }
    return { seq: 0, hash: GENESIS_PREV };
  }
  const record = parseRecord(head.last);
  if (record === null || auditRecordHash(record) !== record.hash || head.lines !== record.seq) {
    throw new ApertusError(
      'install-audit-damaged',
      `The last line of ${where} is not a sound audit record${record && head.lines !== record.seq ? ` (it says seq ${record.seq} on line ${head.lines})` : ''}; apertus will not chain a new record onto it.`,
      {
        kind: 'operation',
        hint: `Run \`apertus audit verify --installs\` against the host to find the first broken record, and keep the damaged log as evidence.`,
      },
    );
  }
  if (record.sig !== undefined && hostKey !== null) {
    const verdict = verifyAuditSignature(hostKey, recordSigningMessage(record.hash), record.sig);
    if (!verdict.valid)
      throw new ApertusError(
        'install-audit-damaged',
        `The last record of ${where} is not signed by this host's key: ${verdict.reason}.`,
        {
          kind: 'operation',
          hint: 'Run `apertus audit verify --installs` against the host, and keep the log as evidence.',
        },
      );
  }
  if (record.seq < anchored) {
    throw gone(
      `Records after seq ${record.seq} of ${where} are gone: ${anchorName(state, reportSeq)} record ${anchored}.`,
      layout,
    );
  }
  const anchor = state.audit;
  if (anchor && anchor.seq > 0) {
    // Killed between the record and the state write, the log may be one record ahead.
    const anchoredHash =
      anchor.seq === record.seq ? record.hash : await recordHashAt(transport, layout, anchor.seq, signal);
    if (anchoredHash !== anchor.hash) {
      throw gone(
        `Record ${anchor.seq} of ${where} has hash ${anchoredHash ?? '(none)'}, but state.json anchors ${anchor.hash}: the log was replaced.`,
        layout,
      );
    }
  }
  return { seq: record.seq, hash: record.hash };
}

function anchorName(state: HostState, reportSeq: number): string {
  return (state.audit?.seq ?? 0) >= reportSeq ? 'state.json anchors' : `reports/ holds the report of`;
}

function gone(message: string, layout: HostLayout): ApertusError {
  return new ApertusError('install-audit-truncated', message, {
    kind: 'operation',
    hint: `Restore ${layout.auditLog} from a backup. If it is lost for good, keep what is left as evidence (mv ${layout.auditLog} ${layout.auditLog}.damaged) and clear the anchor (set "audit" to null in ${layout.state}) to start a new chain; \`apertus audit verify --installs\` shows what is missing.`,
  });
}

async function recordHashAt(
  transport: Transport,
  layout: HostLayout,
  seq: number,
  signal?: AbortSignal,
): Promise<string | null> {
  const result = await transport.exec(`sed -n ${seq}p ${shellQuote([layout.auditLog])}`, {
    reject: false,
    ...(signal ? { signal } : {}),
  });
  const record = parseRecord(result.stdout.trim());
  return record !== null && record.seq === seq && auditRecordHash(record) === record.hash
    ? record.hash
    : null;
}

/** The next record after `tail`, signed by the host key, and the line it is written as. */
export function buildAuditRecord(
  tail: AuditTail,
  entry: AuditEntry,
  hostKey: SecretKey,
): { record: AuditRecord; line: string } {
  const body: Omit<AuditRecord, 'hash' | 'sig'> = {
    seq: tail.seq + 1,
    time: new Date().toISOString(),
    caller: `${os.userInfo().username}@${os.hostname()}`,
    method: entry.method,
    endpoint: entry.endpoint,
    status: entry.ok ? 0 : 1,
    requestSha256: entry.subjectSha256,
    responseSha256: createHash('sha256').update(entry.reportText).digest('hex'),
    documents: [entry.reportPath, entry.current ?? '', ...(entry.extra ?? [])],
    prev: tail.hash,
  };
  const hash = auditRecordHash(body);
  const record: AuditRecord = { ...body, hash, sig: signAuditMessage(hostKey, recordSigningMessage(hash)) };
  const line = canonicalAuditLine(record);
  // The writer and the verifier must agree: never append what `audit verify` would refuse.
  if (parseRecord(line)?.hash !== auditRecordHash(body))
    throw new Error('install audit record is not canonical');
  return { record, line };
}

/** Shell lines that append one record line, durably (the host lock keeps appends in order). */
export function appendRecordScript(layout: HostLayout, line: string): string {
  const log = shellQuote([layout.auditLog]);
  return `( umask 027 && printf '%s\\n' ${shellQuote([line])} >> ${log} ) && { sync ${log} 2>/dev/null || true; }`;
}

export function parseRecord(line: string): AuditRecord | null {
  try {
    const value = JSON.parse(line) as AuditRecord;
    return canonicalAuditLine(value) === line ? value : null;
  } catch {
    return null;
  }
}
