// The RAG service's tamper-evident audit log: one JSON line per request, hash-chained.
//
// Record fields, in this order (the order is part of the format):
//   seq             integer, 1 for the first record, then +1 per record
//   time            ISO-8601 UTC time the record was written (Date#toISOString)
//   caller          the x-apertus-caller header, or 'anonymous'; 'claimed:<header>' when the
//                   service checks the gateway's token and the request lacks it (server.mjs)
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
//
// Checkpoints: a hash chain shows every edited record, but not records cut from its end, nor
// a log emptied, deleted or replaced by a shorter valid chain. So, given a signing key, the
// log anchors its head in `<log>.checkpoints`: one JSON line per checkpoint,
//   {"seq":N,"hash":"<the record's hash>","time":"<ISO>","reason":"periodic|shutdown|open","sig":"<KEY ID>:<base64>"}
// written every N records, at close (after the last record is durable), and at open when
// the log's head is newer than the last checkpoint (what a killed run wrote). `sig` is an
// Ed25519 signature over checkpointSigningMessage (below; src/core/audit/signatures.ts
// defines the same; change both or neither). A checkpoint is written only once the record it
// anchors is durable, so a crash can never leave a checkpoint ahead of the log.
// At open, whenever the checkpoints file exists (with or without a key), the log must still
// hold the record its last checkpoint anchors, with that hash; otherwise records are gone
// and the service refuses to start rather than write a new chain over the evidence.

import { createHash, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fdatasync,
  fdatasyncSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
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

// ---- checkpoints ---------------------------------------------------------------------------

export const CHECKPOINT_REASONS = ['periodic', 'shutdown', 'open'];
const CHECKPOINT_FIELDS = ['seq', 'hash', 'time', 'reason', 'sig'];
const SIGNATURE = /^[0-9A-F]{16}:[A-Za-z0-9+/]{86}==$/;
/** DER prefix that makes a raw 32-byte Ed25519 seed a PKCS#8 private key. */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SECRET_KEY_BYTES = 158;

/** The path of a log's checkpoints. */
export function checkpointsPath(logPath) {
  return `${logPath}.checkpoints`;
}

/** The bytes a checkpoint's signature covers (signatures.ts defines the same; change both or neither). */
export function checkpointSigningMessage({ seq, hash, time, reason }) {
  return `apertus-audit-checkpoint-v1\n${seq}\n${hash}\n${time}\n${reason}`;
}

/**
 * The checkpoint signing key from an unencrypted minisign secret key file, as
 * `apertus keys generate` and `minisign -G -W` write it: an "untrusted comment:" line, then
 * base64 of 158 bytes:
 *   "Ed" | kdf 2 (0 0: unencrypted) | "B2" | salt 32 | opslimit 8 | memlimit 8 |
 *   key number 8 | Ed25519 seed 32 | public key 32 | checksum 32
 * The key id is the key number read as a little-endian integer, in upper-case hex, as
 * minisign prints it. The checksum is BLAKE2b-256, which node:crypto lacks; instead the
 * public key derived from the seed must equal the stored one, which a damaged file fails too.
 */
export function readCheckpointKey(file) {
  let text;
  try {
    text = readFileSync(file, 'latin1');
  } catch (error) {
    throw new AuditLogError(`cannot read the checkpoint key ${file}: ${error.message}`);
  }
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '');
  const keyLine = lines[0]?.startsWith('untrusted comment:') ? lines[1] : lines[0];
  const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(keyLine ?? '') ? Buffer.from(keyLine, 'base64') : null;
  if (
    bytes?.length !== SECRET_KEY_BYTES ||
    bytes.toString('latin1', 0, 2) !== 'Ed' ||
    bytes.toString('latin1', 4, 6) !== 'B2'
  ) {
    throw new AuditLogError(`${file} is not a minisign Ed25519 secret key`);
  }
  if (bytes[2] !== 0 || bytes[3] !== 0) {
    throw new AuditLogError(
      `${file} is protected by a password, which the service cannot ask for; give it an unencrypted key (apertus keys generate)`,
    );
  }
  const privateKey = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, bytes.subarray(62, 94)]),
    format: 'der',
    type: 'pkcs8',
  });
  const publicKey = createPublicKey(privateKey);
  if (!publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).equals(bytes.subarray(94, 126))) {
    throw new AuditLogError(`${file}: its public half does not match its seed (the file is damaged)`);
  }
  const keyId = Buffer.from(bytes.subarray(54, 62)).reverse().toString('hex').toUpperCase();
  return { keyId, privateKey, publicKey };
}

