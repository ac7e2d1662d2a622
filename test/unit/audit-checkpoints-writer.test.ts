/**
 * The RAG service's writer (templates/rag/audit-log.mjs) anchoring its log in signed
 * checkpoints: every N records, at close, at an open that finds unanchored records; and its
 * refusal to start on a log that lost checkpointed records (truncated, emptied, deleted,
 * replaced). Real files in a temp dir, keys made by src/core/sign/keys.ts.
 */
import { closeSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointSigningMessage, verifyAuditSignature } from '../../src/core/audit/signatures.js';
import { verifyAuditChain } from '../../src/core/audit/verify-chain.js';
import { generateKeyPair, type PublicKey, readPublicKey } from '../../src/core/sign/keys.js';
import { AuditLog, checkpointsPath, readCheckpointKey } from '../../templates/rag/audit-log.mjs';

const HEX0 = '0'.repeat(64);

interface CheckpointLine {
  seq: number;
  hash: string;
  time: string;
  reason: string;
  sig: string;
}

let dir: string;
let keyFile: string;
let publicKey: PublicKey;
let otherKeyFile: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'apertus-audit-checkpoints-'));
  keyFile = (await generateKeyPair(path.join(dir, 'keys', 'host'))).secretKeyPath;
  publicKey = await readPublicKey(path.join(dir, 'keys', 'host.pub'));
  otherKeyFile = (await generateKeyPair(path.join(dir, 'keys', 'other'))).secretKeyPath;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function entry(i: number, caller = 'alice') {
  return {
    caller,
    method: 'POST',
    endpoint: `/v1/query/${i}`,
    status: 200,
    requestSha256: HEX0,
    responseSha256: HEX0,
    documents: [`d${i}`],
  };
}

async function appendMany(log: AuditLog, count: number, caller = 'alice'): Promise<Array<{ hash: string }>> {
  const records = [];
  for (let i = 0; i < count; i++) records.push(await log.append(entry(i, caller)));
  return records;
}

async function checkpointLines(logPath: string): Promise<CheckpointLine[]> {
  const text = await readFile(checkpointsPath(logPath), 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as CheckpointLine);
}

/** A log of 12 records written with checkpoints every 5 and closed: checkpoints at 5, 10, 12. */
async function anchoredLog(name: string): Promise<{ logPath: string; hashes: string[] }> {
  const logPath = path.join(dir, name, 'audit.log');
  const log = AuditLog.open(logPath, { checkpoints: { key: readCheckpointKey(keyFile), every: 5 } });
  const records = await appendMany(log, 12);
  await log.close();
  return { logPath, hashes: records.map((r) => r.hash) };
}

/** Closes what a log holds open without writing anything more: a killed service. */
function abandon(log: AuditLog): void {
  closeSync(log.fd);
  if (log.checkpoints) closeSync(log.checkpoints.fd);
}

const keep = /keep .*audit\.log and .*audit\.log\.checkpoints as evidence, move both aside/;

describe('checkpoint key', () => {
  it('reads the key apertus keys generate writes, with the key id minisign prints', () => {
    expect(readCheckpointKey(keyFile).keyId).toBe(publicKey.keyId);
  });

  it('refuses a public key, a password-protected key and a damaged key', async () => {
    expect(() => readCheckpointKey(path.join(dir, 'keys', 'host.pub'))).toThrow(
      /not a minisign Ed25519 secret key/,
    );
    const [comment, line] = (await readFile(keyFile, 'utf8')).split('\n') as [string, string];
    const bytes = Buffer.from(line, 'base64');
    const encrypted = Buffer.from(bytes);
    encrypted.write('Sc', 2, 'latin1');
    await writeFile(path.join(dir, 'encrypted.key'), `${comment}\n${encrypted.toString('base64')}\n`);
    expect(() => readCheckpointKey(path.join(dir, 'encrypted.key'))).toThrow(/protected by a password/);
    const damaged = Buffer.from(bytes);
    damaged[100] = (damaged[100] as number) ^ 1; // inside the stored public half
    await writeFile(path.join(dir, 'damaged.key'), `${comment}\n${damaged.toString('base64')}\n`);
    expect(() => readCheckpointKey(path.join(dir, 'damaged.key'))).toThrow(/does not match its seed/);
    expect(() => readCheckpointKey(path.join(dir, 'absent.key'))).toThrow(/cannot read the checkpoint key/);
  });
});

