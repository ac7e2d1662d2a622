// The RAG service's tamper-evident audit log: one JSON line per request, hash-chained.
//
// Record fields, in this order (the order is part of the format):
//   seq             integer, 1 for the first record, then +1 per record
//   time            ISO-8601 UTC time the record was written (Date#toISOString)
//   caller          the x-apertus-caller header, or 'anonymous'
//   method          HTTP method
//   endpoint        request path without the query string (at most 512 characters)
//   status          HTTP status of the response
//   requestSha256   lowercase hex SHA-256 of the request body bytes (of nothing for GET/DELETE)
//   responseSha256  lowercase hex SHA-256 of the response body bytes exactly as sent
//   documents       array of document ids the request retrieved, stored or deleted
//   prev            the previous record's hash; 64 zeros for seq 1
//   hash            see below
//
// Canonical serialisation (src/core/audit/verify-chain.ts defines the same; change both or neither):
//   body = ascii(JSON.stringify({ seq, time, caller, method, endpoint, status, requestSha256,
//                                 responseSha256, documents, prev }))   -- keys in exactly this order
//   hash = lowercase hex SHA-256 of the bytes of body
//   line = ascii(JSON.stringify({ ...the ten fields in that order, hash })) + '\n'
//   ascii(s) replaces every UTF-16 code unit above U+007E with \uXXXX (4 lowercase hex digits),
//   so a line is printable ASCII, its bytes are its characters, and every line has exactly
//   one serialisation: a verifier can demand the line byte for byte.
//
// Durability: the file is opened with O_APPEND and each record is one write() of one whole
// line, issued in seq order from this one process (appends are serialised in-process; the
// data dir's lock keeps a second service off the same log). A record is fdatasync'd before
// append() resolves, and the response is sent only after that: a client never holds an
// answer whose record a crash could lose. fdatasync calls are shared (group commit): the
// records written while one sync runs are made durable by the next one.
//
// A line torn by a crash (no final newline) belongs to a request that never got its answer;
// open() cuts it off and says so on stderr. A damaged last complete line stops the service:
// it cannot continue a chain it cannot read.

