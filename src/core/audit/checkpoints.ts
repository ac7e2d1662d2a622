/**
 * The RAG service's signed checkpoints, read apart from their writer
 * (templates/rag/audit-log.mjs) and judged against the log they anchor. A hash chain shows
 * every edited record, but not records cut from its end, nor a log emptied, deleted or
 * replaced by a shorter valid chain: a checkpoint signed by the host's key says which record
 * the log held at a time, so the log must still hold it.
 *
 * `<log>.checkpoints` is lines of printable ASCII, each ending in '\n', each one checkpoint:
 *   {"seq":N,"hash":"<64 hex>","time":"<ISO-8601 UTC>","reason":"periodic|shutdown|open","sig":"<KEY ID>:<base64>"}
 * keys in exactly this order, serialised as JSON.stringify does; `sig` signs
 * checkpointSigningMessage (signatures.ts) with the host's key.
 */
import { z } from 'zod';
import type { PublicKey } from '../sign/keys.js';
import {
  AUDIT_SIGNATURE,
  type CheckpointFields,
  checkpointSigningMessage,
  verifyAuditSignature,
} from './signatures.js';
import type { ChainVerification } from './verify-chain.js';

export const CHECKPOINT_REASONS = ['periodic', 'shutdown', 'open'] as const;

/** At most this many bad lines are listed; the count says how many there are. */
const LISTED_PROBLEMS = 20;

const checkpointSchema = z.strictObject({
  seq: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  hash: z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits'),
  time: z.iso.datetime(),
  reason: z.enum(CHECKPOINT_REASONS),
  sig: z.string().regex(AUDIT_SIGNATURE, '"<16 hex digit key id>:<base64 Ed25519 signature>"'),
});

export type Checkpoint = z.infer<typeof checkpointSchema>;

/** A checkpoint as the result reports it: what it anchors, and when and why it was written. */
export type AnchorFields = CheckpointFields & { reason: Checkpoint['reason'] };

/** Where a log's checkpoints are: next to it. */
export function auditCheckpointsPath(logPath: string): string {
  return `${logPath}.checkpoints`;
}

export interface CheckpointProblem {
  /** 1-based line number in the checkpoints file. */
  line: number;
  reason: 'malformed' | 'bad-signature';
  detail: string;
}

/** What a checkpoints file holds, read against the host key (null: no usable key). */
export interface CheckpointsRead {
  /** Complete lines read. */
  count: number;
  /** Checkpoints whose signature verifies with the host key, by seq (the later line wins). */
  verified: Map<number, Checkpoint>;
  /** Bad lines: the first LISTED_PROBLEMS of them. */
  problems: CheckpointProblem[];
  problemCount: number;
}

/**
 * Reads a checkpoints file fed in pieces of any size. An unterminated last line is a
 * checkpoint being written (or torn by a crash): left unread, as the writer cuts it.
 */
export class CheckpointReader {
  private pending = '';
  private readonly read: CheckpointsRead = { count: 0, verified: new Map(), problems: [], problemCount: 0 };

  constructor(private readonly hostKey: PublicKey | null) {}

  push(text: string): void {
    const lines = (this.pending + text).split('\n');
    this.pending = lines.pop() ?? '';
    for (const line of lines) this.readLine(line);
  }

  finish(): CheckpointsRead {
    return this.read;
  }

  private problem(reason: CheckpointProblem['reason'], detail: string): void {
    this.read.problemCount += 1;
    if (this.read.problems.length < LISTED_PROBLEMS)
      this.read.problems.push({ line: this.read.count, reason, detail });
  }

  private readLine(line: string): void {
    this.read.count += 1;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      this.problem('malformed', `not JSON: ${(error as Error).message}`);
      return;
    }
    const parsed = checkpointSchema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.problem(
        'malformed',
        `${issue?.path.join('.') || 'the line'}: ${issue?.message ?? 'not a checkpoint'}`,
      );
      return;
    }
    const checkpoint = parsed.data;
    if (JSON.stringify(checkpoint) !== line) {
      this.problem(
        'malformed',
        'the line is not the canonical serialisation of its checkpoint (key order, spacing)',
      );
      return;
    }
    // Without the host key nothing verifies; the judgement says so once, not per line.
    if (this.hostKey === null) return;
    const verdict = verifyAuditSignature(this.hostKey, checkpointSigningMessage(checkpoint), checkpoint.sig);
    if (!verdict.valid) {
      this.problem('bad-signature', `seq ${checkpoint.seq}: ${verdict.reason}`);
      return;
    }
    this.read.verified.set(checkpoint.seq, checkpoint);
  }
}

export type CheckpointStatus =
  /** The newest checkpoint's record is in the log with its hash. */
  | 'ok'
  /** No checkpoints: the log is not anchored (installs before checkpoints, or a service without a key). */
  | 'unanchored'
  /** The log ends before the newest checkpoint's seq. */
  | 'tail-missing'
  /** The log holds another record at a checkpoint's seq. */
  | 'log-replaced'
  /** The log is missing or empty while checkpoints exist. */
  | 'log-missing'
  /** The chain breaks before the newest checkpoint's seq, so the rest cannot be held to it. */
  | 'chain-broken'
  /** A checkpoint line is malformed or its signature does not verify. */
  | 'bad-checkpoint'
  /** Checkpoints exist but the host public key is missing or unusable. */
  | 'no-host-key';

