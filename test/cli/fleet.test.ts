/**
 * `install --inventory` on the command line, in-process: every bad flag is exit 2 with a
 * hint before the bundle is read, and a fleet whose hosts cannot be reached ends as one
 * JSON report (the canary failed, the rest not started), not a crash. Real parts: a real
 * bundle tar, a real SSH key, real TCP connections refused by a closed port.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBundle } from '../../src/core/bundle/write-bundle.js';
import type { FleetInstallReport } from '../../src/core/operations/fleet-install.js';
import { generateTinyModel } from '../../src/core/tiny-model/generate.js';
import { makeBundleFixture } from '../helpers/bundle-fixture.js';
import { closedPort } from '../helpers/closed-port.js';
import { type CliRun, runCli, stripAnsi } from '../helpers/run-cli.js';

let work: string;
let bundlePath: string;
let inventory: string;
let closed: number;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'apertus-fleet-cli-'));
  // The fixture bundle, its chat service serving the generated tiny GGUF model: the run
  // prepares the bundle (a check subject with a real model) before it reaches any host.
  const plan = await makeBundleFixture(path.join(work, 'fixture'));
  const gguf = path.join(work, 'tiny.gguf');
  await writeFile(gguf, generateTinyModel());
  plan.components[0]?.layers.push({ type: 'file', source: gguf, title: 'tiny.gguf' });
  const service = plan.services[0] as { model: { path: string } };
  service.model.path = 'tiny.gguf';
  bundlePath = (await writeBundle(plan, { outDir: path.join(work, 'out') })).path;
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(work, 'id_ed25519')]);
  closed = await closedPort();
  await writeFile(path.join(work, 'known_hosts'), '');
  inventory = path.join(work, 'hosts.yaml');
  await writeFile(
    inventory,
    [
      'apiVersion: apertus.dev/v1',
      'kind: Inventory',
      `defaults: { knownHosts: known_hosts, identity: id_ed25519, port: ${closed} }`,
      'groups:',
      '  rack-a: [gpu-01, gpu-02]',
      'hosts:',
      '  - { name: gpu-01, address: 127.0.0.1 }',
      '  - { name: gpu-02, address: 127.0.0.1, root: /srv/two }',
      '  - { name: gpu-03, address: 127.0.0.1, root: /srv/three }',
    ].join('\n'),
  );
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

function expectUsage(run: CliRun, message: RegExp): void {
  expect(run.exitCode, run.stderr).toBe(2);
  const [first, second] = run.stderr.split('\n');
  expect(first).toMatch(message);
  expect(second).toMatch(/^hint: \S/);
  expect(run.stdout).toBe('');
}

describe('apertus install --inventory', () => {
  it('refuses bad fleet flags with exit 2 and a hint, before the bundle is read', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--serial', '0'], /--serial "0": "0" is neither a count/],
      [['--serial', '1,150%'], /150% is not within 1%-100%/],
      [['--max-fail', '120%'], /--max-fail "120%" is not a percentage/],
      [['--max-fail', 'some'], /--max-fail "some"/],
      [['--forks', '0'], /--forks 0 is not a positive whole number/],
      [['--host', 'root@10.0.0.5'], /--inventory and --host exclude each other/],
      [['--local'], /--inventory and --local exclude each other/],
      [['--root', '/srv/x'], /--root cannot be combined with --inventory/],
      [['--limit', 'gpu-9'], /"gpu-9" matches no host or group/],
    ];
    for (const [flags, message] of cases) {
      const run = await runCli(['install', bundlePath, '--inventory', inventory, ...flags]);
      expectUsage(run, message);
    }
  });

  it('refuses fleet flags without an inventory, and --limit without one', async () => {
    expectUsage(
      await runCli(['install', bundlePath, '--host', 'root@10.0.0.5', '--serial', '2']),
      /--serial batch the hosts of an inventory/,
    );
    expectUsage(
      await runCli(['install', bundlePath, '--host', 'root@10.0.0.5', '--max-fail', '10%']),
      /--max-fail batch the hosts/,
    );
    expectUsage(
      await runCli(['install', bundlePath, '--host', 'root@10.0.0.5', '--limit', 'gpu-01']),
      /--limit selects hosts of an inventory/,
    );
  });

  it('names the inventory file and line of a bad host, with exit 2', async () => {
    const bad = path.join(work, 'bad.yaml');
    await writeFile(
      bad,
      'apiVersion: apertus.dev/v1\nkind: Inventory\nhosts:\n  - { name: a, address: 10.0.0.1, port: 0 }\n',
    );
    const run = await runCli(['install', bundlePath, '--inventory', bad]);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain(`${bad}:4:`);
    expect(run.stderr).toContain('hosts[0].port');
  });

  it('an unreachable canary is a failed result; no later batch starts; one JSON report, exit 1', async () => {
    const run = await runCli(['install', bundlePath, '--inventory', inventory, '--allow-unsigned', '--json']);
    expect(run.exitCode, run.stderr).toBe(1);
    const report = JSON.parse(run.stdout) as FleetInstallReport;
    expect(report.hosts, run.stdout).toBeDefined();
    expect(report.ok).toBe(false);
    expect(report.batches).toEqual([
      { batch: 1, hosts: ['gpu-01'], status: 'failed' },
      { batch: 2, hosts: ['gpu-02', 'gpu-03'], status: 'not-started' },
    ]);
    expect(report.hosts.map((h) => [h.host, h.status, h.batch])).toEqual([
      ['gpu-01', 'failed', 1],
      ['gpu-02', 'not-started', null],
      ['gpu-03', 'not-started', null],
    ]);
    expect(report.hosts[0]?.address).toBe(`root@127.0.0.1:${closed}`);
    expect(report.hosts[0]?.error?.code).toBe('host-connection-refused');
    expect(report.hosts[0]?.rollback).toBeNull();
    expect(report.summary).toEqual({
      hosts: 3,
      ok: 0,
      failed: 1,
      notStarted: 2,
      rolledBack: 0,
      stoppedBy: 'max-fail',
    });
  });

  it('with --max-fail 100% every batch starts; --limit picks a group; plain lines per host off a TTY', async () => {
    const run = await runCli([
      'install',
      bundlePath,
      '--inventory',
      inventory,
      '--allow-unsigned',
      '--max-fail',
      '100%',
      '--serial',
      '1',
      '--limit',
      'rack-a',
    ]);
    expect(run.exitCode).toBe(1);
    expect(run.stdout).toMatch(/^gpu-01 +1 +FAILED/m);
    expect(run.stdout).toMatch(/^gpu-02 +2 +FAILED/m);
    expect(run.stdout).not.toContain('gpu-03');
    expect(run.stdout).toContain('2 hosts: 0 ok, 2 failed (0 rolled back), 0 not started');
    expect(run.stderr).toMatch(/^bundle {2}verify-bundle ok/m);
    expect(run.stderr).toMatch(/^gpu-01 {2}started \(batch 1\)$/m);
    expect(run.stderr).toMatch(/^gpu-02 {2}host FAILED: host-connection-refused$/m);
  });

  it('status, rollback and rag ingest take --inventory and --limit: a result per host, exit 1 when one fails', async () => {
    const note = path.join(work, 'note.md');
    await writeFile(note, '# Note\n\nA document for every host.\n');
    for (const command of [['status'], ['rollback'], ['rag', 'ingest', note]]) {
      const run = await runCli([...command, '--inventory', inventory, '--limit', 'gpu-0*,!gpu-02', '--json']);
      expect(run.exitCode, run.stderr).toBe(1);
      const report = JSON.parse(run.stdout) as {
        ok: boolean;
        hosts: Array<{ host: string; address: string; ok: boolean; error: { code: string } | null }>;
        summary: unknown;
      };
      expect(report.ok).toBe(false);
      expect(report.hosts.map((h) => [h.host, h.ok, h.error?.code])).toEqual([
        ['gpu-01', false, 'host-connection-refused'],
        ['gpu-03', false, 'host-connection-refused'],
      ]);
      expect(report.summary).toEqual({ hosts: 2, ok: 0, failed: 2 });
    }
    const plain = await runCli(['status', '--inventory', inventory, '--limit', 'gpu-01']);
    expect(plain.stdout).toContain(
      `== gpu-01 (root@127.0.0.1:${closed}): FAILED\nerror[host-connection-refused]`,
    );
    expect(plain.stdout).toMatch(/1 hosts: 0 ok, 1 failed\n$/);
  });

  it('on a terminal, draws a live view: a row per host with its result, and a summary line', async () => {
    const run = await runCli(['install', bundlePath, '--inventory', inventory, '--allow-unsigned'], {
      tty: true,
    });
    expect(run.exitCode).toBe(1);
    const screen = stripAnsi(run.stderr);
    expect(screen).toContain('bundle verified once');
    expect(screen).toMatch(/gpu-01 .*failed host-connection-refused/);
    expect(screen).toMatch(/gpu-03 .*waiting/);
    expect(screen).toContain('3 hosts: 0 ok, 1 failed, 0 running, 2 waiting');
    expect(run.stdout).toContain('3 hosts: 0 ok, 1 failed (0 rolled back), 2 not started');
  });
});
