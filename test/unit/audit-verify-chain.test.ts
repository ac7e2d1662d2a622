import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AuditRecord,
  auditRecordHash,
  canonicalAuditLine,
  GENESIS_PREV,
  verifyAuditChain,
} from '../../src/core/audit/verify-chain.js';
// The service's own writer: the verifier must accept exactly what it writes.
import { AuditLog } from '../../templates/rag/audit-log.mjs';

const ZERO = '0'.repeat(64);
const ONE = '1'.repeat(64);

/** A chain built with the verifier's own functions, one line per record. */
function chain(count: number, edit: (r: Omit<AuditRecord, 'hash'>) => void = () => {}): string[] {
  const lines: string[] = [];
  let prev = GENESIS_PREV;
  for (let seq = 1; seq <= count; seq++) {
    const fields = {
      seq,
      time: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
      caller: seq % 2 ? 'alice' : 'anonymous',
      method: 'POST',
      endpoint: '/v1/query',
      status: 200,
      requestSha256: ZERO,
      responseSha256: ONE,
      documents: seq % 3 ? ['doc-a'] : [],
      prev,
    };
    edit(fields);
    const record = { ...fields, hash: auditRecordHash(fields) };
    lines.push(canonicalAuditLine(record));
    prev = record.hash;
  }
  return lines;
}

const text = (lines: string[]) => lines.map((l) => `${l}\n`).join('');

