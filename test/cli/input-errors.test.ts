/**
 * Bad input on the command line: each is exit 2 with a message and a hint, never a stack
 * trace, and nothing is read, fetched or written before it is refused.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPort } from '../helpers/closed-port.js';
import { writeHfRecipe } from '../helpers/hf-recipe.js';
import { type CliRun, runCli } from '../helpers/run-cli.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'apertus-input-errors-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Exit 2, the message and hint on stderr, no stack trace and no step drawn. */
function expectUsageError(run: CliRun, message: RegExp | string): void {
  expect(run.exitCode, run.stderr).toBe(2);
  const [first, second] = run.stderr.split('\n');
  expect(first).toMatch(/^error\[[a-z-]+\]: /);
  expect(first).toMatch(message);
  expect(second).toMatch(/^hint: \S/);
  expect(run.stderr).not.toMatch(/error\[internal\]|\n\s+at |ENOENT|ENOTDIR/);
  expect(run.stdout).toBe('');
}

/** The same with --json: one JSON error on stdout, with its code and hint. */
function expectJsonError(run: CliRun, code: string): void {
  expect(run.exitCode, run.stdout).toBe(2);
  expect(JSON.parse(run.stdout)).toMatchObject({ ok: false, error: { code, hint: expect.any(String) } });
}

describe('--root on every host command', () => {
  const commands = [
    ['status', '--local'],
    ['rollback', '--local'],
    ['uninstall', '--local'],
    ['prune', '--local'],
    ['audit', 'verify', '--local'],
    ['check', '--local'],
  ];
  const bad: [string, RegExp][] = [
    ['relative/root', /--root "relative\/root" is relative/],
    ['/', /--root "\/" is the host's \/ itself/],
    ['/srv/apertus/../etc', /contains '\.\.'/],
    ['/srv//apertus/', /is not in normal form/],
    ['/srv/apertus\nrm', /contains a control character/],
  ];

  it('is refused unless absolute, normal and not /, naming the flag', async () => {
    const cwd = process.cwd();
    for (const argv of commands) {
      for (const [root, message] of bad) {
        const run = await runCli([...argv, '--root', root]);
        expectUsageError(run, message);
        expect(run.stderr).toContain('hint: Pass --root an absolute path on the host');
      }
    }
    // The relative root was never made relative to anything.
    expect(existsSync(path.join(cwd, 'relative'))).toBe(false);
  });

  it('is refused for install before the bundle is opened, and with --json', async () => {
    const bundle = path.join(work, 'some.tar');
    await writeFile(bundle, 'not looked at');
    const run = await runCli(['install', bundle, '--local', '--root', 'rel', '--json']);
    expectJsonError(run, 'usage');
    expect(JSON.parse(run.stdout).error.message).toContain('--root');
    const normal = await runCli(['install', bundle, '--local', '--root', '/srv/apertus/']);
    expectUsageError(normal, /--root "\/srv\/apertus\/" is not in normal form/);
    expect(normal.stderr).toContain('e.g. --root /srv/apertus');
  });
});

describe('uninstall and prune flags', () => {
  it('refuse a --keep that is not a count, no target, and --limit without an inventory', async () => {
    for (const keep of ['-1', '1.5', 'two', '']) {
      expectUsageError(
        await runCli(['prune', '--local', '--keep', keep]),
        /--keep .* is not a whole number of releases/,
      );
    }
    expectUsageError(await runCli(['uninstall']), /No target host/);
    expectUsageError(await runCli(['prune', '--dry-run']), /No target host/);
    expectJsonError(await runCli(['uninstall', '--local', '--limit', 'gpu-*', '--json']), 'usage');
    expectUsageError(await runCli(['demo', '--keep', '--down']), /--down and --keep exclude each other/);
  });
});

describe('rag ingest flags', () => {
  it('refuses a --collection and a --service that name two different RAG services', async () => {
    expectUsageError(
      await runCli(['rag', 'ingest', '--local', '--collection', 'wards', '--service', 'rag', work]),
      /--collection wards and --service rag name two different RAG services/,
    );
    expectJsonError(
      await runCli(['rag', 'ingest', '--local', '--collection', 'wards', '--service', 'rag', '--json', work]),
      'usage',
    );
  });
});

describe('a bundle that is not there', () => {
  it('is named as missing by verify, inspect, install, split and check, without errno text', async () => {
    const missing = path.join(work, 'nope.tar');
    for (const argv of [
      ['verify', missing],
      ['inspect', missing],
      ['inspect', missing, '--sbom'],
      ['install', missing, '--local'],
      ['split', missing, '--size', '4GiB'],
      ['check', '--local', '--bundle', missing],
    ]) {
      const run = await runCli(argv);
      expectUsageError(run, `No bundle at ${missing}`);
      expectJsonError(await runCli([...argv, '--json']), 'bundle-not-found');
    }
  });

  it('is found by its tar name when only the parts and their index are there', async () => {
    const dir = path.join(work, 'split-only');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'b.tar.parts.json'), '{}');
    const run = await runCli(['verify', path.join(dir, 'b.tar'), '--json']);
    // Past the argument check: verify judges the (invalid) index and names it.
    expect(run.exitCode).toBe(1);
    expect(JSON.parse(run.stdout).results).toEqual([
      expect.objectContaining({ subject: 'b.tar.parts.json', status: 'invalid' }),
    ]);
  });
});

