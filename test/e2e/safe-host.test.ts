/**
 * The host side attacked as issue 9 found it, on a real air-gapped host (sshd in a network
 * namespace with no route out) with real bundles: crafted metadata, missing or foreign
 * signatures, hostile install roots, a log that lost its tail, and a report that cannot
 * be written. Each refusal leaves the host as it was; each success is recorded and signed.
 * Last, login users that are not root install through sudo (become), with and without a
 * password, and the password is nowhere to be found afterwards.
 */
import { randomBytes } from 'node:crypto';
import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDemoHost, createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { httpRequest } from '../../src/core/host/http-over-transport.js';
import type { HostStatus } from '../../src/core/operations/status.js';
import { hostLayout } from '../../src/core/target/layout.js';
import { stopCurrentRelease } from '../../src/core/target/releases.js';
import { apertusBin as apertus, parseJson as json } from '../helpers/apertus-bin.js';
import { sshE2eRequirement } from '../helpers/demo-host.js';
import { resignBundle, tamperBundle } from '../helpers/tamper-bundle.js';

const requirement = sshE2eRequirement();

interface ErrorOutput {
  ok: false;
  error: { code: string; message: string; hint: string | null; details: unknown };
}

async function snapshot(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.map((e) => path.join(e.parentPath, e.name)).sort();
}