/** A checkpoint line's fields, or null when the line is not one. */
function parseCheckpoint(line) {
  try {
    const c = JSON.parse(line);
    if (c === null || typeof c !== 'object' || Object.keys(c).join() !== CHECKPOINT_FIELDS.join())
      return null;
    if (!Number.isSafeInteger(c.seq) || c.seq < 1) return null;
    if (typeof c.hash !== 'string' || !/^[0-9a-f]{64}$/.test(c.hash)) return null;
    if (typeof c.time !== 'string' || Number.isNaN(Date.parse(c.time))) return null;
    if (!CHECKPOINT_REASONS.includes(c.reason)) return null;
    if (typeof c.sig !== 'string' || !SIGNATURE.test(c.sig)) return null;
    return c;
  } catch {
    return null;
  }
}

function checkpointVerifies(checkpoint, key) {
  const [keyId, base64] = checkpoint.sig.split(':');
  return (
    keyId === key.keyId &&
    verify(
      null,
      Buffer.from(checkpointSigningMessage(checkpoint), 'utf8'),
      key.publicKey,
      Buffer.from(base64, 'base64'),
    )
  );
}

/** What to do with a log that lost records, said in every refusal. */
function keepAsEvidence(logPath) {
  return (
    `run \`apertus audit verify\` to see what is missing; keep ${logPath} and ${checkpointsPath(logPath)} ` +
    'as evidence, move both aside (e.g. add .damaged-<date> to their names), and start the service again to begin a new chain'
  );
}

/**
 * Reads the last checkpoint of `path` (null when there is none), cutting a line torn by a
 * crash when `cut` (the log is about to be written). With `key`, the last checkpoint must
 * verify: one that does not was not written by this service with this key.
 */
function readLastCheckpoint(path, logPath, { key, cut, onNotice }) {
  if (!existsSync(path)) return null;
  const fd = openSync(path, cut ? 'r+' : 'r');
  try {
    const { tailStart, tail } = readTail(fd);
    let end = tail.length;
    if (end > 0 && tail[end - 1] !== 0x0a) {
      end = tail.lastIndexOf(0x0a) + 1;
      if (end === 0 && tailStart > 0) {
        throw new AuditLogError(
          `${path}: the last ${TAIL_BYTES} bytes hold no line break; ${keepAsEvidence(logPath)}`,
        );
      }
      onNotice(
        `${path}: ${cut ? 'cut' : 'ignored'} ${tail.length - end} bytes of a checkpoint torn by a crash`,
      );
      if (cut) {
        ftruncateSync(fd, tailStart + end);
        fdatasyncSync(fd);
      }
    }
    if (end === 0) return null;
    const line = tail.subarray(tail.lastIndexOf(0x0a, end - 2) + 1, end - 1).toString('latin1');
    const checkpoint = parseCheckpoint(line);
    if (checkpoint === null) {
      throw new AuditLogError(
        `${path}: the last line is not a checkpoint, so what the log must hold is unknown; ${keepAsEvidence(logPath)}`,
      );
    }
    if (key && !checkpointVerifies(checkpoint, key)) {
      throw new AuditLogError(
        `${path}: the last checkpoint (seq ${checkpoint.seq}, ${checkpoint.time}) is not signed by the checkpoint key ${key.keyId} ` +
          `(altered, or written with another key); ${keepAsEvidence(logPath)}`,
      );
    }
    return checkpoint;
  } finally {
    closeSync(fd);
  }
}

/** The last TAIL_BYTES of a file, and where they start. */
function readTail(fd) {
  const size = fstatSync(fd).size;
  const tailStart = Math.max(0, size - TAIL_BYTES);
  const tail = Buffer.alloc(size - tailStart);
  if (tail.length > 0) readSync(fd, tail, 0, tail.length, tailStart);
  return { tailStart, tail };
}

/** The seq a line starts with, or null. */
function seqOf(line) {
  const match = /^\{"seq":(\d{1,15})[,}]/.exec(line);
  return match ? Number(match[1]) : null;
}