describe('key files', () => {
  it('a missing --key for verify and --trust-key for install are named before the bundle is read', async () => {
    const bundle = path.join(work, 'k.tar');
    await writeFile(bundle, '');
    const key = path.join(work, 'nope.pub');
    expectUsageError(await runCli(['verify', bundle, '--key', key]), `No public key at ${key} (--key)`);
    expectUsageError(
      await runCli(['install', bundle, '--local', '--trust-key', key]),
      `No public key at ${key} (--trust-key)`,
    );
    // install takes no --key: the host's trust store decides, and saying so beats ignoring it.
    expectUsageError(
      await runCli(['install', bundle, '--local', '--key', key]),
      'install no longer takes --key: the host decides which signing keys it trusts.',
    );
  });

  it("the gateway's TLS files are named before the bundle is read", async () => {
    const bundle = path.join(work, 't.tar');
    await writeFile(bundle, 'not looked at');
    const cert = path.join(work, 'gateway-cert.pem');
    const key = path.join(work, 'gateway-key.pem');
    expectUsageError(
      await runCli(['install', bundle, '--local', '--tls-cert', cert]),
      '--tls-cert and --tls-key go together.',
    );
    expectUsageError(
      await runCli(['install', bundle, '--local', '--tls-cert', cert, '--tls-key', key]),
      `No file at ${cert} (--tls-cert).`,
    );
    await writeFile(cert, 'not a certificate');
    await writeFile(key, 'not a key');
    expectUsageError(
      await runCli(['install', bundle, '--local', '--tls-cert', cert, '--tls-key', key]),
      `${cert} holds no PEM certificate.`,
    );
    expectUsageError(
      await runCli(['install', bundle, '--local', '--tls-cert', cert, '--tls-key', key, '--insecure-http']),
      '--insecure-http and --tls-cert exclude each other.',
    );
    expectUsageError(
      await runCli(['install', bundle, '--local', '--expose-address', 'gpu1.lab']),
      '--expose-address "gpu1.lab" is not an IP address.',
    );
  });

  it('bundle --sign that is not a minisign key fails before any source is fetched, --dry-run too', async () => {
    const recipe = path.join(work, 'hf-recipe');
    await mkdir(recipe, { recursive: true });
    await writeHfRecipe(recipe, 'swiss-ai/Apertus-8B-Instruct-2509');
    const notAKey = path.join(work, 'not-a-key.key');
    await writeFile(notAKey, 'untrusted comment: a shopping list\nmilk, eggs\n');
    const cache = path.join(work, 'sign-cache');
    const out = path.join(work, 'sign-out');
    // The Hub is a port nothing listens on: resolving the hf: source first would fail there.
    const hub = `http://127.0.0.1:${await closedPort()}`;
    for (const extra of [[], ['--dry-run']]) {
      const argv = ['bundle', recipe, '--sign', notAKey, '--hub-url', hub, '--cache-dir', cache, '-o', out];
      const run = await runCli([...argv, ...extra]);
      expectUsageError(run, `${notAKey} is not a usable secret key`);
      expectJsonError(await runCli([...argv, ...extra, '--json']), 'key-invalid');
    }
    expect(existsSync(cache)).toBe(false);
    expect(existsSync(out)).toBe(false);

    const missing = await runCli(['bundle', recipe, '--sign', path.join(work, 'nope.key'), '--hub-url', hub]);
    expectUsageError(missing, /No secret key at .*nope\.key \(--sign\)/);
  });

  it('bundle --dry-run --sign says which key it would sign with', async () => {
    const keys = await runCli(['keys', 'generate', '-o', path.join(work, 'release'), '--json']);
    const pair = JSON.parse(keys.stdout) as { keyId: string; secretKeyPath: string };
    const out = path.join(work, 'dry-out');
    const run = await runCli([
      'bundle',
      'bundles/demo',
      '-o',
      out,
      '--sign',
      pair.secretKeyPath,
      '--dry-run',
      '--json',
    ]);
    expect(run.exitCode, run.stdout).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ dryRun: true, signingKeyId: pair.keyId });
    expect(existsSync(out)).toBe(false);
  });
});

