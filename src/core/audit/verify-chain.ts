/**
 * Verification of the RAG service's hash-chained audit log, written apart from the writer
 * (templates/rag/audit-log.mjs) so that a bug in one does not hide in the other.
 *
 * A log is lines of printable ASCII, each ending in '\n', each one record:
 *   seq             integer, 1 for the first record, then +1 per record
 *   time            ISO-8601 UTC time (string)
 *   caller          string; method, endpoint: strings
 *   status          integer, the HTTP status answered
 *   requestSha256   64 lowercase hex digits; responseSha256 too
 *   documents       array of strings
 *   prev            the previous record's hash; 64 zeros for seq 1
 *   hash            64 lowercase hex digits
 *
 * Canonical serialisation (templates/rag/audit-log.mjs defines the same; change both or neither):
 *   body = ascii(JSON.stringify({ seq, time, caller, method, endpoint, status, requestSha256,
 *                                 responseSha256, documents, prev }))   -- keys in exactly this order
 *   hash = lowercase hex SHA-256 of the bytes of body
 *   line = ascii(JSON.stringify({ ...the ten fields in that order, hash })) + '\n'
 *   ascii(s) replaces every UTF-16 code unit above U+007E with \uXXXX (4 lowercase hex digits).
 * A record may end in one more field after `hash`: `sig`, "<KEY ID>:<base64>", an Ed25519
 * signature over the record's hash by the key named (src/core/audit/signatures.ts). The hash
 * does not cover it; the signature covers the hash. Install records carry one (signed by the
 * host's own key), RAG request records do not.
 * Each line must be exactly its record's canonical line, so every changed byte shows: as
 * malformed JSON, a malformed (non-canonical) record, a seq gap, a prev mismatch, or a hash
 * mismatch.
 */
import { createHash } from 'node:crypto';
import { AUDIT_SIGNATURE } from './signatures.js';

export const GENESIS_PREV = '0'.repeat(64);

export interface AuditRecord {
  seq: number;
  time: string;
  caller: string;
  method: string;
  endpoint: string;
  status: number;
  requestSha256: string;
  responseSha256: string;
  documents: string[];
  prev: string;
  hash: string;
  /** `<KEY ID>:<base64 Ed25519 signature>` over the hash (signatures.ts); absent on unsigned records. */
  sig?: string;
}

export type ChainBreakReason =
  | 'malformed-json'
  | 'malformed-record'
  | 'seq-gap'
  | 'prev-mismatch'
  | 'hash-mismatch'
  | 'incomplete-line';

export interface ChainBreak {
  /** 1-based line number in the log. */
  line: number;
  /** The record's seq where the line still says one; null when it cannot be read. */
  seq: number | null;
  reason: ChainBreakReason;
  detail: string;
}

export interface ChainVerification {
  ok: boolean;
  /** Records that verified, in order, before the first break (all of them when ok). */
  records: number;
  /** seq and hash of the last record that verified; null and the genesis hash when none did. */
  lastSeq: number | null;
  lastHash: string;
  firstBroken?: ChainBreak;
  /** Bytes after the last line break that were left unread (allowIncompleteTail only). */
  pendingTailBytes: number;
}

export interface VerifyChainOptions {
  /**
   * Leave an unterminated last line unread instead of failing on it: for a log read while
   * the service appends to it, where the last record may be half written.
   */
  allowIncompleteTail?: boolean;
}

const HEX64 = /^[0-9a-f]{64}$/;
const FIELDS = [
  'seq',
  'time',
  'caller',
  'method',
  'endpoint',
  'status',
  'requestSha256',
  'responseSha256',
  'documents',
  'prev',
  'hash',
] as const;

function ascii(text: string): string {
  return text.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The text an audit record's hash covers. */
export function canonicalAuditBody(record: Omit<AuditRecord, 'hash'>): string {
  return ascii(
    JSON.stringify({
      seq: record.seq,
      time: record.time,
      caller: record.caller,
      method: record.method,
      endpoint: record.endpoint,
      status: record.status,
      requestSha256: record.requestSha256,
      responseSha256: record.responseSha256,
      documents: record.documents,
      prev: record.prev,
    }),
  );
}

export function auditRecordHash(record: Omit<AuditRecord, 'hash'>): string {
  return createHash('sha256').update(canonicalAuditBody(record), 'latin1').digest('hex');
}

/** The line a record is written as, without its '\n'. */
export function canonicalAuditLine(record: AuditRecord): string {
  const sig = record.sig === undefined ? '' : `,"sig":"${record.sig}"`;
  return `${canonicalAuditBody(record).slice(0, -1)},"hash":"${record.hash}"${sig}}`;
}

/** Why a parsed value is not a well-typed record, or null when it is one. */
function recordProblem(value: unknown): string | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON object';
  const r = value as Record<string, unknown>;
  const keys = Object.keys(r);
  const signed = keys.length === FIELDS.length + 1 && keys.at(-1) === 'sig';
  if ((keys.length !== FIELDS.length && !signed) || FIELDS.some((key, i) => keys[i] !== key)) {
    return `fields are [${keys.join(', ')}], expected [${FIELDS.join(', ')}] in that order, then optionally sig`;
  }
  if (signed && (typeof r.sig !== 'string' || !AUDIT_SIGNATURE.test(r.sig))) {
    return 'sig is not "<16 hex digit key id>:<base64 Ed25519 signature>"';
  }
  if (!Number.isSafeInteger(r.seq) || (r.seq as number) < 1) return 'seq is not a positive integer';
  if (!Number.isSafeInteger(r.status)) return 'status is not an integer';
  for (const name of ['time', 'caller', 'method', 'endpoint'] as const) {
    if (typeof r[name] !== 'string') return `${name} is not a string`;
  }
  if (Number.isNaN(Date.parse(r.time as string))) return 'time is not a date';
  for (const name of ['requestSha256', 'responseSha256', 'prev', 'hash'] as const) {
    if (typeof r[name] !== 'string' || !HEX64.test(r[name] as string)) {
      return `${name} is not 64 lowercase hex digits`;
    }
  }
  if (!Array.isArray(r.documents) || r.documents.some((d) => typeof d !== 'string')) {
    return 'documents is not an array of strings';
  }
  return null;
}

