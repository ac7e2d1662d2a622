/**
 * `apertus audit verify` holding the RAG log to its signed checkpoints, through the local
 * transport (SSH runs the same commands): logs and checkpoints written by the service's own
 * writer with a host key pair as the install lays it out (<root>/keys/host.{key,pub}); each
 * loss named (tail cut, emptied, deleted, replaced), forged and malformed checkpoints
 * reported, and logs from before checkpoints still verifying as 'unanchored'.
 */
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditVerify } from '../../src/core/audit/audit-verify.js';
import { checkpointSigningMessage, signAuditMessage } from '../../src/core/audit/signatures.js';
import {
  type AuditRecord,
  auditRecordHash,
  canonicalAuditLine,
  GENESIS_PREV,
} from '../../src/core/audit/verify-chain.js';
import { ApertusError } from '../../src/core/errors.js';
import { ragDataPaths } from '../../src/core/runtimes/rag/rag-service.js';
import { createKeyPair, generateKeyPair } from '../../src/core/sign/keys.js';
import { AuditLog, readCheckpointKey } from '../../templates/rag/audit-log.mjs';
import { runCli } from '../helpers/run-cli.js';

const HEX0 = '0'.repeat(64);
let base: string;
let counter = 0;

beforeAll(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'apertus-audit-anchors-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

/** What the service appends for one request. */
function request(caller: string) {
  return {
    caller,
    method: 'GET',
    endpoint: '/v1/documents',
    status: 200,
    requestSha256: HEX0,
    responseSha256: HEX0,
    documents: [] as string[],
  };
}

interface Host {
  root: string;
  log: string;
  checkpoints: string;
  hashes: string[];
}

/** An install root with a host key pair and a RAG log of `records` records, checkpointed every 5 by the service's writer and closed. */
async function host(records = 12, { key = true } = {}): Promise<Host> {
  counter += 1;
  const root = path.join(base, `host-${counter}`);
  const paths = ragDataPaths(root);
  let checkpoints = null;
  if (key) {
    const pair = await generateKeyPair(path.join(root, 'keys', 'host'));
    checkpoints = { key: readCheckpointKey(pair.secretKeyPath), every: 5 };
  }
  const log = AuditLog.open(paths.auditLog, { checkpoints });
  const hashes: string[] = [];
  for (let i = 0; i < records; i++) {
    const record = await log.append(request('alice'));
    hashes.push(record.hash);
  }
  await log.close();
  return { root, log: paths.auditLog, checkpoints: paths.auditCheckpoints, hashes };
}

async function keepLines(file: string, count: number): Promise<void> {
  const lines = (await readFile(file, 'utf8')).split('\n').slice(0, count);
  await writeFile(file, lines.map((l) => `${l}\n`).join(''));
}

/** A valid chain of other records (another caller), as a forger would write one. */
function otherChain(count: number): string {
  let prev = GENESIS_PREV;
  let text = '';
  for (let seq = 1; seq <= count; seq++) {
    const fields: Omit<AuditRecord, 'hash'> = {
      seq,
      time: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
      ...request('mallory'),
      prev,
    };
    const hash = auditRecordHash(fields);
    text += `${canonicalAuditLine({ ...fields, hash })}\n`;
    prev = hash;
  }
  return text;
}

const verify = (h: Host) => auditVerify({ target: { kind: 'local' }, root: h.root });

describe('audit verify with checkpoints', () => {
  it('is ok when the log holds the newest checkpoint, and says what is not anchored yet', async () => {
    const h = await host(12);
    const result = await verify(h);
    expect(result).toMatchObject({ ok: true, records: 12 });
    expect(result.checkpoints).toMatchObject({
      status: 'ok',
      ok: true,
      count: 3,
      verified: 3,
      last: { seq: 12, hash: h.hashes[11], reason: 'shutdown' },
      problems: [],
    });
    // Records a live service added after its last checkpoint are fine.
    const live = AuditLog.open(h.log);
    await live.append(request('bob'));
    await live.close();
    const later = await verify(h);
    expect(later.ok).toBe(true);
    expect(later.checkpoints?.detail).toMatch(
      /anchors seq 12 .*, and the log holds it; 1 record after it is not anchored yet/,
    );
  });

  it('fails naming the records gone when the tail is cut', async () => {
    const h = await host(12);
    await keepLines(h.log, 9);
    const result = await verify(h);
    expect(result).toMatchObject({
      ok: false,
      records: 9,
      lastSeq: 9,
      checkpoints: { status: 'tail-missing' },
    });
    expect(result.firstBroken).toBeUndefined();
    const last = result.checkpoints?.last;
    expect(result.checkpoints?.detail).toBe(
      `records after seq 9 are gone: the last checkpoint (shutdown, time ${last?.time}) anchors seq 12 with hash ${h.hashes[11]}`,
    );
  });

  it('fails on an emptied log and on a deleted one, naming the checkpoints', async () => {
    const emptied = await host(12);
    await writeFile(emptied.log, '');
    const empty = await verify(emptied);
    expect(empty).toMatchObject({ ok: false, records: 0, checkpoints: { status: 'log-missing' } });
    expect(empty.checkpoints?.detail).toMatch(
      /^the log is empty but 3 checkpoints exist: records 1 to 12 are gone \(the last checkpoint \(shutdown, time .*\) anchors seq 12/,
    );

    const deleted = await host(12);
    await rm(deleted.log);
    const missing = await verify(deleted);
    expect(missing).toMatchObject({ ok: false, bytes: 0, checkpoints: { status: 'log-missing' } });
    expect(missing.checkpoints?.detail).toMatch(
      /^the log is missing but 3 checkpoints exist: records 1 to 12 are gone/,
    );
  });

  it('fails on a log replaced by a shorter valid chain', async () => {
    const h = await host(12);
    const forged = otherChain(7);
    await writeFile(h.log, forged);
    const result = await verify(h);
    expect(result).toMatchObject({ ok: false, records: 7, checkpoints: { status: 'log-replaced' } });
    const forgedHash5 = (JSON.parse(forged.split('\n')[4] as string) as AuditRecord).hash;
    expect(result.checkpoints?.detail).toMatch(
      new RegExp(
        `^the record at seq 5 has hash ${forgedHash5} where the checkpoint \\(periodic, time .*\\) says ${h.hashes[4]} \\(the log was replaced\\)`,
      ),
    );
    // Shorter than the first checkpoint: no record to compare, so it is the tail that is gone.
    await writeFile(h.log, otherChain(3));
    expect((await verify(h)).checkpoints).toMatchObject({
      status: 'tail-missing',
      detail: expect.stringMatching(/^records after seq 3 are gone: the last checkpoint .* anchors seq 12/),
    });
  });

  it('reports a forged checkpoint and a malformed line, and keeps to the newest one that verifies', async () => {
    const h = await host(12);
    const forger = createKeyPair();
    const forged = { seq: 40, hash: 'f'.repeat(64), time: new Date().toISOString(), reason: 'periodic' };
    const sig = signAuditMessage(forger.secretKey, checkpointSigningMessage(forged));
    await appendFile(h.checkpoints, `${JSON.stringify({ ...forged, sig })}\n{"seq":41}\n`);
    const result = await verify(h);
    expect(result).toMatchObject({
      ok: false,
      records: 12,
      checkpoints: {
        status: 'bad-checkpoint',
        count: 5,
        verified: 3,
        last: { seq: 12 },
        problemCount: 2,
        problems: [
          {
            line: 4,
            reason: 'bad-signature',
            detail: expect.stringContaining(`signed by key ${forger.publicKey.keyId}`),
          },
          { line: 5, reason: 'malformed' },
        ],
      },
    });

    // A checkpoint of the host key's id with another key's signature does not pass either.
    const h2 = await host(12);
    const hostKeyId = (await verify(h2)).checkpoints?.hostKey.keyId as string;
    const wrong = signAuditMessage(
      { ...forger.secretKey, keyId: hostKeyId },
      checkpointSigningMessage(forged),
    );
    await appendFile(h2.checkpoints, `${JSON.stringify({ ...forged, sig: wrong })}\n`);
    expect((await verify(h2)).checkpoints?.problems).toEqual([
      {
        line: 4,
        reason: 'bad-signature',
        detail: `seq 40: the signature by key ${hostKeyId} does not match`,
      },
    ]);
  });

  it('fails when checkpoints exist but the host public key is gone', async () => {
    const h = await host(6);
    await rm(path.join(h.root, 'keys', 'host.pub'));
    expect((await verify(h)).checkpoints).toMatchObject({
      status: 'no-host-key',
      ok: false,
      detail: `2 checkpoints exist, but the host public key ${path.join(h.root, 'keys', 'host.pub')} is missing, so none can be verified`,
    });
  });

  it('says the log cannot be held to its checkpoint when the chain breaks before it', async () => {
    const h = await host(12);
    const lines = (await readFile(h.log, 'utf8')).split('\n');
    lines[6] = (lines[6] as string).replace('"status":200', '"status":500');
    await writeFile(h.log, lines.join('\n'));
    expect(await verify(h)).toMatchObject({
      ok: false,
      records: 6,
      firstBroken: { seq: 7, reason: 'hash-mismatch' },
      checkpoints: {
        status: 'chain-broken',
        detail: expect.stringMatching(
          /^the chain breaks after seq 6, so the records up to seq 12 cannot be held to their checkpoint: the last checkpoint \(shutdown, .*\) anchors seq 12/,
        ),
      },
    });
  });

  it('still verifies a log from before checkpoints as unanchored, key or not', async () => {
    const old = await host(12, { key: false });
    const result = await verify(old);
    expect(result).toMatchObject({
      ok: true,
      records: 12,
      checkpoints: { status: 'unanchored', ok: true, count: 0, last: null },
    });
    await mkdir(path.join(old.root, 'keys'));
    await generateKeyPair(path.join(old.root, 'keys', 'host'));
    expect(await verify(old)).toMatchObject({ ok: true, checkpoints: { status: 'unanchored' } });
    // With neither a log nor checkpoints, the log is missing as before.
    await rm(old.log);
    const error = await verify(old).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApertusError);
    expect((error as ApertusError).code).toBe('audit-log-missing');
  });

  it('remembers checkpointed hashes across slices of a large log', async () => {
    // Past the first 8 MiB slice; checkpoints signed here with the host key, as the service would.
    const root = path.join(base, 'large');
    const paths = ragDataPaths(root);
    const pair = await generateKeyPair(path.join(root, 'keys', 'host'));
    const { parseSecretKey } = await import('../../src/core/sign/keys.js');
    const secret = parseSecretKey(await readFile(pair.secretKeyPath, 'utf8'));
    const text = otherChain(40_000);
    expect(text.length).toBeGreaterThan(8 * 1024 * 1024);
    await mkdir(path.dirname(paths.auditLog), { recursive: true });
    await writeFile(paths.auditLog, text);
    const lines = text.split('\n');
    const checkpoint = (seq: number, hash: string) => {
      const fields = { seq, hash, time: new Date().toISOString(), reason: 'periodic' };
      return `${JSON.stringify({ ...fields, sig: signAuditMessage(secret, checkpointSigningMessage(fields)) })}\n`;
    };
    const hashOf = (seq: number) => (JSON.parse(lines[seq - 1] as string) as AuditRecord).hash;
    await writeFile(
      paths.auditCheckpoints,
      checkpoint(100, hashOf(100)) + checkpoint(39_000, hashOf(39_000)),
    );
    const ok = await auditVerify({ target: { kind: 'local' }, root });
    expect(ok).toMatchObject({
      ok: true,
      records: 40_000,
      checkpoints: { status: 'ok', last: { seq: 39_000 } },
    });
    await writeFile(paths.auditCheckpoints, checkpoint(39_000, 'e'.repeat(64)), { flag: 'a' });
    const replaced = await auditVerify({ target: { kind: 'local' }, root });
    expect(replaced.checkpoints).toMatchObject({
      status: 'log-replaced',
      detail: expect.stringContaining(
        `the record at seq 39000 has hash ${hashOf(39_000)} where the checkpoint`,
      ),
    });
  });
});

describe('apertus audit verify: checkpoints in the output', () => {
  it('prints what is missing and exits failed; --json carries the checkpoints as data', async () => {
    const h = await host(12);
    await keepLines(h.log, 9);
    const text = await runCli(['audit', 'verify', '--local', '--root', h.root]);
    expect(text.exitCode).toBe(1);
    expect(text.stdout).toContain(`FAILED (checkpoints: tail-missing): ${h.log} on local`);
    expect(text.stdout).toContain('the chain verifies from seq 1 to 9 (9 records), but:');
    expect(text.stdout).toMatch(
      /checkpoints: records after seq 9 are gone: the last checkpoint \(shutdown, time .*\) anchors seq 12/,
    );
    const json = await runCli(['audit', 'verify', '--local', '--root', h.root, '--json']);
    expect(json.exitCode).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({
      ok: false,
      records: 9,
      checkpoints: {
        status: 'tail-missing',
        count: 3,
        last: { seq: 12, hash: h.hashes[11], reason: 'shutdown' },
        path: h.checkpoints,
      },
    });
  });

  it('prints ok with the anchor, and leaves the install log to its own anchor', async () => {
    const h = await host(12);
    const text = await runCli(['audit', 'verify', '--local', '--root', h.root]);
    expect(text.exitCode).toBe(0);
    expect(text.stdout).toMatch(
      /^ok: 12 records, chain intact from seq 1 to 12 .*\n {2}checkpoints: the last checkpoint \(shutdown, .*\) anchors seq 12 .*, and the log holds it\n$/,
    );
    await writeFile(path.join(h.root, 'audit.log'), otherChain(2));
    const installs = await runCli(['audit', 'verify', '--local', '--root', h.root, '--installs', '--json']);
    expect(installs.exitCode).toBe(0);
    expect(JSON.parse(installs.stdout).checkpoints).toBeUndefined();
  });
});
