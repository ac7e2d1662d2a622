/**
 * The one skeleton every host command runs in (STYLE.md 17): connect, take the host lock,
 * probe, refuse an unsafe root, read state.json and check the audit log's tail against
 * its anchors, then the command's work; a command that changed the host ends by
 * recording it: the signed audit record and state.json first (one small write), then the
 * report, named by the record. The lock is released and the connection closed in
 * `finally`, whatever happened. Read-only commands (status, check) take no lock and
 * record nothing. The caller's AbortSignal reaches every step; a command that must put
 * the host back after an abort does so with its own, unaborted, steps.
 */
import { createHash } from 'node:crypto';
import type { AuditRecord } from '../audit/verify-chain.js';
import { ApertusError, isApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import { noProgress, type OnProgress } from '../progress.js';
import type { SecretKey } from '../sign/keys.js';
import {
  type AuditEntry,
  type AuditMethod,
  type AuditTail,
  appendRecordScript,
  buildAuditRecord,
  verifiedAuditTail,
} from './audit-log.js';
import { type InstallTarget, openTarget } from './connect.js';
import { isNoSpace, noSpaceError } from './disk.js';
import { hostPublicKey, readOrCreateHostKey } from './host-key.js';
import { type HostLayout, hostLayout, type ReportKind } from './layout.js';
import { acquireHostLock, type HeldLock } from './lock.js';
import { assertRootSafe } from './preflight.js';
import { type HostProbe, type ProbeOptions, runProbe } from './probe.js';
import { judgeRoot } from './root-safety.js';
import { writeFileScript } from './safe-write.js';
import { EMPTY_STATE, type HostState, parseHostState, writeHostStateScript } from './state.js';

export interface SessionOptions {
  target: InstallTarget;
  root: string;
  /** What this command is, for the lock and the operator who finds it: 'install demo 0.1.0'. */
  command: string;
  /**
   * 'create': take the lock, making the root if it does not exist (install);
   * 'existing': take the lock, refusing a root that does not exist; false: read only.
   */
  lock: 'create' | 'existing' | false;
  /** The probe's machine part (OS, GPUs, containers) and release sizes. */
  probe?: Pick<ProbeOptions, 'system' | 'sizes' | 'diskPaths'>;
  signal?: AbortSignal | undefined;
  onProgress?: OnProgress | undefined;
}

export interface HostSession {
  transport: Transport;
  layout: HostLayout;
  probe: HostProbe;
  /** The operator's clock around the probe's round trip (for the clock-skew check). */
  probedAt: { sentAtMs: number; receivedAtMs: number };
  state: HostState;
  /** Why state.json could not be read, in a read-only session (which then sees no state); null when it could. */
  stateProblem: string | null;
  /** The lock this session holds; null for a read-only session. */
  lock: HeldLock | null;
  /** The audit log's verified tail; null for a read-only session (which does not judge it). */
  tail: AuditTail | null;
  signal: AbortSignal | undefined;
  /** The host's signing key, made on first use. */
  hostKey(): Promise<SecretKey>;
  /**
   * Records what the command did: the signed record and `state` (with the record as its
   * audit anchor) in one write, then the report, named by the record. With a full disk the
   * lock's ballast is released and the write tried again.
   */
  record<R extends object>(conclusion: Conclusion<R>): Promise<Recorded<R>>;
  /** Replaces state.json now (before a switch); with a full disk the ballast is released and the write tried again. */
  writeState(state: HostState): Promise<void>;
}

export interface Conclusion<R extends object> {
  kind: ReportKind;
  method: AuditMethod;
  endpoint: string;
  ok: boolean;
  subjectSha256: string;
  current: string | null;
  extra?: string[];
  /** state.json as the command leaves it, given its report's path (the audit anchor is filled in); null: unchanged. */
  state: ((reportPath: string) => HostState) | null;
  /** The report, given the path it is written at and the seq of the record that holds its hash. */
  report: (where: { path: string; seq: number }) => R;
}

export interface Recorded<R> {
  report: R;
  reportPath: string;
  reportText: string;
  record: AuditRecord;
  /** Set when the report file could not be written (the record and state were). */
  reportError: string | null;
}

export async function withHostSession<T>(
  options: SessionOptions,
  work: (session: HostSession) => Promise<T>,
): Promise<T> {
  const onProgress = options.onProgress ?? noProgress;
  const { signal } = options;
  const layout = hostLayout(options.root);
  onProgress({ step: 'connect', status: 'start' });
  const transport = await openTarget(options.target, { signal, onProgress });
  onProgress({ step: 'connect', status: 'ok', detail: transport.description });
  let lock: HeldLock | null = null;
  try {
    if (options.lock !== false) {
      lock = await acquireHostLock(transport, layout, options.command, { create: options.lock === 'create' });
      if (lock.tookOver)
        onProgress({
          step: 'connect',
          status: 'info',
          detail: `took over a stale lock: ${lock.tookOver.command} (pid ${lock.tookOver.pid}) is gone`,
        });
    }
    const probed = await runProbe(
      transport,
      { root: layout.root, ...options.probe },
      signal ? { signal } : {},
    );
    const { probe } = probed;
    // A command that changes the host needs a state file it can trust; one that only looks
    // (status, check) reports a damaged one instead of stopping at it.
    let state = EMPTY_STATE;
    let stateProblem: string | null = null;
    try {
      state = parseHostState(probe.root.stateText, `${layout.state} on ${transport.description}`);
    } catch (error) {
      if (lock !== null || !isApertusError(error)) throw error;
      stateProblem = error.message;
    }
    let tail: AuditTail | null = null;
    if (lock !== null) {
      assertRootSafe(judgeRoot(probe.root.entries, layout, probe.uid), layout, transport.description);
      tail = await verifiedAuditTail(transport, layout, probe, state, hostPublicKey(probe, layout), signal);
    }
    let key: SecretKey | undefined;
    const session: HostSession = {
      transport,
      layout,
      probe,
      probedAt: { sentAtMs: probed.sentAtMs, receivedAtMs: probed.receivedAtMs },
      state,
      stateProblem,
      lock,
      tail,
      signal,
      hostKey: async () => {
        key ??= (await readOrCreateHostKey(transport, layout, probe)).secretKey;
        return key;
      },
      record: async (conclusion) => {
        if (lock === null || tail === null) throw new Error('a read-only host session cannot record');
        const recorded = await recordConclusion(
          transport,
          layout,
          lock,
          tail,
          await session.hostKey(),
          conclusion,
        );
        tail = { seq: recorded.record.seq, hash: recorded.record.hash };
        session.tail = tail;
        return recorded;
      },
      writeState: async (next) => {
        if (lock === null) throw new Error('a read-only host session cannot write state');
        await runFreeingBallast(
          transport,
          layout,
          lock,
          writeHostStateScript(layout, next),
          `writing ${layout.state}`,
        );
      },
    };
    return await work(session);
  } finally {
    await lock?.release().catch(() => undefined);
    await transport.close().catch(() => undefined);
  }
}

async function recordConclusion<R extends object>(
  transport: Transport,
  layout: HostLayout,
  lock: HeldLock,
  tail: AuditTail,
  hostKey: SecretKey,
  conclusion: Conclusion<R>,
): Promise<Recorded<R>> {
  const seq = tail.seq + 1;
  const reportPath = layout.report(seq, conclusion.kind, new Date());
  const report = conclusion.report({ path: reportPath, seq });
  const reportText = `${JSON.stringify(report, null, 2)}\n`;
  const entry: AuditEntry = {
    method: conclusion.method,
    endpoint: conclusion.endpoint,
    ok: conclusion.ok,
    subjectSha256: conclusion.subjectSha256,
    reportPath,
    reportText,
    current: conclusion.current,
    ...(conclusion.extra ? { extra: conclusion.extra } : {}),
  };
  const { record, line } = buildAuditRecord(tail, entry, hostKey);
  const state = conclusion.state
    ? { ...conclusion.state(reportPath), audit: { seq: record.seq, hash: record.hash } }
    : null;
  const bookkeeping = [
    'set -e',
    appendRecordScript(layout, line),
    ...(state ? [writeHostStateScript(layout, state)] : []),
  ].join('\n');
  await runFreeingBallast(transport, layout, lock, bookkeeping, 'writing the audit record and state.json');
  let reportError: string | null = null;
  try {
    await runFreeingBallast(
      transport,
      layout,
      lock,
      [
        'set -e',
        `mkdir -p ${shellQuote([layout.reports])}`,
        writeFileScript(reportPath, reportText, '0644'),
      ].join('\n'),
      `writing the report ${reportPath}`,
      reportText.length,
    );
  } catch (error) {
    // The record and state stand: the command is recorded, its report text is returned.
    reportError = isApertusError(error) ? error.message : String(error);
  }
  return { report, reportPath, reportText, record, reportError };
}

/** Runs a bookkeeping script; on a full disk, frees the lock's ballast and tries once more. */
async function runFreeingBallast(
  transport: Transport,
  layout: HostLayout,
  lock: HeldLock,
  script: string,
  what: string,
  needs?: number,
): Promise<void> {
  const first = await transport.exec('sh -s', { stdin: `${script}\n`, reject: false });
  if (first.exitCode === 0) return;
  if (!isNoSpace(first)) throw bookkeepingError(transport, what, first.stderr);
  await lock.releaseBallast();
  const second = await transport.exec('sh -s', { stdin: `${script}\n`, reject: false });
  if (second.exitCode === 0) return;
  if (isNoSpace(second)) throw await noSpaceError(transport, layout.root, what, needs);
  throw bookkeepingError(transport, what, second.stderr);
}

function bookkeepingError(transport: Transport, what: string, stderr: string): ApertusError {
  return new ApertusError(
    'host-write-failed',
    `${what} on ${transport.description} failed: ${stderr.trim().slice(-300)}`,
    {
      kind: 'operation',
      hint: 'Check the install root on the host (permissions, mounts), then run `apertus status` to see what it holds.',
    },
  );
}

/** SHA-256 of text, hex: what a record names when the subject is not a bundle. */
export function sha256Hex(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}
