/**
 * state.json and the audit log's anchors, on real files through the local transport:
 * state is written as a new file and renamed (never through a planted link), old state
 * files still read, hostile ones are refused; a log that lost records, was emptied,
 * deleted or replaced is caught against state.json and the reports on disk.
 */
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GENESIS_PREV } from '../../src/core/audit/verify-chain.js';
import { createLocalTransport } from '../../src/core/host/local-transport.js';
import { createKeyPair } from '../../src/core/sign/keys.js';
import {
  type AuditTail,
  appendRecordScript,
  buildAuditRecord,
  verifiedAuditTail,
} from '../../src/core/target/audit-log.js';
import { hostLayout } from '../../src/core/target/layout.js';
import { runProbe } from '../../src/core/target/probe.js';
import {
  EMPTY_STATE,
  type HostState,
  parseHostState,
  writeHostStateScript,
} from '../../src/core/target/state.js';

const transport = createLocalTransport();
const key = createKeyPair();

describe('state.json', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'apertus-state-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('is replaced by rename: a link planted where the new file is written is never followed', async () => {
    const layout = hostLayout(path.join(work, 'root'));
    await mkdir(layout.root);
    const precious = path.join(work, 'precious');
    await writeFile(precious, 'root-owned');
    // The name an older apertus wrote through, and the final name itself, both links.
    await symlink(precious, `${layout.state}.new`);
    await symlink(precious, layout.state);
    const state: HostState = { ...EMPTY_STATE, previous: 'releases/demo/0.1.0', updatedAt: 'now' };
    await transport.exec(writeHostStateScript(layout, state));
    expect(await readFile(precious, 'utf8')).toBe('root-owned');
    expect(parseHostState(await readFile(layout.state, 'utf8'), 'state.json')).toEqual(state);
  });

  it('reads a state file written before anchors, trust and verification existed', () => {
    const old = JSON.stringify({
      current: {
        name: 'demo',
        version: '0.1.0',
        manifestDigest: `sha256:${'a'.repeat(64)}`,
        release: 'releases/demo/0.1.0',
        report: '/var/lib/apertus/reports/install-20261101T000000Z-demo-0.1.0.json',
      },
      previous: null,
      updatedAt: '2026-11-01T00:00:00.000Z',
    });
    expect(parseHostState(old, 'state.json')).toMatchObject({
      current: { verified: true, signer: null },
      audit: null,
      pending: null,
      trust: null,
    });
  });

  it.each([
    ['a previous release outside releases/', { ...EMPTY_STATE, previous: '../../etc' }, 'previous'],
    ['a current release of ".."', { ...EMPTY_STATE, current: { release: 'releases/demo/..' } }, 'current'],
    ['text that is not JSON', 'not json', 'its form'],
  ])('refuses %s, naming the field', (_what, value, field) => {
    expect(() =>
      parseHostState(typeof value === 'string' ? value : JSON.stringify(value), 'state.json'),
    ).toThrow(
      expect.objectContaining({ code: 'host-state-invalid', message: expect.stringContaining(field) }),
    );
  });
});

describe('the audit log against its anchors', () => {
  let work: string;
  let layout: ReturnType<typeof hostLayout>;
  let anchored: HostState;
  let lines: string[];

  async function tail(state: HostState): Promise<AuditTail> {
    const { probe } = await runProbe(transport, { root: layout.root, system: false });
    return verifiedAuditTail(transport, layout, probe, state, key.publicKey);
  }

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'apertus-audit-anchor-'));
    layout = hostLayout(path.join(work, 'root'));
    await mkdir(layout.reports, { recursive: true });
    let at: AuditTail = { seq: 0, hash: GENESIS_PREV };
    lines = [];
    for (let i = 1; i <= 3; i++) {
      const reportPath = layout.report(i, 'install', new Date(Date.UTC(2026, 11, 2, 0, 0, i)));
      const reportText = `{"n":${i}}\n`;
      await writeFile(reportPath, reportText);
      const { record, line } = buildAuditRecord(
        at,
        {
          method: 'INSTALL',
          endpoint: `demo@0.${i}.0`,
          ok: true,
          subjectSha256: 'b'.repeat(64),
          reportPath,
          reportText,
          current: `releases/demo/0.${i}.0`,
        },
        key.secretKey,
      );
      await transport.exec(appendRecordScript(layout, line));
      lines.push(line);
      at = { seq: record.seq, hash: record.hash };
    }
    anchored = { ...EMPTY_STATE, audit: at };
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('chains onto a log that reaches its anchor', async () => {
    expect(await tail(anchored)).toEqual(anchored.audit);
  });

  it.each([
    ['lost its last record', () => `${lines.slice(0, 2).join('\n')}\n`, 'Records after seq 2'],
    ['was emptied', () => '', 'is empty, but state.json anchors record 3'],
    ['was deleted', null, 'is missing, but state.json anchors record 3'],
  ])('refuses a log that %s', async (_what, text, message) => {
    if (text === null) await rm(layout.auditLog);
    else await writeFile(layout.auditLog, text());
    try {
      await expect(tail(anchored)).rejects.toMatchObject({
        code: 'install-audit-truncated',
        message: expect.stringContaining(message),
      });
      // With state.json gone too, the reports on disk still tell.
      await expect(tail(EMPTY_STATE)).rejects.toMatchObject({
        code: 'install-audit-truncated',
        message: expect.stringContaining('reports/ holds the report of'),
      });
    } finally {
      await writeFile(layout.auditLog, `${lines.join('\n')}\n`);
    }
  });

  it('refuses a log replaced by another valid chain of the same length', async () => {
    const other: string[] = [];
    let at: AuditTail = { seq: 0, hash: GENESIS_PREV };
    for (let i = 1; i <= 3; i++) {
      const { record, line } = buildAuditRecord(
        at,
        {
          method: 'INSTALL',
          endpoint: `forged@${i}`,
          ok: true,
          subjectSha256: 'c'.repeat(64),
          reportPath: '',
          reportText: '',
          current: null,
        },
        key.secretKey,
      );
      other.push(line);
      at = { seq: record.seq, hash: record.hash };
    }
    await writeFile(layout.auditLog, `${other.join('\n')}\n`);
    try {
      await expect(tail(anchored)).rejects.toMatchObject({
        message: expect.stringContaining('the log was replaced'),
      });
    } finally {
      await writeFile(layout.auditLog, `${lines.join('\n')}\n`);
    }
  });

  it('refuses a last record signed by another key', async () => {
    const stranger = createKeyPair();
    const { probe } = await runProbe(transport, { root: layout.root, system: false });
    await expect(
      verifiedAuditTail(transport, layout, probe, anchored, stranger.publicKey),
    ).rejects.toMatchObject({
      code: 'install-audit-damaged',
      message: expect.stringContaining('not signed by this host'),
    });
  });
});