export interface AuditChainVerifierOptions {
  /**
   * Seqs whose records' hashes to keep (see `rememberedHashes`): what checkpoints anchor,
   * collected in the one pass over a log too large to hold.
   */
  rememberSeqs?: Iterable<number>;
}

/**
 * Verifies a log fed in pieces of any size (so a large log need not be held whole);
 * stops at the first break.
 */
export class AuditChainVerifier {
  private readonly rememberSeqs: ReadonlySet<number>;
  private readonly remembered = new Map<number, string>();
  private pending = '';
  private lineNumber = 0;
  private verified = 0;
  private lastSeq: number | null = null;
  private lastHash = GENESIS_PREV;
  private broken: ChainBreak | undefined;

  constructor(options: AuditChainVerifierOptions = {}) {
    this.rememberSeqs = new Set(options.rememberSeqs ?? []);
  }

  get ok(): boolean {
    return this.broken === undefined;
  }

  /** The hash of each remembered seq's record that verified (seq -> hash). */
  get rememberedHashes(): ReadonlyMap<number, string> {
    return this.remembered;
  }

  push(text: string): void {
    if (this.broken) return;
    let start = 0;
    const data = this.pending + text;
    for (;;) {
      const newline = data.indexOf('\n', start);
      if (newline === -1) break;
      this.verifyLine(data.slice(start, newline));
      start = newline + 1;
      if (this.broken) {
        this.pending = '';
        return;
      }
    }
    this.pending = data.slice(start);
  }

  finish(options: VerifyChainOptions = {}): ChainVerification {
    let pendingTailBytes = 0;
    if (!this.broken && this.pending !== '') {
      if (options.allowIncompleteTail) pendingTailBytes = Buffer.byteLength(this.pending, 'latin1');
      else {
        this.broken = {
          line: this.lineNumber + 1,
          seq: seqOf(this.pending),
          reason: 'incomplete-line',
          detail: `the log ends in ${this.pending.length} characters without a line break`,
        };
      }
    }
    return {
      ok: this.broken === undefined,
      records: this.verified,
      lastSeq: this.lastSeq,
      lastHash: this.lastHash,
      ...(this.broken ? { firstBroken: this.broken } : {}),
      pendingTailBytes,
    };
  }

  private fail(reason: ChainBreakReason, seq: number | null, detail: string): void {
    this.broken = { line: this.lineNumber, seq, reason, detail };
  }

  private verifyLine(line: string): void {
    this.lineNumber += 1;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      this.fail('malformed-json', seqOf(line), (error as Error).message);
      return;
    }
    const problem = recordProblem(value);
    if (problem !== null) {
      this.fail('malformed-record', seqOf(line), problem);
      return;
    }
    const record = value as AuditRecord;
    const expectedSeq = (this.lastSeq ?? 0) + 1;
    if (record.seq !== expectedSeq) {
      this.fail('seq-gap', record.seq, `seq ${record.seq} where ${expectedSeq} was expected`);
      return;
    }
    if (record.prev !== this.lastHash) {
      this.fail(
        'prev-mismatch',
        record.seq,
        `prev is ${record.prev}, but the previous record's hash is ${this.lastHash}`,
      );
      return;
    }
    const hash = auditRecordHash(record);
    if (record.hash !== hash) {
      this.fail('hash-mismatch', record.seq, `hash is ${record.hash}, but the record hashes to ${hash}`);
      return;
    }
    if (canonicalAuditLine(record) !== line) {
      this.fail(
        'malformed-record',
        record.seq,
        'the line is not the canonical serialisation of its record (whitespace, escapes or number forms differ)',
      );
      return;
    }
    this.verified += 1;
    if (this.rememberSeqs.has(record.seq)) this.remembered.set(record.seq, record.hash);
    this.lastSeq = record.seq;
    this.lastHash = record.hash;
  }
}

/** The seq a damaged line still shows, if any. */
function seqOf(line: string): number | null {
  const match = /^\{"seq":(\d{1,15})[,}]/.exec(line);
  return match ? Number(match[1]) : null;
}

/** Verifies a whole log: every line a canonical record, seq from 1 without gaps, each prev the hash before. */
export function verifyAuditChain(text: string, options: VerifyChainOptions = {}): ChainVerification {
  const verifier = new AuditChainVerifier();
  verifier.push(text);
  return verifier.finish(options);
}