describe('AuditLog checkpoints', () => {
  it('writes a signed checkpoint every N records and one at close, each anchoring a durable record', async () => {
    const { logPath, hashes } = await anchoredLog('every');
    const lines = await checkpointLines(logPath);
    expect(lines.map((c) => [c.seq, c.reason])).toEqual([
      [5, 'periodic'],
      [10, 'periodic'],
      [12, 'shutdown'],
    ]);
    for (const c of lines) {
      expect(c.hash).toBe(hashes[c.seq - 1]);
      expect(verifyAuditSignature(publicKey, checkpointSigningMessage(c), c.sig)).toEqual({ valid: true });
      expect(Object.keys(c)).toEqual(['seq', 'hash', 'time', 'reason', 'sig']);
    }
    // A checkpoint's fields are all it signs: another seq does not verify.
    const first = lines[0] as CheckpointLine;
    expect(
      verifyAuditSignature(publicKey, checkpointSigningMessage({ ...first, seq: 6 }), first.sig).valid,
    ).toBe(false);
    expect(verifyAuditChain(await readFile(logPath, 'utf8'))).toMatchObject({ ok: true, records: 12 });
  });

  it('anchors at open what a killed run wrote after its last checkpoint, and counts N from there', async () => {
    const { logPath } = await anchoredLog('killed');
    const key = readCheckpointKey(keyFile);
    const killed = AuditLog.open(logPath, { checkpoints: { key, every: 5 } });
    const unanchored = await appendMany(killed, 3);
    abandon(killed);
    expect((await checkpointLines(logPath)).at(-1)).toMatchObject({ seq: 12, reason: 'shutdown' });

    const reopened = AuditLog.open(logPath, { checkpoints: { key, every: 5 } });
    expect((await checkpointLines(logPath)).at(-1)).toMatchObject({
      seq: 15,
      hash: unanchored.at(-1)?.hash,
      reason: 'open',
    });
    await appendMany(reopened, 5);
    expect((await checkpointLines(logPath)).at(-1)).toMatchObject({ seq: 20, reason: 'periodic' });
    await reopened.close();
    expect((await checkpointLines(logPath)).map((c) => [c.seq, c.reason])).toEqual([
      [5, 'periodic'],
      [10, 'periodic'],
      [12, 'shutdown'],
      [15, 'open'],
      [20, 'periodic'],
      [20, 'shutdown'],
    ]);
  });

  it('anchors an existing log the first time it opens with a key; writes nothing without one', async () => {
    const logPath = path.join(dir, 'keyless', 'audit.log');
    const keyless = AuditLog.open(logPath);
    await appendMany(keyless, 7);
    await keyless.close();
    await expect(readFile(checkpointsPath(logPath))).rejects.toThrow(/ENOENT/);
    const keyed = AuditLog.open(logPath, { checkpoints: { key: readCheckpointKey(keyFile), every: 100 } });
    expect(await checkpointLines(logPath)).toMatchObject([{ seq: 7, reason: 'open' }]);
    await keyed.close();
  });

  it('writes no checkpoint for an empty log', async () => {
    const logPath = path.join(dir, 'empty-run', 'audit.log');
    const log = AuditLog.open(logPath, { checkpoints: { key: readCheckpointKey(keyFile), every: 5 } });
    await log.close();
    expect(await readFile(checkpointsPath(logPath), 'utf8')).toBe('');
  });

  it('cuts a checkpoint torn by a crash and goes on', async () => {
    const { logPath } = await anchoredLog('torn');
    await writeFile(checkpointsPath(logPath), '{"seq":13,"hash":"ab', { flag: 'a' });
    const notices: string[] = [];
    const log = AuditLog.open(logPath, {
      checkpoints: { key: readCheckpointKey(keyFile), every: 5 },
      onNotice: (m: string) => notices.push(m),
    });
    expect(notices.join()).toMatch(/cut 20 bytes of a checkpoint torn by a crash/);
    await log.close();
    expect((await checkpointLines(logPath)).map((c) => c.seq)).toEqual([5, 10, 12, 12]);
  });
});