describe.skipIf(!requirement.ok)(`the host side under attack ${requirement.why}`, () => {
  let work: string;
  let host: DemoHost;
  let releaseKey: { secret: string; public: string; id: string };
  let otherKey: { secret: string; public: string; id: string };
  let signed: string;
  let unsigned: string;

  const at = (root: string) => [
    '--host',
    host.address as string,
    '-i',
    host.identityFile as string,
    '--known-hosts',
    host.knownHostsFile as string,
    '--root',
    root,
  ];
  const rootOf = (name: string) => path.join(work, 'roots', name);

  async function keyPair(name: string) {
    const made = await apertus(['keys', 'generate', '-o', path.join(work, name), '--json']);
    expect(made.exitCode, made.stderr).toBe(0);
    const pair = json<{ secretKeyPath: string; publicKeyPath: string; keyId: string }>(made.stdout);
    return { secret: pair.secretKeyPath, public: pair.publicKeyPath, id: pair.keyId };
  }

  async function bundleDemo(out: string, sign?: string): Promise<string> {
    const args = ['bundle', 'bundles/demo', '-o', path.join(work, out), '--no-cli', '--json'];
    const bundled = await apertus(sign ? [...args, '--sign', sign] : args);
    expect(bundled.exitCode, bundled.stderr).toBe(0);
    return json<{ path: string }>(bundled.stdout).path;
  }

  /** Stops what a test left serving on a root, so the next root's services get their ports. */
  async function stopServing(root: string): Promise<void> {
    const transport = await connectDemoHost(host);
    try {
      await stopCurrentRelease(transport, hostLayout(root));
    } finally {
      await transport.close();
    }
  }

  async function health(port: number): Promise<number> {
    const transport = await connectDemoHost(host);
    try {
      return (await httpRequest(transport, { port, path: '/health', timeoutMs: 10_000 })).status;
    } finally {
      await transport.close();
    }
  }

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-safe-host-'));
    await mkdir(path.join(work, 'roots'), { mode: 0o755 });
    await chmod(work, 0o755);
    host = await createDemoHost({ workDir: path.join(work, 'host'), mode: 'netns' });
    releaseKey = await keyPair('release');
    otherKey = await keyPair('other');
    signed = await bundleDemo('signed', releaseKey.secret);
    unsigned = await bundleDemo('unsigned');
  });

  afterAll(async () => {
    await host?.teardown();
    if (work) await rm(work, { recursive: true, force: true });
  });

  describe('bundle metadata is validated before anything on the host changes', () => {
    it('refuses a re-signed bundle named ".." at version "../victim", and one at version ".", naming the field', async () => {
      const victim = path.join(work, 'victim');
      await mkdir(victim);
      await writeFile(path.join(victim, 'keep'), 'keep me');
      const root = rootOf('metadata');
      await mkdir(root, { recursive: true });
      const before = await snapshot(root);
      for (const [name, version, field] of [
        ['..', '../victim', 'name'],
        ['demo', '.', 'version'],
      ] as const) {
        const crafted = await tamperBundle(
          signed,
          path.join(work, `crafted-${field}`),
          (config) => {
            config.name = name;
            config.version = version;
          },
          releaseKey.secret,
        );
        // The signature is sound: only the content is hostile.
        const verified = await apertus(['verify', crafted, '--key', releaseKey.public, '--json']);
        expect(verified.exitCode).toBe(1);
        const refused = await apertus([
          'install',
          crafted,
          ...at(root),
          '--trust-key',
          releaseKey.public,
          '--json',
        ]);
        expect(refused.exitCode, refused.stdout).toBe(1);
        const error = json<ErrorOutput>(refused.stdout).error;
        expect(error.code).toBe('bundle-invalid');
        expect(error.message).toMatch(new RegExp(`\\b${field}\\b`));
      }
      expect(await readFile(path.join(victim, 'keep'), 'utf8')).toBe('keep me');
      expect(await snapshot(root)).toEqual(before);
    });

    it('refuses a service named $(touch …) at load: no service stopped, no command run, the host keeps serving', async () => {
      const root = rootOf('service-name');
      const first = await apertus([
        'install',
        signed,
        ...at(root),
        '--trust-key',
        releaseKey.public,
        '--json',
      ]);
      expect(first.exitCode, first.stdout).toBe(0);
      const marker = path.join(work, 'touched');
      const crafted = await tamperBundle(
        signed,
        path.join(work, 'crafted-service'),
        (config) => {
          config.version = '0.1.1';
          const service = config.services[0];
          if (service) service.name = `$(touch ${marker})`;
        },
        releaseKey.secret,
      );
      const refused = await apertus(['install', crafted, ...at(root), '--json']);
      expect(refused.exitCode, refused.stdout).toBe(1);
      const error = json<ErrorOutput>(refused.stdout).error;
      expect(error.code).toBe('bundle-invalid');
      expect(error.message).toContain('services.0.name');
      await expect(readFile(marker)).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await readlink(path.join(root, 'current'))).toBe('releases/demo/0.1.0');
      expect(await health(18080)).toBe(200);
      await stopServing(root);
    });
  });

  describe('the host decides which signing keys it trusts', () => {
    it('refuses the first install into an empty root without --trust-key or --allow-unsigned, sending nothing', async () => {
      const root = rootOf('no-anchor');
      const refused = await apertus(['install', signed, ...at(root), '--json']);
      expect(refused.exitCode).toBe(2);
      const error = json<ErrorOutput>(refused.stdout).error;
      expect(error.code).toBe('trust-anchor-missing');
      expect(error.hint).toContain('--trust-key');
      expect(error.hint).toContain(releaseKey.id);
      expect(await snapshot(root)).toEqual([]);

      const wrongKey = await apertus([
        'install',
        signed,
        ...at(root),
        '--trust-key',
        otherKey.public,
        '--json',
      ]);
      expect(wrongKey.exitCode).toBe(1);
      expect(json<ErrorOutput>(wrongKey.stdout).error).toMatchObject({
        code: 'bundle-not-trusted',
        message: expect.stringContaining(`signed by key ${releaseKey.id}`),
      });
      expect(await snapshot(root)).toEqual([]);
    });

    it('installs a bundle signed by the trusted key and names the signer in the report, state.json, status and the audit record', async () => {
      const root = rootOf('trusted');
      const installed = await apertus([
        'install',
        signed,
        ...at(root),
        '--trust-key',
        releaseKey.public,
        '--json',
      ]);
      expect(installed.exitCode, installed.stdout).toBe(0);
      const report = json<{
        signer: { keyId: string; trustedComment: string };
        trust: unknown;
        path: string;
      }>(installed.stdout);
      expect(report.signer).toEqual({
        keyId: releaseKey.id,
        trustedComment: expect.stringContaining('bundle:demo:0.1.0'),
      });
      expect(report.trust).toEqual({ mode: 'keys', added: releaseKey.id, trusted: [releaseKey.id] });
      expect(await readdir(path.join(root, 'trust'))).toEqual([`${releaseKey.id}.pub`]);
      const state = JSON.parse(await readFile(path.join(root, 'state.json'), 'utf8'));
      expect(state.current).toMatchObject({ verified: true, signer: report.signer, report: report.path });
      const status = json<HostStatus>((await apertus(['status', ...at(root), '--json'])).stdout);
      expect(status).toMatchObject({
        ok: true,
        current: { signer: report.signer },
        trust: { mode: 'keys', keys: [releaseKey.id] },
      });
      const records = (await readFile(path.join(root, 'audit.log'), 'utf8'))
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as { method: string; documents: string[]; sig: string });
      expect(records.map((r) => r.method)).toEqual(['TRUST-ADD', 'INSTALL']);
      expect(records[1]?.documents[2]).toBe(`signer:${releaseKey.id} ${report.signer.trustedComment}`);
      expect(records.every((r) => /^[0-9A-F]{16}:/.test(r.sig))).toBe(true);

      // From now on the trust store decides: unsigned, garbage and foreign signatures are refused,
      // and so is --allow-unsigned; nothing is sent for any of them.
      const garbage = await tamperBundle(signed, path.join(work, 'garbage-sig'), () => {});
      await resignBundle(garbage, 'garbage');
      const foreign = await tamperBundle(signed, path.join(work, 'foreign-sig'), () => {}, otherKey.secret);
      const blobs = await snapshot(path.join(root, 'blobs'));
      for (const [bundle, reason] of [
        [unsigned, 'the bundle is not signed'],
        [garbage, 'signed by key (unreadable)'],
        [foreign, `signed by key ${otherKey.id}, which is not among the trusted keys ${releaseKey.id}`],
      ] as const) {
        const refused = await apertus(['install', bundle, ...at(root), '--json']);
        expect(refused.exitCode, bundle).toBe(1);
        expect(json<ErrorOutput>(refused.stdout).error).toMatchObject({
          code: 'bundle-not-trusted',
          message: expect.stringContaining(reason),
        });
      }
      const lab = await apertus(['install', unsigned, ...at(root), '--allow-unsigned', '--json']);
      expect(lab.exitCode).toBe(2);
      expect(json<ErrorOutput>(lab.stdout).error.code).toBe('trust-unsigned-refused');
      const another = await apertus([
        'install',
        signed,
        ...at(root),
        '--trust-key',
        otherKey.public,
        '--json',
      ]);
      expect(json<ErrorOutput>(another.stdout).error).toMatchObject({
        code: 'trust-key-not-trusted',
        hint: expect.stringContaining('apertus trust add'),
      });
      expect(await snapshot(path.join(root, 'blobs'))).toEqual(blobs);
      expect(await readlink(path.join(root, 'current'))).toBe('releases/demo/0.1.0');
    });

    it('rotates keys: trust add, install with the new key, trust remove the old one; the last key stays', async () => {
      const root = rootOf('trusted');
      const added = await apertus(['trust', 'add', otherKey.public, ...at(root), '--json']);
      expect(added.exitCode, added.stdout).toBe(0);
      expect(json(added.stdout)).toMatchObject({
        action: 'add',
        changed: true,
        keys: [releaseKey.id, otherKey.id].sort(),
      });
      const again = await apertus(['trust', 'add', otherKey.public, ...at(root), '--json']);
      expect(json(again.stdout)).toMatchObject({ changed: false });

      const foreign = await tamperBundle(
        signed,
        path.join(work, 'rotated'),
        (c) => {
          c.version = '0.1.1';
        },
        otherKey.secret,
      );
      const installed = await apertus(['install', foreign, ...at(root), '--json']);
      expect(installed.exitCode, installed.stdout).toBe(0);
      expect(json<{ signer: { keyId: string } }>(installed.stdout).signer.keyId).toBe(otherKey.id);

      const removed = await apertus(['trust', 'remove', releaseKey.id, ...at(root), '--json']);
      expect(removed.exitCode, removed.stdout).toBe(0);
      expect(json(removed.stdout)).toMatchObject({ action: 'remove', changed: true, keys: [otherKey.id] });
      const old = await apertus(['install', signed, ...at(root), '--json']);
      expect(json<ErrorOutput>(old.stdout).error.code).toBe('bundle-not-trusted');
      const last = await apertus(['trust', 'remove', otherKey.id, ...at(root), '--json']);
      expect(last.exitCode).toBe(2);
      expect(json<ErrorOutput>(last.stdout).error.code).toBe('trust-last-key');

      const listed = await apertus(['trust', 'list', ...at(root), '--json']);
      expect(json(listed.stdout)).toMatchObject({ mode: 'keys', keys: [{ keyId: otherKey.id }] });
      const methods = (await readFile(path.join(root, 'audit.log'), 'utf8'))
        .trimEnd()
        .split('\n')
        .map((l) => (JSON.parse(l) as { method: string }).method);
      expect(methods).toEqual(['TRUST-ADD', 'INSTALL', 'TRUST-ADD', 'INSTALL', 'TRUST-REMOVE']);
      const verified = await apertus(['audit', 'verify', '--installs', ...at(root), '--json']);
      expect(json(verified.stdout)).toMatchObject({ ok: true, records: 5, signed: 5, problems: [] });
      await stopServing(root);
    });

    it('installs unsigned with --allow-unsigned on a new root only, recording it and warning in status', async () => {
      const root = rootOf('lab');
      const installed = await apertus(['install', unsigned, ...at(root), '--allow-unsigned', '--json']);
      expect(installed.exitCode, installed.stdout).toBe(0);
      expect(json(installed.stdout)).toMatchObject({
        signer: null,
        trust: { mode: 'unsigned', added: null },
      });
      const state = JSON.parse(await readFile(path.join(root, 'state.json'), 'utf8'));
      expect(state.trust).toMatchObject({ mode: 'unsigned' });
      const record = JSON.parse((await readFile(path.join(root, 'audit.log'), 'utf8')).trimEnd()) as {
        documents: string[];
      };
      expect(record.documents[2]).toBe('signer:none');
      const status = json<HostStatus>((await apertus(['status', ...at(root), '--json'])).stdout);
      expect(status.trust.mode).toBe('unsigned');
      expect(status.warnings[0]).toMatch(/installs unsigned bundles/);
      const text = await apertus(['status', ...at(root)]);
      expect(text.stdout).toMatch(/WARNING\s+this host installs unsigned bundles/);
      // Not without saying so again.
      const again = await apertus(['install', unsigned, ...at(root), '--json']);
      expect(json<ErrorOutput>(again.stdout).error.code).toBe('trust-anchor-missing');
      await stopServing(root);
    });
  });

  describe('a hostile or damaged install root is refused, with the fix', () => {
    it('refuses a world-writable root, and apertus check fails install-root with the same fix', async () => {
      const root = rootOf('open');
      await mkdir(root);
      await chmod(root, 0o777);
      const before = await snapshot(root);
      const refused = await apertus([
        'install',
        signed,
        ...at(root),
        '--trust-key',
        releaseKey.public,
        '--json',
      ]);
      expect(refused.exitCode).toBe(1);
      const error = json<ErrorOutput>(refused.stdout).error;
      expect(error.code).toBe('host-root-unsafe');
      expect(error.message).toContain(`${root} is writable by its group and everyone`);
      expect(error.message).toContain(`fix: chmod go-w ${root}`);
      expect(await snapshot(root)).toEqual(before);
      const check = await apertus(['check', ...at(root), '--json']);
      const results = json<{
        hosts: Array<{ results: Array<{ id: string; status: string; hint?: string }> }>;
      }>(check.stdout).hosts[0]?.results;
      expect(results?.find((r) => r.id === 'install-root')).toMatchObject({
        status: 'fail',
        hint: expect.stringContaining(`chmod go-w ${root}`),
      });
    });

    it('refuses a blob planted by another user under the name of the bundle node binary', async () => {
      const root = rootOf('planted');
      const store = path.join(root, 'blobs', 'sha256');
      await mkdir(store, { recursive: true, mode: 0o755 });
      // Whatever the bundle's largest blob is named (the Node binary), planted with a script.
      const listing = await execa('tar', ['-tvf', signed]);
      const largest = listing.stdout
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .filter((f) => f[5]?.startsWith('blobs/sha256/'))
        .sort((a, b) => Number(b[2]) - Number(a[2]))[0];
      const planted = path.join(store, path.basename(largest?.[5] as string));
      await writeFile(planted, '#!/bin/sh\ntouch /tmp/apertus-pwned\n', { mode: 0o755 });
      await chown(planted, 4242, 4242);
      const refused = await apertus([
        'install',
        signed,
        ...at(root),
        '--trust-key',
        releaseKey.public,
        '--json',
      ]);
      expect(refused.exitCode).toBe(1);
      expect(json<ErrorOutput>(refused.stdout).error).toMatchObject({
        code: 'host-root-unsafe',
        message: expect.stringContaining(`${planted} belongs to uid 4242`),
      });
    });

    it('uploads again, and names, a blob of the store whose content was altered, never linking it', async () => {
      const root = rootOf('corrupt');
      const first = await apertus([
        'install',
        signed,
        ...at(root),
        '--trust-key',
        releaseKey.public,
        '--json',
      ]);
      expect(first.exitCode, first.stdout).toBe(0);
      await stopServing(root);
      // The GGUF model in the store, altered in place (same size, same owner), then a new release.
      const gguf = await readFile('bundles/demo/model/tiny-llama.gguf');
      const { createHash } = await import('node:crypto');
      const digest = createHash('sha256').update(gguf).digest('hex');
      const stored = path.join(root, 'blobs', 'sha256', digest);
      await chmod(stored, 0o644);
      const altered = Buffer.from(gguf);
      altered[1000] = (altered[1000] ?? 0) ^ 0xff;
      await writeFile(stored, altered);
      await chmod(stored, 0o444);
      const next = await tamperBundle(
        signed,
        path.join(work, 'next'),
        (c) => {
          c.version = '0.1.2';
        },
        releaseKey.secret,
      );
      const installed = await apertus(['install', next, ...at(root), '--json']);
      expect(installed.exitCode, installed.stdout).toBe(0);
      const report = json<{
        transfer: { replaced: Array<{ digest: string; reason: string }>; blobsUploaded: number };
      }>(installed.stdout);
      expect(report.transfer.replaced).toEqual([
        { digest: `sha256:${digest}`, reason: expect.stringContaining('its content hashes to') },
      ]);
      const linked = await readFile(path.join(root, 'releases', 'demo', '0.1.2', 'model', 'tiny-llama.gguf'));
      expect(linked.equals(gguf)).toBe(true);
      await stopServing(root);
    });

    it('refuses a state.json.new link and a releases link, writing nothing through either', async () => {
      const root = rootOf('linked');
      await mkdir(root);
      const elsewhere = path.join(work, 'elsewhere');
      await mkdir(elsewhere);
      const precious = path.join(work, 'precious');
      await writeFile(precious, 'root-owned file');
      await symlink(precious, path.join(root, 'state.json.new'));
      await symlink(elsewhere, path.join(root, 'releases'));
      const refused = await apertus([
        'install',
        signed,
        ...at(root),
        '--trust-key',
        releaseKey.public,
        '--json',
      ]);
      expect(refused.exitCode).toBe(1);
      const error = json<ErrorOutput>(refused.stdout).error;
      expect(error.code).toBe('host-root-unsafe');
      expect(error.message).toContain(`${path.join(root, 'state.json.new')} is a link to ${precious}`);
      expect(error.message).toContain(`${path.join(root, 'releases')} is a link to ${elsewhere}`);
      expect(await readFile(precious, 'utf8')).toBe('root-owned file');
      expect(await readdir(elsewhere)).toEqual([]);
    });
  });

  describe('the audit log keeps its tail', () => {
    let root: string;
    let log: string;
    let original: string;

    beforeAll(async () => {
      root = rootOf('audited');
      log = path.join(root, 'audit.log');
      for (const version of ['0.1.0', '0.1.3']) {
        const bundle =
          version === '0.1.0'
            ? signed
            : await tamperBundle(
                signed,
                path.join(work, `audited-${version}`),
                (c) => {
                  c.version = version;
                },
                releaseKey.secret,
              );
        const installed = await apertus([
          'install',
          bundle,
          ...at(root),
          '--trust-key',
          releaseKey.public,
          '--json',
        ]);
        expect(installed.exitCode, installed.stdout).toBe(0);
      }
      original = await readFile(log, 'utf8');
      expect(original.trimEnd().split('\n')).toHaveLength(3);
    });

    afterAll(async () => {
      await writeFile(log, original);
      await stopServing(root);
    });

    it.each([
      [
        'lost its last record',
        (text: string) => `${text.trimEnd().split('\n').slice(0, 2).join('\n')}\n`,
        'Records after seq 2',
      ],
      ['was emptied', () => '', 'is empty'],
      ['was deleted', null, 'is missing'],
    ])(
      'refuses to install onto a log that %s, and audit verify names what is gone',
      async (_what, edit, message) => {
        if (edit === null) await rm(log);
        else await writeFile(log, edit(original));
        try {
          const refused = await apertus(['install', signed, ...at(root), '--json']);
          expect(refused.exitCode, refused.stdout).toBe(1);
          expect(json<ErrorOutput>(refused.stdout).error).toMatchObject({
            code: 'install-audit-truncated',
            message: expect.stringContaining(message),
          });
          const verified = await apertus(['audit', 'verify', '--installs', ...at(root), '--json']);
          expect(verified.exitCode).toBe(1);
          expect(
            json<{ problems: Array<{ kind: string; seq: number }> }>(verified.stdout).problems,
          ).toContainEqual({
            kind: 'records-missing',
            seq: 3,
            detail: expect.any(String),
          });
          const status = json<HostStatus>((await apertus(['status', ...at(root), '--json'])).stdout);
          expect(status.auditProblem).toContain(message);
        } finally {
          await writeFile(log, original);
        }
      },
    );

    it('names an install report edited after its record, and a shorter valid chain put in place of the log', async () => {
      const reports = (await readdir(path.join(root, 'reports'))).sort();
      const report = path.join(root, 'reports', reports[1] as string);
      const text = await readFile(report, 'utf8');
      await writeFile(report, text.replace('"ok": true', '"ok": false'));
      try {
        const verified = await apertus(['audit', 'verify', '--installs', ...at(root), '--json']);
        expect(verified.exitCode).toBe(1);
        expect(json<{ problems: unknown[] }>(verified.stdout).problems).toEqual([
          { kind: 'report-mismatch', seq: 2, detail: expect.stringContaining(report) },
        ]);
      } finally {
        await writeFile(report, text);
      }
      // The first two records alone form a valid chain, but not the one state.json anchors.
      await writeFile(log, `${original.trimEnd().split('\n').slice(0, 2).join('\n')}\n`);
      const verified = await apertus(['audit', 'verify', '--installs', ...at(root), '--json']);
      await writeFile(log, original);
      expect(json<{ ok: boolean; problems: Array<{ kind: string }> }>(verified.stdout)).toMatchObject({
        ok: false,
        problems: [{ kind: 'records-missing' }],
      });
    });

    it.skipIf(!(process.getuid?.() === 0))(
      'records first, then the report: a report that cannot be written leaves the record and state.json',
      async () => {
        const reports = path.join(root, 'reports');
        const immutable = await execa('chattr', ['+i', reports], { reject: false });
        if (immutable.exitCode !== 0) return; // a filesystem without attributes: nothing to show here
        try {
          const installed = await apertus(['install', signed, ...at(root), '--json']);
          expect(installed.exitCode, installed.stdout).toBe(1);
          const error = json<ErrorOutput>(installed.stdout).error;
          expect(error.code).toBe('install-report-unwritten');
          const lines = (await readFile(log, 'utf8')).trimEnd().split('\n');
          const record = JSON.parse(lines.at(-1) as string) as {
            seq: number;
            endpoint: string;
            status: number;
          };
          expect(record).toMatchObject({ seq: 4, endpoint: 'demo@0.1.0', status: 0 });
          const state = JSON.parse(await readFile(path.join(root, 'state.json'), 'utf8'));
          expect(state).toMatchObject({ audit: { seq: 4 }, current: { version: '0.1.0', verified: true } });
        } finally {
          await execa('chattr', ['-i', reports], { reject: false });
        }
        original = await readFile(log, 'utf8');
      },
    );
  });
  describe('a login user that is not root installs through sudo (become)', () => {
    const stamp = process.pid.toString(36);
    const passwordless = `apx-np-${stamp}`;
    const withPassword = `apx-pw-${stamp}`;
    // Long and random, so a grep that finds it found it, and nothing else matches by chance.
    const password = `become-${randomBytes(12).toString('hex')}`;
    const sudoers = (user: string) => `/etc/sudoers.d/${user}`;
    const varRoot = (user: string) => `/var/lib/apertus-e2e-${user}`;

    const as = (user: string, root: string) => [
      '--host',
      `${user}@${(host.address as string).replace(/^[^@]*@/, '')}`,
      '-i',
      host.identityFile as string,
      '--known-hosts',
      host.knownHostsFile as string,
      '--root',
      root,
      '--become',
    ];

    /** Every entry under `dir` with the uid that owns it, the links themselves included. */
    async function owners(dir: string): Promise<Map<string, number>> {
      const found = new Map<string, number>([[dir, (await lstat(dir)).uid]]);
      for (const entry of await snapshot(dir)) found.set(entry, (await lstat(entry)).uid);
      return found;
    }

    beforeAll(async () => {
      await mkdir(path.join(work, 'home'));
      // sshd reads the one authorized_keys file as the user logging in: let them reach and
      // read it (a public key; the private key beside it stays 0600).
      const hostDir = path.dirname(host.identityFile as string);
      for (const dir of [path.dirname(hostDir), hostDir]) await chmod(dir, 0o711);
      await chmod(path.join(hostDir, 'authorized_keys'), 0o644);
      for (const [user, rule] of [
        [passwordless, 'NOPASSWD: ALL'],
        [withPassword, 'ALL'],
      ] as const) {
        await execa('useradd', ['-m', '-d', path.join(work, 'home', user), '-s', '/bin/sh', user]);
        // A password for both: sshd (UsePAM no) refuses a locked account, even for a key. A
        // cheap hash: sudo checks it on every command, and the test's time belongs to the install.
        await execa('chpasswd', ['-c', 'SHA512', '-s', '1000'], { input: `${user}:${password}\n` });
        await writeFile(sudoers(user), `${user} ALL=(ALL:ALL) ${rule}\n`, { mode: 0o440 });
        await execa('visudo', ['-cf', sudoers(user)]);
      }
    });

    afterAll(async () => {
      for (const user of [passwordless, withPassword]) {
        if (await lstat(path.join(varRoot(user), 'current')).catch(() => null))
          await stopServing(varRoot(user));
        await rm(varRoot(user), { recursive: true, force: true });
        await rm(sudoers(user), { force: true });
        await execa('userdel', [user], { reject: false });
      }
    });

    it('with passwordless sudo installs into /var/lib, every file root-owned, the services answering', async () => {
      const root = varRoot(passwordless);
      // Without --become the user cannot even make the root.
      const plain = await apertus(['install', signed, ...as(passwordless, root).slice(0, -1), '--json']);
      expect(plain.exitCode).toBe(1);
      await expect(lstat(root)).rejects.toThrow();

      const installed = await apertus([
        'install',
        signed,
        ...as(passwordless, root),
        '--trust-key',
        releaseKey.public,
        '--json',
      ]);
      expect(installed.exitCode, installed.stdout + installed.stderr).toBe(0);
      const report = json<{ ok: boolean; host: { transport: string; user: string } }>(installed.stdout);
      expect(report.ok).toBe(true);
      expect(report.host.transport).toMatch(new RegExp(`^ssh ${passwordless}@.* with sudo$`));
      expect(report.host.user).toBe('root');
      const notRoot = [...(await owners(root))].filter(([, uid]) => uid !== 0);
      expect(notRoot).toEqual([]);
      expect(await health(18080)).toBe(200);
      expect(await health(18090)).toBe(200);
      const status = await apertus(['status', ...as(passwordless, root), '--json']);
      expect(status.exitCode, status.stdout).toBe(0);
      expect(json<HostStatus>(status.stdout)).toMatchObject({ ok: true, current: { version: '0.1.0' } });
      await stopServing(root);
    });

    it('with a password from APERTUS_BECOME_PASSWORD; refuses none or a wrong one unchanged; the password is nowhere', async () => {
      const root = varRoot(withPassword);
      const install = (env: Record<string, string | undefined>) =>
        apertus(
          ['install', signed, ...as(withPassword, root), '--trust-key', releaseKey.public, '--json'],
          env,
        );

      const none = await install({ APERTUS_BECOME_PASSWORD: undefined });
      expect(none.exitCode).toBe(2);
      expect(json<ErrorOutput>(none.stdout).error).toMatchObject({
        code: 'become-password-required',
        hint: expect.stringContaining('APERTUS_BECOME_PASSWORD'),
      });
      const wrong = await install({ APERTUS_BECOME_PASSWORD: `${password}x` });
      expect(wrong.exitCode).toBe(2);
      expect(json<ErrorOutput>(wrong.stdout).error.code).toBe('become-password-wrong');
      // Refused before anything on the host changed: not even the root was made.
      await expect(lstat(root)).rejects.toThrow();

      // What every process on the machine shows as its command line, sampled through the install.
      const commandLines = new Set<string>();
      let installing = true;
      const sampling = (async () => {
        while (installing) {
          const ps = await execa('ps', ['-eo', 'args'], { reject: false });
          for (const line of ps.stdout.split('\n')) commandLines.add(line);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })();
      const installed = await install({ APERTUS_BECOME_PASSWORD: password }).finally(() => {
        installing = false;
      });
      await sampling;
      expect(installed.exitCode, installed.stdout + installed.stderr).toBe(0);
      expect(json<{ ok: boolean }>(installed.stdout).ok).toBe(true);
      expect([...(await owners(root))].filter(([, uid]) => uid !== 0)).toEqual([]);
      expect(await health(18090)).toBe(200);
      // The sampling saw the install's sudo commands, so it looked at the right moments.
      expect([...commandLines].some((line) => line.includes('sudo -k -S'))).toBe(true);
      expect([...commandLines].filter((line) => line.includes(password))).toEqual([]);
      for (const output of [installed, wrong, none])
        expect(output.stdout + output.stderr).not.toContain(password);
      // Every file: the install root (releases, reports, audit log, service logs), and this
      // test's whole work directory (the host's sshd log, its home directories, the bundles).
      const grep = await execa('grep', ['-rlF', '--binary-files=text', password, root, work], {
        reject: false,
      });
      expect(grep.stdout).toBe('');
      expect(grep.exitCode).toBe(1);
    });
  });
});