/**
 * The hash of the record at `seq` as its body hashes (null: it cannot be read), or undefined
 * when no line holds that seq. Read backwards from the end, where a checkpointed record
 * normally is (at most N records before the head).
 */
function recordHashAt(fd, size, seq) {
  let end = size;
  let rest = Buffer.alloc(0);
  while (end > 0) {
    const start = Math.max(0, end - TAIL_BYTES);
    const chunk = Buffer.alloc(end - start);
    readSync(fd, chunk, 0, chunk.length, start);
    const lines = Buffer.concat([chunk, rest]).toString('latin1').split('\n');
    // The first piece may be the end of a line that starts before `start`: read with the next chunk.
    rest = start > 0 ? Buffer.from(lines.shift(), 'latin1') : Buffer.alloc(0);
    for (let i = lines.length - 1; i >= 0; i--) {
      const lineSeq = seqOf(lines[i]);
      if (lineSeq === seq) return parseLast(lines[i])?.hash ?? null;
      if (lineSeq !== null && lineSeq < seq) return undefined;
    }
    end = start;
  }
  return undefined;
}

/** Refuses a log that no longer holds the record its last checkpoint anchors. */
function checkAnchored(path, checkpoint, { seq, prev, fd, size }) {
  const anchor = `the last checkpoint in ${checkpointsPath(path)} (${checkpoint.reason}, ${checkpoint.time}) anchors seq ${checkpoint.seq} with hash ${checkpoint.hash}`;
  if (seq === 0) {
    throw new AuditLogError(
      `${path} is empty, but ${anchor}: records 1 to ${checkpoint.seq} are gone; ${keepAsEvidence(path)}`,
    );
  }
  if (seq < checkpoint.seq) {
    const gone =
      seq + 1 === checkpoint.seq
        ? `record ${checkpoint.seq} is`
        : `records ${seq + 1} to ${checkpoint.seq} are`;
    throw new AuditLogError(
      `${path} ends at seq ${seq}, but ${anchor}: ${gone} gone; ${keepAsEvidence(path)}`,
    );
  }
  const hash = seq === checkpoint.seq ? prev : recordHashAt(fd, size, checkpoint.seq);
  if (hash !== checkpoint.hash) {
    const found =
      hash === undefined
        ? `holds no record at seq ${checkpoint.seq}`
        : hash === null
          ? `holds a damaged record at seq ${checkpoint.seq}`
          : `holds a record at seq ${checkpoint.seq} with hash ${hash}`;
    throw new AuditLogError(`${path} ${found}, but ${anchor}: the log was replaced; ${keepAsEvidence(path)}`);
  }
}

// ---- the log -------------------------------------------------------------------------------

export class AuditLog {
  /**
   * Opens (or creates) the log, cuts a torn tail, and reads the last record to continue
   * the chain. Throws AuditLogError when the last complete line is not a record, or when
   * the log lost records its checkpoints anchor.
   *
   * checkpoints: { key (readCheckpointKey), every (records between periodic checkpoints) }
   * to write checkpoints; without it none are written, but existing ones are still held to.
   */
  static open(path, { onNotice = () => {}, checkpoints = null } = {}) {
    const key = checkpoints?.key ?? null;
    const lastCheckpoint = readLastCheckpoint(checkpointsPath(path), path, {
      key,
      cut: key !== null,
      onNotice,
    });
    if (lastCheckpoint !== null && !existsSync(path)) {
      throw new AuditLogError(
        `${path} is missing, but the last checkpoint in ${checkpointsPath(path)} (${lastCheckpoint.reason}, ${lastCheckpoint.time}) ` +
          `anchors seq ${lastCheckpoint.seq} with hash ${lastCheckpoint.hash}: records 1 to ${lastCheckpoint.seq} are gone; ${keepAsEvidence(path)}`,
      );
    }
    mkdirSync(dirname(path), { recursive: true });
    const fd = openSync(path, 'a+', 0o640);
    let checkpointFd = null;
    try {
      const { tailStart, tail } = readTail(fd);
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
      if (lastCheckpoint !== null)
        checkAnchored(path, lastCheckpoint, { seq, prev, fd, size: tailStart + end });
      let writer = null;
      if (key !== null) {
        checkpointFd = openSync(checkpointsPath(path), 'a', 0o640);
        writer = {
          key,
          every: checkpoints.every ?? 100,
          fd: checkpointFd,
          size: fstatSync(checkpointFd).size,
          lastSeq: lastCheckpoint?.seq ?? 0,
        };
      }
      const log = new AuditLog(path, fd, tailStart + end, seq, prev, { writer, onNotice });
      // What a killed run wrote after its last checkpoint is anchored before anything is
      // added; its records may still sit unsynced in the page cache, so sync them first.
      if (writer !== null && seq > writer.lastSeq) {
        fdatasyncSync(fd);
        log.writeCheckpoint('open', seq, prev);
        fdatasyncSync(writer.fd);
      }
      return log;
    } catch (error) {
      closeSync(fd);
      if (checkpointFd !== null) closeSync(checkpointFd);
      throw error;
    }
  }

