/**
 * `apertus audit verify --installs`: the host's log of installs, rollbacks and trust
 * changes, checked as a whole. Beyond the hash chain (audit/verify-chain.ts): every
 * record signed by the host's key since the host made one, the log reaching the record
 * state.json anchors and every report on disk, and each record's report present with the
 * hash the record holds. Read-only; results as data.
 */
import path from 'node:path/posix';
import { recordSigningMessage, verifyAuditSignature } from '../audit/signatures.js';
import { type AuditRecord, type ChainVerification, verifyAuditChain } from '../audit/verify-chain.js';
import { shellQuote } from '../host/shell-quote.js';
import type { RunOptions } from '../progress.js';
import type { InstallTarget } from '../target/connect.js';
import { hostPublicKey } from '../target/host-key.js';
import { DEFAULT_HOST_ROOT, parseHostRoot } from '../target/layout.js';
import { hashCommand } from '../target/preflight.js';
import { HASH_TOOLS } from '../target/probe.js';
import { withHostSession } from '../target/session.js';

export type InstallLogProblemKind =
  | 'records-missing'
  | 'log-replaced'
  | 'signature'
  | 'report-missing'
  | 'report-mismatch';

export interface InstallLogProblem {
  kind: InstallLogProblemKind;
  /** The record concerned, where there is one. */
  seq: number | null;
  detail: string;
}

export interface InstallLogVerification extends ChainVerification {
  host: string;
  logPath: string;
  bytes: number;
  /** state.json's anchor: the seq and hash of the last record when it was written. */
  anchor: { seq: number; hash: string } | null;
  /** Records that carry the host key's signature, and those that do not (written before the host had a key). */
  signed: number;
  unsigned: number;
  reports: { checked: number; missing: number; mismatched: number };
  problems: InstallLogProblem[];
}

export interface VerifyInstallLogOptions extends RunOptions {
  target: InstallTarget;
  root?: string | undefined;
}

const SEQ_REPORT = /^(\d{6,})-[a-z-]+-\d{8}T\d{6}Z\.json$/;

export async function verifyInstallLog(options: VerifyInstallLogOptions): Promise<InstallLogVerification> {
  const root = parseHostRoot(options.root ?? DEFAULT_HOST_ROOT);
  return withHostSession(
    {
      target: options.target,
      root,
      command: 'audit verify --installs',
      lock: false,
      probe: { system: false },
      signal: options.signal,
      onProgress: options.onProgress,
    },
    async ({ transport, layout, probe, state, signal }) => {
      options.onProgress?.({
        step: 'audit.read',
        status: 'start',
        detail: `${layout.auditLog} on ${transport.description}`,
      });
      const read = await transport.exec(
        `if [ -f ${shellQuote([layout.auditLog])} ]; then cat ${shellQuote([layout.auditLog])}; echo .; fi`,
        {
          reject: false,
          ...(signal ? { signal } : {}),
        },
      );
      // `echo .` keeps the log's own last newline from being stripped by the transport.
      const text = read.stdout.endsWith('.') ? read.stdout.slice(0, -1) : '';
      const chain = verifyAuditChain(text);
      const lines = text.split('\n').slice(0, chain.records);
      const records = lines.map((line) => JSON.parse(line) as AuditRecord);
      const problems: InstallLogProblem[] = [];

      const hostKey = hostPublicKey(probe, layout);
      let signed = 0;
      for (const record of records) {
        if (record.sig === undefined) {
          if (signed > 0)
            problems.push({
              kind: 'signature',
              seq: record.seq,
              detail: `record ${record.seq} is not signed, though earlier records are`,
            });
          continue;
        }
        signed += 1;
        if (hostKey === null) {
          problems.push({
            kind: 'signature',
            seq: record.seq,
            detail: `record ${record.seq} is signed, but ${layout.hostPublicKey} is missing`,
          });
          continue;
        }
        const verdict = verifyAuditSignature(hostKey, recordSigningMessage(record.hash), record.sig);
        if (!verdict.valid)
          problems.push({
            kind: 'signature',
            seq: record.seq,
            detail: `record ${record.seq}: ${verdict.reason}`,
          });
      }

      const last = chain.lastSeq ?? 0;
      const anchor = state.audit;
      if (anchor && anchor.seq > last) {
        problems.push({
          kind: 'records-missing',
          seq: anchor.seq,
          detail:
            last === 0
              ? `the log is ${text === '' ? 'missing or empty' : 'unreadable from its first record'}, but state.json anchors record ${anchor.seq}`
              : `records after seq ${last} are gone: state.json anchors seq ${anchor.seq} (hash ${anchor.hash})`,
        });
      } else if (anchor && anchor.seq > 0 && chain.ok) {
        const at = records[anchor.seq - 1];
        if (at?.hash !== anchor.hash)
          problems.push({
            kind: 'log-replaced',
            seq: anchor.seq,
            detail: `record ${anchor.seq} has hash ${at?.hash ?? '(none)'}, but state.json anchors ${anchor.hash}: the log was replaced`,
          });
      }
      const reportSeqs = probe.root.reports.map((name) => Number(SEQ_REPORT.exec(name)?.[1] ?? 0));
      const newestReport = Math.max(0, ...reportSeqs);
      if (chain.ok && newestReport > last && !(anchor && anchor.seq > last)) {
        problems.push({
          kind: 'records-missing',
          seq: newestReport,
          detail: `records after seq ${last} are gone: reports/ holds the report of record ${newestReport}`,
        });
      }

      // Each record's report, hashed on the host with its own tool.
      const tool = HASH_TOOLS.find((t) => probe.hostTools.has(t));
      const inReports = records.filter((r) => {
        const report = r.documents[0];
        return report !== undefined && path.dirname(report) === layout.reports;
      });
      let missing = 0;
      let mismatched = 0;
      if (tool && inReports.length > 0) {
        const script = inReports
          .map((r) => {
            const file = r.documents[0] as string;
            return `if [ -f ${shellQuote([file])} ]; then ${hashCommand(tool, file)}; else echo "missing ${r.seq}"; fi`;
          })
          .join('\n');
        const hashed = await transport.exec('sh -s', {
          stdin: `${script}\n`,
          reject: false,
          ...(signal ? { signal } : {}),
        });
        const outputs = hashed.stdout.split('\n').filter((l) => l.trim() !== '');
        inReports.forEach((record, i) => {
          const line = outputs[i] ?? '';
          const file = record.documents[0] as string;
          if (line.startsWith('missing ')) {
            missing += 1;
            problems.push({
              kind: 'report-missing',
              seq: record.seq,
              detail: `the report of record ${record.seq} (${file}) is gone`,
            });
          } else if (line.split(/\s/)[0] !== record.responseSha256) {
            mismatched += 1;
            problems.push({
              kind: 'report-mismatch',
              seq: record.seq,
              detail: `the report of record ${record.seq} (${file}) was changed: it hashes to ${line.split(/\s/)[0]}, the record holds ${record.responseSha256}`,
            });
          }
        });
      }
      const ok = chain.ok && problems.length === 0;
      options.onProgress?.({
        step: 'audit.read',
        status: ok ? 'ok' : 'fail',
        detail: ok
          ? `${chain.records} records`
          : (problems[0]?.detail ?? `line ${chain.firstBroken?.line}: ${chain.firstBroken?.reason}`),
      });
      return {
        ...chain,
        ok,
        host: transport.description,
        logPath: layout.auditLog,
        bytes: Buffer.byteLength(text, 'latin1'),
        anchor,
        signed,
        unsigned: records.length - signed,
        reports: { checked: inReports.length, missing, mismatched },
        problems,
      };
    },
  );
}