describe('output directories that cannot be made', () => {
  it('are refused for bundle, demo, split and keys generate before anything runs', async () => {
    const blocker = path.join(work, 'a-file');
    await writeFile(blocker, '');
    const bundle = path.join(work, 's.tar');
    await writeFile(bundle, '');
    for (const [argv, flag] of [
      [['bundle', 'bundles/demo', '-o', '/dev/null/x'], '--out /dev/null/x'],
      [['bundle', 'bundles/demo', '--cache-dir', path.join(blocker, 'cache')], '--cache-dir'],
      [['demo', '-o', '/dev/null/x'], '--out /dev/null/x'],
      [['split', bundle, '--size', '4GiB', '-o', path.join(blocker, 'parts')], '--out'],
      [['keys', 'generate', '-o', '/dev/null/x/release'], '--out /dev/null/x/release'],
    ] as const) {
      const run = await runCli([...argv]);
      expectUsageError(run, flag);
      expect(run.stderr).toMatch(/cannot be created: \S+ is (a device|a file), not a directory/);
    }
  });

  it('a --known-hosts under a file is refused; one that does not exist yet is fine', async () => {
    const blocker = path.join(work, 'kh-file');
    await writeFile(blocker, '');
    const run = await runCli(['status', '--local', '--known-hosts', path.join(blocker, 'known_hosts')]);
    expectUsageError(run, /--known-hosts .* cannot be created/);
  });
});

describe('files and numbers check names', () => {
  it('an identity, inventory or image config that is not there', async () => {
    const nope = path.join(work, 'nope');
    for (const [argv, message] of [
      [['status', '--host', 'root@127.0.0.1:1', '-i', nope], `No SSH identity at ${nope} (--identity)`],
      [['check', '--host', 'root@127.0.0.1:1', '-i', nope], `No SSH identity at ${nope} (--identity)`],
      [['check', '--inventory', nope], `No inventory at ${nope} (--inventory)`],
      [['check', '--local', '--image-config', nope], `No image config at ${nope} (--image-config)`],
      [['check', '--local', '--image-config', work], `--image-config ${work} is a directory, not a file`],
    ] as const) {
      expectUsageError(await runCli([...argv]), message);
    }
  });

  it('a host address, a size or a number that does not parse', async () => {
    for (const [argv, message] of [
      [['check', '--host', 'not a host'], /Invalid host address 'not a host'/],
      [['rollback', '--host', 'root@h:99999'], /port 99999 is outside 1-65535/],
      [['bundle', 'bundles/demo', '--split', '3'], /part size "3" is 3 bytes/],
      [
        ['check', '--local', '--tensor-parallel-size', '1.5'],
        /--tensor-parallel-size 1\.5 is not a positive whole number/,
      ],
    ] as const) {
      expectUsageError(await runCli([...argv]), message);
    }
  });
});