  constructor(path, fd, size, seq, prev, { writer = null, onNotice = () => {} } = {}) {
    this.path = path;
    this.fd = fd;
    this.size = size;
    this.seq = seq;
    this.prev = prev;
    this.appendedSinceStart = 0;
    this.durableSeq = seq;
    this.syncing = null;
    this.closed = false;
    /** Checkpoint writing state: { key, every, fd, size, lastSeq }, or null without a key. */
    this.checkpoints = writer;
    /** Checkpoint writes run one after another, in seq order. */
    this.checkpointing = Promise.resolve();
    this.onNotice = onNotice;
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
    const checkpoints = this.checkpoints;
    if (checkpoints !== null && fields.seq - checkpoints.lastSeq >= checkpoints.every) {
      checkpoints.lastSeq = fields.seq;
      await this.checkpointDurably('periodic', fields.seq, hash);
    }
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

  /**
   * Appends one signed checkpoint line for a durable record: one write() of the whole line
   * with O_APPEND; a short write is cut off again. The caller syncs.
   */
  writeCheckpoint(reason, seq, hash) {
    const checkpoints = this.checkpoints;
    const fields = { seq, hash, time: new Date().toISOString(), reason };
    const signature = sign(
      null,
      Buffer.from(checkpointSigningMessage(fields), 'utf8'),
      checkpoints.key.privateKey,
    );
    const sig = `${checkpoints.key.keyId}:${signature.toString('base64')}`;
    const line = Buffer.from(`${JSON.stringify({ ...fields, sig })}\n`, 'latin1');
    const path = checkpointsPath(this.path);
    let written = 0;
    try {
      written = writeSync(checkpoints.fd, line);
    } catch (error) {
      written = -1;
      this.onNotice(`cannot write a checkpoint to ${path}: ${error.message}`);
    }
    if (written !== line.length) {
      try {
        ftruncateSync(checkpoints.fd, checkpoints.size);
      } catch {}
      throw new AuditLogError(`the checkpoint of seq ${seq} was not written to ${path}`);
    }
    checkpoints.size += line.length;
    checkpoints.lastSeq = Math.max(checkpoints.lastSeq, seq);
  }

  /**
   * Writes and syncs a checkpoint after those before it. A failure is told, not thrown: the
   * records stay durable, and the next checkpoint anchors them.
   */
  checkpointDurably(reason, seq, hash) {
    const fd = this.checkpoints.fd;
    this.checkpointing = this.checkpointing
      .then(() => {
        this.writeCheckpoint(reason, seq, hash);
        return new Promise((resolve, reject) =>
          fdatasync(fd, (error) =>
            error
              ? reject(new AuditLogError(`cannot sync ${checkpointsPath(this.path)}: ${error.message}`))
              : resolve(),
          ),
        );
      })
      .catch((error) => this.onNotice(error.message));
    return this.checkpointing;
  }

  /** Makes every record durable, then anchors the head with a shutdown checkpoint. */
  async close() {
    if (this.closed) return;
    const durable = await this.durable(this.seq).then(
      () => true,
      () => false,
    );
    this.closed = true;
    if (this.checkpoints !== null) {
      if (!durable) this.onNotice(`no shutdown checkpoint: the records of ${this.path} could not be synced`);
      else if (this.seq > 0) await this.checkpointDurably('shutdown', this.seq, this.prev);
      else await this.checkpointing;
      closeSync(this.checkpoints.fd);
    }
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