export interface CheckpointVerification {
  path: string;
  status: CheckpointStatus;
  ok: boolean;
  /** Checkpoint lines in the file. */
  count: number;
  /** Of those, the ones whose signature verifies with the host key. */
  verified: number;
  /** The newest checkpoint that verifies; null when none does. */
  last: AnchorFields | null;
  hostKey: { path: string; keyId: string | null };
  problems: CheckpointProblem[];
  problemCount: number;
  /** One line saying what was found. */
  detail: string;
}

/** The log's side of the judgement. */
export interface AnchoredLog {
  /** false when there is no log file at all. */
  exists: boolean;
  chain: ChainVerification;
  /** Record hashes at the verified checkpoints' seqs, from the chain pass. */
  hashes: ReadonlyMap<number, string>;
}

export interface HostKeyRead {
  path: string;
  key: PublicKey | null;
  /** Why there is no key: 'missing', or what is wrong with the file. */
  problem?: string;
}

/** "1 checkpoint", "3 checkpoints". */
function counted(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

const anchorOf = ({ seq, hash, time, reason }: Checkpoint): AnchorFields => ({ seq, hash, time, reason });

/**
 * Holds a log to its checkpoints: the newest one that verifies must be covered (the log
 * holds the record at its seq with its hash), and every line must be a checkpoint that
 * verifies. Says what is missing when not.
 */
export function judgeCheckpoints(
  path: string,
  read: CheckpointsRead | null,
  hostKey: HostKeyRead,
  log: AnchoredLog,
): CheckpointVerification {
  const verified = [...(read?.verified.values() ?? [])].sort((a, b) => a.seq - b.seq);
  const newest = verified.at(-1) ?? null;
  const count = read?.count ?? 0;
  const base = {
    path,
    count,
    verified: verified.length,
    last: newest === null ? null : anchorOf(newest),
    hostKey: { path: hostKey.path, keyId: hostKey.key?.keyId ?? null },
    problems: read?.problems ?? [],
    problemCount: read?.problemCount ?? 0,
  };
  const badLines =
    base.problemCount === 0
      ? ''
      : `; also ${counted(base.problemCount, 'bad checkpoint line')} (first: line ${base.problems[0]?.line}, ${base.problems[0]?.detail})`;
  const result = (status: CheckpointStatus, detail: string): CheckpointVerification => ({
    ...base,
    status,
    ok: status === 'ok' || status === 'unanchored',
    detail,
  });
  const anchors = (c: Checkpoint) =>
    `the last checkpoint (${c.reason}, time ${c.time}) anchors seq ${c.seq} with hash ${c.hash}`;

  if (count === 0) {
    return result(
      'unanchored',
      `${read === null ? `there is no ${path}` : `${path} holds no checkpoint`}: the log is not anchored, so records cut from its end would not show`,
    );
  }
  const { chain } = log;
  if (chain.ok && chain.records === 0) {
    const gone = newest === null ? '' : `: records 1 to ${newest.seq} are gone (${anchors(newest)})`;
    return result(
      'log-missing',
      `the log is ${log.exists ? 'empty' : 'missing'} but ${counted(count, 'checkpoint')} exist${count === 1 ? 's' : ''}${gone}${badLines}`,
    );
  }
  if (hostKey.key === null) {
    return result(
      'no-host-key',
      `${counted(count, 'checkpoint')} exist${count === 1 ? 's' : ''}, but the host public key ${hostKey.path} is ${hostKey.problem ?? 'missing'}, so none can be verified`,
    );
  }
  if (newest === null) {
    return result(
      'bad-checkpoint',
      `none of the ${count} checkpoints verifies with the host key ${hostKey.key.keyId}${badLines}`,
    );
  }
  const reached = chain.lastSeq ?? 0;
  const covered = verified.findLast((c) => c.seq <= reached);
  if (covered !== undefined && log.hashes.get(covered.seq) !== covered.hash) {
    return result(
      'log-replaced',
      `the record at seq ${covered.seq} has hash ${log.hashes.get(covered.seq) ?? '(none)'} where the checkpoint (${covered.reason}, time ${covered.time}) says ${covered.hash} (the log was replaced)${badLines}`,
    );
  }
  if (newest.seq > reached) {
    return chain.ok
      ? result('tail-missing', `records after seq ${reached} are gone: ${anchors(newest)}${badLines}`)
      : result(
          'chain-broken',
          `the chain breaks after seq ${reached}, so the records up to seq ${newest.seq} cannot be held to their checkpoint: ${anchors(newest)}${badLines}`,
        );
  }
  if (base.problemCount > 0) {
    return result(
      'bad-checkpoint',
      `${anchors(newest)}, and the log holds it; but ${counted(base.problemCount, 'checkpoint line')} ${base.problemCount === 1 ? 'is' : 'are'} bad (first: line ${base.problems[0]?.line}, ${base.problems[0]?.detail})`,
    );
  }
  const unanchored = reached - newest.seq;
  return result(
    'ok',
    `${anchors(newest)}, and the log holds it${unanchored > 0 ? `; ${counted(unanchored, 'record')} after it ${unanchored === 1 ? 'is' : 'are'} not anchored yet` : ''}`,
  );
}