describe('AuditLog refuses to start on a log that lost checkpointed records', () => {
  const key = () => ({ checkpoints: { key: readCheckpointKey(keyFile), every: 5 } });

  it('refuses a log whose last records were cut while it was stopped', async () => {
    const { logPath } = await anchoredLog('cut');
    const lines = (await readFile(logPath, 'utf8')).split('\n');
    await writeFile(logPath, `${lines.slice(0, 9).join('\n')}\n`);
    expect(() => AuditLog.open(logPath, key())).toThrow(
      /audit\.log ends at seq 9, but the last checkpoint in .* \(shutdown, .*\) anchors seq 12 with hash [0-9a-f]{64}: records 10 to 12 are gone/,
    );
    expect(() => AuditLog.open(logPath, key())).toThrow(keep);
    // Without the key, as an old unit would start it, the log is still held to its checkpoints.
    expect(() => AuditLog.open(logPath)).toThrow(/records 10 to 12 are gone/);
    await writeFile(logPath, `${lines.slice(0, 11).join('\n')}\n`);
    expect(() => AuditLog.open(logPath, key())).toThrow(/ends at seq 11, .*: record 12 is gone/);
  });

  it('refuses an emptied log', async () => {
    const { logPath } = await anchoredLog('emptied');
    await writeFile(logPath, '');
    expect(() => AuditLog.open(logPath, key())).toThrow(
      /audit\.log is empty, but .*: records 1 to 12 are gone/,
    );
  });

  it('refuses a deleted log, and does not create a new one over the evidence', async () => {
    const { logPath } = await anchoredLog('deleted');
    await rm(logPath);
    expect(() => AuditLog.open(logPath, key())).toThrow(
      /audit\.log is missing, but .*: records 1 to 12 are gone/,
    );
    await expect(readFile(logPath)).rejects.toThrow(/ENOENT/);
  });

  it('refuses a log replaced by a shorter or a longer valid chain', async () => {
    const { logPath } = await anchoredLog('replaced');
    const forged = path.join(dir, 'forged', 'audit.log');
    const forger = AuditLog.open(forged);
    const forgedRecords = await appendMany(forger, 15, 'mallory');
    await forger.close();
    const forgedLines = (await readFile(forged, 'utf8')).split('\n');

    await writeFile(logPath, `${forgedLines.slice(0, 7).join('\n')}\n`);
    expect(() => AuditLog.open(logPath, key())).toThrow(/ends at seq 7, .*: records 8 to 12 are gone/);

    await writeFile(logPath, `${forgedLines.slice(0, 15).join('\n')}\n`);
    expect(() => AuditLog.open(logPath, key())).toThrow(
      new RegExp(
        `holds a record at seq 12 with hash ${forgedRecords[11]?.hash}, but the last checkpoint .* anchors seq 12 .*: the log was replaced`,
      ),
    );
  });

  it('refuses a last checkpoint that is not signed by the key', async () => {
    const { logPath } = await anchoredLog('forged-checkpoint');
    const other = readCheckpointKey(otherKeyFile);
    // A checkpoint written by another key (a forger's, or the host's old one).
    const log = AuditLog.open(path.join(dir, 'other', 'audit.log'), {
      checkpoints: { key: other, every: 100 },
    });
    await appendMany(log, 1);
    await log.close();
    const line = await readFile(checkpointsPath(path.join(dir, 'other', 'audit.log')), 'utf8');
    await writeFile(checkpointsPath(logPath), line, { flag: 'a' });
    expect(() => AuditLog.open(logPath, key())).toThrow(
      new RegExp(
        `the last checkpoint \\(seq 1, .*\\) is not signed by the checkpoint key ${publicKey.keyId}`,
      ),
    );
  });

  it('starts again once the damaged log and checkpoints are moved aside', async () => {
    const { logPath } = await anchoredLog('moved');
    await writeFile(logPath, '');
    await mkdir(path.join(dir, 'moved', 'evidence'));
    await cp(logPath, path.join(dir, 'moved', 'evidence', 'audit.log'));
    await rm(logPath);
    await cp(checkpointsPath(logPath), path.join(dir, 'moved', 'evidence', 'audit.log.checkpoints'));
    await rm(checkpointsPath(logPath));
    const log = AuditLog.open(logPath, key());
    expect(log.seq).toBe(0);
    await log.close();
  });
});