describe('verifyAuditChain', () => {
  it('accepts an empty log and a whole chain', () => {
    expect(verifyAuditChain('')).toEqual({
      ok: true,
      records: 0,
      lastSeq: null,
      lastHash: GENESIS_PREV,
      pendingTailBytes: 0,
    });
    const result = verifyAuditChain(text(chain(5)));
    expect(result.ok).toBe(true);
    expect(result.records).toBe(5);
    expect(result.lastSeq).toBe(5);
    expect(result.firstBroken).toBeUndefined();
  });

  it('finds every single changed byte, at its own line', () => {
    const lines = chain(3);
    const target = lines[1] as string;
    for (let i = 0; i < target.length; i++) {
      const original = target[i] as string;
      // A digit for a digit and a letter for a letter keeps the JSON valid where it can.
      const replacement = /[0-9]/.test(original)
        ? String((Number(original) + 1) % 10)
        : original === 'a'
          ? 'b'
          : original === '"'
            ? "'"
            : 'a';
      const edited = [...lines];
      edited[1] = target.slice(0, i) + replacement + target.slice(i + 1);
      const result = verifyAuditChain(text(edited));
      expect(result.ok, `byte ${i} (${original} -> ${replacement})`).toBe(false);
      expect(result.firstBroken?.line, `byte ${i}`).toBe(2);
      expect(result.records).toBe(1);
    }
  });

  it('names the reason: hash, prev, seq, JSON, record shape', () => {
    const lines = chain(4);
    const withLine = (index: number, line: string) => lines.map((l, i) => (i === index ? line : l));

    const tampered = (lines[2] as string).replace('"caller":"alice"', '"caller":"mallory"');
    expect(verifyAuditChain(text(withLine(2, tampered))).firstBroken).toMatchObject({
      line: 3,
      seq: 3,
      reason: 'hash-mismatch',
    });

    // A record rebuilt with a fresh hash still breaks the link to the next one.
    const record = JSON.parse(lines[1] as string) as AuditRecord;
    const forged = { ...record, status: 500 };
    const forgedLine = canonicalAuditLine({ ...forged, hash: auditRecordHash(forged) });
    expect(verifyAuditChain(text(withLine(1, forgedLine))).firstBroken).toMatchObject({
      line: 3,
      seq: 3,
      reason: 'prev-mismatch',
    });

    const dropped = lines.filter((_, i) => i !== 1);
    expect(verifyAuditChain(text(dropped)).firstBroken).toMatchObject({ line: 2, seq: 3, reason: 'seq-gap' });

    const swapped = [lines[0], lines[2], lines[1], lines[3]] as string[];
    expect(verifyAuditChain(text(swapped)).firstBroken).toMatchObject({ line: 2, seq: 3, reason: 'seq-gap' });

    expect(verifyAuditChain(text(withLine(1, '')))).toMatchObject({
      ok: false,
      records: 1,
      firstBroken: { line: 2, seq: null, reason: 'malformed-json' },
    });
    expect(verifyAuditChain(text(withLine(1, '{"seq":2,'))).firstBroken).toMatchObject({
      line: 2,
      seq: 2,
      reason: 'malformed-json',
    });

    const spaced = (lines[1] as string).replace('"status":200', '"status": 200');
    expect(verifyAuditChain(text(withLine(1, spaced))).firstBroken).toMatchObject({
      line: 2,
      seq: 2,
      reason: 'malformed-record',
    });
    const reordered = JSON.stringify(Object.fromEntries(Object.entries(record).reverse()));
    expect(verifyAuditChain(text(withLine(1, reordered))).firstBroken).toMatchObject({
      line: 2,
      reason: 'malformed-record',
    });
    const extra = (lines[1] as string).replace('{"seq":2,', '{"seq":2,"note":"x",');
    expect(verifyAuditChain(text(withLine(1, extra))).firstBroken?.reason).toBe('malformed-record');
  });

  it('demands the genesis: seq 1 with a prev of 64 zeros', () => {
    const notGenesis = chain(2, (r) => {
      if (r.seq === 1) r.prev = ONE;
    });
    expect(verifyAuditChain(text(notGenesis)).firstBroken).toMatchObject({
      line: 1,
      seq: 1,
      reason: 'prev-mismatch',
    });
    const fromTwo = chain(3).slice(1);
    expect(verifyAuditChain(text(fromTwo)).firstBroken).toMatchObject({ line: 1, seq: 2, reason: 'seq-gap' });
  });

  it('fails on an unterminated last line unless told the log is live', () => {
    const lines = chain(3);
    const torn = `${text(lines.slice(0, 2))}${(lines[2] as string).slice(0, 40)}`;
    expect(verifyAuditChain(torn).firstBroken).toMatchObject({ line: 3, seq: 3, reason: 'incomplete-line' });
    const live = verifyAuditChain(torn, { allowIncompleteTail: true });
    expect(live).toMatchObject({ ok: true, records: 2, lastSeq: 2, pendingTailBytes: 40 });
    // A complete record without its newline is not what the writer writes either.
    expect(verifyAuditChain(text(lines).slice(0, -1)).firstBroken?.reason).toBe('incomplete-line');
  });

  it('escapes non-ASCII and refuses the same record written raw', () => {
    const lines = chain(2, (r) => {
      if (r.seq === 2) {
        r.caller = 'Zoë 😀';
        r.documents = ['naïve'];
      }
    });
    expect(lines[1]).toContain('"caller":"Zo\\u00eb \\ud83d\\ude00"');
    expect(verifyAuditChain(text(lines)).ok).toBe(true);
    const raw = (lines[1] as string).replace('Zo\\u00eb', 'Zoë');
    expect(verifyAuditChain(text([lines[0] as string, raw])).firstBroken).toMatchObject({
      line: 2,
      reason: 'malformed-record',
    });
  });

  it('rejects wrong types', () => {
    for (const [field, value] of [
      ['seq', '2'],
      ['status', 200.5],
      ['documents', 'doc-a'],
      ['requestSha256', 'ABC'],
      ['time', 'yesterday'],
    ] as const) {
      const lines = chain(2);
      const record = JSON.parse(lines[1] as string) as Record<string, unknown>;
      record[field] = value;
      const result = verifyAuditChain(text([lines[0] as string, JSON.stringify(record)]));
      expect(result.firstBroken?.reason, field).toBe('malformed-record');
    }
  });
});