import { createHash } from 'node:crypto';
import {
  closeSync,
  fdatasync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';

export const GENESIS_PREV = '0'.repeat(64);
const MAX_ENDPOINT_CHARS = 512;
/** The tail read at open to find the last record; a record is far smaller. */
const TAIL_BYTES = 1024 * 1024;

export function sha256Hex(data) {
  return createHash('sha256').update(data).digest('hex');
}

function ascii(text) {
  return text.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The text the hash covers: the record without `hash`, keys in the format's order. */
export function canonicalBody(r) {
  return ascii(
    JSON.stringify({
      seq: r.seq,
      time: r.time,
      caller: r.caller,
      method: r.method,
      endpoint: r.endpoint,
      status: r.status,
      requestSha256: r.requestSha256,
      responseSha256: r.responseSha256,
      documents: r.documents,
      prev: r.prev,
    }),
  );
}

export class AuditLogError extends Error {}

export class AuditLog {
  /**
   * Opens (or creates) the log, cuts a torn tail, and reads the last record to continue
   * the chain. Throws AuditLogError when the last complete line is not a record.
   */
  static open(path, { onNotice = () => {} } = {}) {
    mkdirSync(dirname(path), { recursive: true });
    const fd = openSync(path, 'a+', 0o640);
    try {
      const size = fstatSync(fd).size;
      const tailStart = Math.max(0, size - TAIL_BYTES);
      const tail = Buffer.alloc(size - tailStart);
      if (tail.length > 0) readSync(fd, tail, 0, tail.length, tailStart);
      let end = tail.length;
      if (end > 0 && tail[end - 1] !== 0x0a) {
        const lastNewline = tail.lastIndexOf(0x0a);
        if (lastNewline === -1 && tailStart > 0) {
          throw new AuditLogError(
            `${path}: the last ${TAIL_BYTES} bytes hold no line break; the log is damaged`,
          );
        }
        end = lastNewline + 1;
        onNotice(
          `${path}: cut ${tail.length - end} bytes of a record torn by a crash (its request got no answer)`,
        );
        ftruncateSync(fd, tailStart + end);
        fdatasync(fd, () => {});
      }
      let seq = 0;
      let prev = GENESIS_PREV;
      if (end > 0) {
        const lineStart = tail.lastIndexOf(0x0a, end - 2) + 1;
        if (lineStart === 0 && tailStart > 0) {
          throw new AuditLogError(`${path}: the last line is over ${TAIL_BYTES} bytes; the log is damaged`);
        }
        const line = tail.subarray(lineStart, end - 1).toString('latin1');
        const record = parseLast(line);
        if (record === null) {
          throw new AuditLogError(
            `${path}: the last line is not an audit record, so the chain cannot be continued; ` +
              'run `apertus audit verify` to find the damage, keep the log as evidence (move it aside), and start again',
          );
        }
        seq = record.seq;
        prev = record.hash;
      }
      return new AuditLog(path, fd, tailStart + end, seq, prev);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  constructor(path, fd, size, seq, prev) {
    this.path = path;
    this.fd = fd;
    this.size = size;
    this.seq = seq;
    this.prev = prev;
    this.appendedSinceStart = 0;
    this.durableSeq = seq;
    this.syncing = null;
    this.closed = false;
  }

  /**
   * Appends one record and resolves with it once it is on disk. Runs synchronously up to
   * the fsync, so records take seq numbers in call order and lines never interleave.
   */
  async append({ caller, method, endpoint, status, requestSha256, responseSha256, documents }) {
    if (this.closed) throw new AuditLogError('the audit log is closed');
    const fields = {
      seq: this.seq + 1,
      time: new Date().toISOString(),
      caller: String(caller),
      method: String(method),
      endpoint: String(endpoint).slice(0, MAX_ENDPOINT_CHARS),
      status,
      requestSha256,
      responseSha256,
      documents: [...documents].map(String),
      prev: this.prev,
    };
    const body = canonicalBody(fields);
    const hash = sha256Hex(body);
    const line = Buffer.from(`${body.slice(0, -1)},"hash":"${hash}"}\n`, 'latin1');
    let written = 0;
    try {
      written = writeSync(this.fd, line);
    } catch (error) {
      this.repair();
      throw new AuditLogError(`cannot write to ${this.path}: ${error.message}`);
    }
    if (written !== line.length) {
      this.repair();
      throw new AuditLogError(`short write to ${this.path} (${written} of ${line.length} bytes)`);
    }
    this.size += line.length;
    this.seq = fields.seq;
    this.prev = hash;
    this.appendedSinceStart += 1;
    await this.durable(fields.seq);
    return { ...fields, hash };
  }

  /** Cuts what a failed write left, so the chain on disk stays whole. */
  repair() {
    try {
      ftruncateSync(this.fd, this.size);
    } catch {
      // The next append fails the same way and the request is refused; nothing else to do.
    }
  }

  async durable(seq) {
    while (this.durableSeq < seq) {
      if (this.syncing === null) {
        const target = this.seq;
        this.syncing = new Promise((resolve, reject) => {
          fdatasync(this.fd, (error) => {
            this.syncing = null;
            if (error) reject(new AuditLogError(`cannot sync ${this.path}: ${error.message}`));
            else {
              this.durableSeq = Math.max(this.durableSeq, target);
              resolve();
            }
          });
        });
      }
      await this.syncing;
    }
  }

  async close() {
    if (this.closed) return;
    await this.durable(this.seq).catch(() => {});
    this.closed = true;
    closeSync(this.fd);
  }
}

function parseLast(line) {
  try {
    const record = JSON.parse(line);
    if (!Number.isInteger(record?.seq) || record.seq < 1) return null;
    if (typeof record.hash !== 'string' || !/^[0-9a-f]{64}$/.test(record.hash)) return null;
    if (sha256Hex(canonicalBody(record)) !== record.hash) return null;
    return record;
  } catch {
    return null;
  }
}
