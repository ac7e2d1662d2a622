/**
 * auditVerify reads a log through the transport (local here; SSH runs the same commands)
 * in dd slices: a log over one slice, slices ending mid-line, a live tail, a missing log,
 * and the `apertus audit verify` command over it.
 */
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerAudit } from '../../src/cli/commands/audit.js';
import type { CliIO } from '../../src/cli/io.js';
import { ReportedFailure } from '../../src/cli/reported-failure.js';
import { auditVerify, defaultAuditLogPath } from '../../src/core/audit/audit-verify.js';
import {
  type AuditRecord,
  auditRecordHash,
  canonicalAuditLine,
  GENESIS_PREV,
} from '../../src/core/audit/verify-chain.js';
import { ApertusError } from '../../src/core/errors.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'apertus-audit-verify-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function chainText(count: number): string {
  const out: string[] = [];
  let prev = GENESIS_PREV;
  for (let seq = 1; seq <= count; seq++) {
    const fields: Omit<AuditRecord, 'hash'> = {
      seq,
      time: new Date(Date.UTC(2026, 0, 1) + seq).toISOString(),
      caller: 'load',
      method: 'POST',
      endpoint: '/v1/chat/completions',
      status: 200,
      requestSha256: 'a'.repeat(64),
      responseSha256: 'b'.repeat(64),
      documents: [`document-${seq % 97}`],
      prev,
    };
    const hash = auditRecordHash(fields);
    out.push(`${canonicalAuditLine({ ...fields, hash })}\n`);
    prev = hash;
  }
  return out.join('');
}

async function runAudit(argv: string[]): Promise<{ stdout: string; error: unknown }> {
  const stdout = new PassThrough();
  let out = '';
  stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const io: CliIO = { stdout, stderr: new PassThrough(), isTTY: false, env: { CI: 'true' } };
  const program = new Command('apertus').exitOverride();
  registerAudit(program, io);
  let error: unknown = null;
  await program.parseAsync(argv, { from: 'user' }).catch((e: unknown) => {
    error = e;
  });
  return { stdout: out, error };
}

describe('auditVerify over a transport', () => {
  it('defaults to <root>/data/rag/audit.log', () => {
    expect(defaultAuditLogPath('/srv/apertus')).toBe('/srv/apertus/data/rag/audit.log');
    expect(defaultAuditLogPath()).toBe('/var/lib/apertus/data/rag/audit.log');
  });

  it('verifies a log larger than one slice and names a record broken past the first slice', async () => {
    const file = path.join(dir, 'big.log');
    const text = chainText(40_000);
    expect(text.length).toBeGreaterThan(9 * 1024 * 1024);
    await writeFile(file, text);
    const ok = await auditVerify({ target: { kind: 'local' }, logPath: file });
    expect(ok).toMatchObject({
      ok: true,
      records: 40_000,
      lastSeq: 40_000,
      bytes: text.length,
      host: 'local',
    });

    // One byte of record 30,000 (well into the second slice).
    const lines = text.split('\n');
    lines[29_999] = (lines[29_999] as string).replace('"status":200', '"status":201');
    await writeFile(file, lines.join('\n'));
    const broken = await auditVerify({ target: { kind: 'local' }, logPath: file });
    expect(broken).toMatchObject({
      ok: false,
      records: 29_999,
      firstBroken: { line: 30_000, seq: 30_000, reason: 'hash-mismatch' },
    });
  });

  it('leaves a half-written last record of a live log for the next run', async () => {
    const file = path.join(dir, 'live.log');
    const text = chainText(3);
    await writeFile(file, text);
    await appendFile(file, '{"seq":4,"ti');
    const result = await auditVerify({ target: { kind: 'local' }, logPath: file });
    expect(result).toMatchObject({ ok: true, records: 3, pendingTailBytes: 12 });
  });

  it('says where the log should be when it is missing', async () => {
    const error = await auditVerify({ target: { kind: 'local' }, root: dir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApertusError);
    expect((error as ApertusError).code).toBe('audit-log-missing');
    expect((error as ApertusError).message).toContain(path.join(dir, 'data/rag/audit.log'));
  });
});

describe('apertus audit verify', () => {
  it('prints ok, and JSON with --json', async () => {
    const file = path.join(dir, 'cli.log');
    await writeFile(file, chainText(12));
    const text = await runAudit(['audit', 'verify', '--local', '--log', file]);
    expect(text.error).toBeNull();
    expect(text.stdout).toMatch(/^ok: 12 records, chain intact from seq 1 to 12/);
    const json = await runAudit(['audit', 'verify', '--local', '--log', file, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, records: 12, logPath: file, host: 'local' });
  });

  it('fails naming the first broken record after one byte is edited', async () => {
    const file = path.join(dir, 'cli-broken.log');
    await writeFile(file, chainText(12));
    const original = await readFile(file, 'utf8');
    const at = original.split('\n').slice(0, 6).join('\n').length + 40; // inside line 7
    await writeFile(file, `${original.slice(0, at)}X${original.slice(at + 1)}`);
    const text = await runAudit(['audit', 'verify', '--local', '--log', file]);
    expect(text.error).toBeInstanceOf(ReportedFailure);
    expect(text.stdout).toContain('first broken record: line 7, seq 7');
    const json = await runAudit(['audit', 'verify', '--local', '--log', file, '--json']);
    expect(json.error).toBeInstanceOf(ReportedFailure);
    expect(JSON.parse(json.stdout)).toMatchObject({
      ok: false,
      records: 6,
      firstBroken: { line: 7, seq: 7 },
    });
  });
});