describe('the service writer and the verifier agree', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'apertus-audit-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('verifies what AuditLog writes, across a reopen, with concurrent appends and odd characters', async () => {
    const file = path.join(dir, 'audit.log');
    const entry = (i: number) => ({
      caller: i % 5 === 0 ? 'Zoë "quoted" \\ caller' : 'alice',
      method: 'POST',
      endpoint: `/v1/documents/d${i}`,
      status: 200,
      requestSha256: ZERO,
      responseSha256: ONE,
      documents: [`d${i}`, 'ünï'],
    });
    const first = AuditLog.open(file);
    const records = await Promise.all(Array.from({ length: 50 }, (_, i) => first.append(entry(i))));
    expect(records.map((r: { seq: number }) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    await first.close();

    const second = AuditLog.open(file);
    expect(second.seq).toBe(50);
    await Promise.all(Array.from({ length: 10 }, (_, i) => second.append(entry(50 + i))));
    await second.close();

    const log = await readFile(file, 'utf8');
    expect(/^[\x20-\x7e\n]*$/.test(log)).toBe(true);
    expect(verifyAuditChain(log)).toMatchObject({ ok: true, records: 60, lastSeq: 60 });
  });

  it('cuts a torn tail at open and continues the chain', async () => {
    const file = path.join(dir, 'torn.log');
    const log = AuditLog.open(file);
    for (let i = 0; i < 3; i++) {
      await log.append({
        caller: 'a',
        method: 'GET',
        endpoint: '/v1/documents',
        status: 200,
        requestSha256: ZERO,
        responseSha256: ONE,
        documents: [],
      });
    }
    await log.close();
    await writeFile(file, `${await readFile(file, 'utf8')}{"seq":4,"time":"2026`);
    const notices: string[] = [];
    const reopened = AuditLog.open(file, { onNotice: (m: string) => notices.push(m) });
    expect(notices.join()).toMatch(/cut 21 bytes/);
    await reopened.append({
      caller: 'b',
      method: 'GET',
      endpoint: '/v1/documents',
      status: 200,
      requestSha256: ZERO,
      responseSha256: ONE,
      documents: [],
    });
    await reopened.close();
    expect(verifyAuditChain(await readFile(file, 'utf8'))).toMatchObject({ ok: true, records: 4 });
  });

  it('refuses to continue a log whose last line is not a record', async () => {
    const file = path.join(dir, 'damaged.log');
    const lines = chain(2);
    await writeFile(file, text([lines[0] as string, (lines[1] as string).replace('anonymous', 'mallory')]));
    expect(() => AuditLog.open(file)).toThrow(/last line is not an audit record/);
  });
});

describe('signed records', () => {
  it('chain with a trailing sig that verifies against the signing key only', async () => {
    const { createKeyPair } = await import('../../src/core/sign/keys.js');
    const { recordSigningMessage, signAuditMessage, verifyAuditSignature } = await import(
      '../../src/core/audit/signatures.js'
    );
    const key = createKeyPair();
    const other = createKeyPair();
    const [first, second] = chain(2).map((line) => JSON.parse(line) as AuditRecord);
    const signed = [first, second].map((r) => ({
      ...(r as AuditRecord),
      sig: signAuditMessage(key.secretKey, recordSigningMessage((r as AuditRecord).hash)),
    }));
    const log = text(signed.map(canonicalAuditLine));
    expect(verifyAuditChain(log)).toMatchObject({ ok: true, records: 2 });
    const record = signed[1] as AuditRecord;
    const message = recordSigningMessage(record.hash);
    expect(verifyAuditSignature(key.publicKey, message, record.sig as string)).toEqual({ valid: true });
    expect(verifyAuditSignature(other.publicKey, message, record.sig as string)).toMatchObject({
      valid: false,
      reason: expect.stringContaining(key.publicKey.keyId),
    });
    expect(verifyAuditSignature(key.publicKey, recordSigningMessage(ZERO), record.sig as string)).toEqual({
      valid: false,
      reason: `the signature by key ${key.publicKey.keyId} does not match`,
    });
    // A sig that is not of the form KEYID:SIGNATURE breaks the chain where it stands.
    const garbled = log.replace(/"sig":"[0-9A-F]{16}:/, '"sig":"nothex:');
    expect(verifyAuditChain(garbled)).toMatchObject({
      ok: false,
      firstBroken: { line: 1, reason: 'malformed-record' },
    });
  });
});
