/**
 * The media journey (DESIGN.md section 1.2) in-process: `bundle --split`, `split`,
 * `verify` naming a bad part, `sha256sum -c` on the parts, and install from the parts.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { cp, mkdtemp, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTarget } from '../../src/core/target/connect.js';
import { hostLayout } from '../../src/core/target/layout.js';
import { stopCurrentRelease } from '../../src/core/target/releases.js';
import { runCli, stripAnsi } from '../helpers/run-cli.js';

const PART_SIZE = 16 * 1024 * 1024;

let work: string;
/** The demo recipe on a port of its own, so the real install below cannot meet another test's service. */
let recipe: string;
let key: { secretKeyPath: string; publicKeyPath: string };
let tarPath: string;
let splitDir: string;
let indexPath: string;
let parts: Array<{ file: string; size: number; sha256: string }>;

async function sha256OfFiles(files: string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const file of files) for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Flips one byte of a file; flipping it again restores it. */
async function flipByte(file: string, position: number): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, position);
    byte[0] = (byte[0] ?? 0) ^ 0xff;
    await handle.write(byte, 0, 1, position);
  } finally {
    await handle.close();
  }
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'apertus-split-cli-'));
  recipe = path.join(work, 'recipe');
  await cp('bundles/demo', recipe, { recursive: true });
  const yaml = await readFile(path.join(recipe, 'apertus.yaml'), 'utf8');
  await writeFile(path.join(recipe, 'apertus.yaml'), yaml.replace('port: 18080', 'port: 18473'));
  const keys = await runCli(['keys', 'generate', '-o', path.join(work, 'release'), '--json']);
  expect(keys.exitCode).toBe(0);
  key = JSON.parse(keys.stdout);
  const whole = await runCli([
    'bundle',
    recipe,
    '-o',
    path.join(work, 'whole'),
    '--sign',
    key.secretKeyPath,
    '--json',
  ]);
  expect(whole.exitCode, whole.stdout).toBe(0);
  tarPath = JSON.parse(whole.stdout).path;

  splitDir = path.join(work, 'media');
  const split = await runCli([
    'bundle',
    recipe,
    '-o',
    splitDir,
    '--sign',
    key.secretKeyPath,
    '--split',
    '16MiB',
    '--json',
  ]);
  expect(split.exitCode, split.stdout).toBe(0);
  const result = JSON.parse(split.stdout);
  indexPath = result.path;
  parts = result.split.index.parts;
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('apertus bundle --split', () => {
  it('writes parts that join to the unsplit tar, and an index and sha256sum list', async () => {
    expect(indexPath).toBe(path.join(splitDir, 'demo-0.1.0.tar.parts.json'));
    const { size } = await stat(tarPath);
    expect(parts.length).toBe(Math.ceil(size / PART_SIZE));
    expect(parts.length).toBeGreaterThan(2);
    expect(await readdir(splitDir)).toEqual([
      ...parts.map((_, i) => `demo-0.1.0.tar.part-${String(i + 1).padStart(3, '0')}`),
      'demo-0.1.0.tar.parts.json',
      'demo-0.1.0.tar.parts.sha256',
    ]);
    expect(await sha256OfFiles(parts.map((part) => path.join(splitDir, part.file)))).toBe(
      await sha256OfFiles([tarPath]),
    );
    const sums = await execa('sha256sum', ['--strict', '-c', 'demo-0.1.0.tar.parts.sha256'], {
      cwd: splitDir,
    });
    expect(sums.stdout).toContain('demo-0.1.0.tar.part-001: OK');
    expect(sums.stdout).not.toContain('FAILED');
  });

  it('prints the parts to put on media', async () => {
    const run = await runCli(['split', tarPath, '--size', '64MiB', '-o', path.join(work, 'human')]);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^ {2}index {6}\S+demo-0\.1\.0\.tar\.parts\.json$/m);
    const parts = Math.ceil((await stat(tarPath)).size / 67_108_864);
    expect(run.stdout).toContain(
      `parts      ${parts} of up to 67108864 bytes (67.1 MB); check them without apertus: sha256sum -c demo-0.1.0.tar.parts.sha256`,
    );
    expect(run.stdout).toMatch(/^ {4}demo-0\.1\.0\.tar\.part-001 +67\.1 MB {2}sha256 [0-9a-f]{64}$/m);
  });

  it('refuses a junk, ambiguous or too small size before doing anything, exit 2', async () => {
    const small = await runCli(['bundle', recipe, '-o', path.join(work, 'no'), '--split', '4']);
    expect(small.exitCode).toBe(2);
    expect(small.stderr).toContain('parts must be at least 1 MiB');
    const ambiguous = await runCli([
      'bundle',
      recipe,
      '-o',
      path.join(work, 'no'),
      '--split',
      '4G',
      '--json',
    ]);
    expect(ambiguous.exitCode).toBe(2);
    expect(JSON.parse(ambiguous.stdout).error).toMatchObject({
      code: 'bad-size',
      hint: 'Write 4GiB (powers of 1024) or 4GB (powers of 1000).',
    });
    await expect(readdir(path.join(work, 'no'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('apertus split', () => {
  it('gives an existing tar the same parts and index as bundle --split', async () => {
    const out = path.join(work, 'resplit');
    const run = await runCli(['split', tarPath, '--size', '16MiB', '-o', out, '--json']);
    expect(run.exitCode, run.stdout).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({
      path: path.join(out, 'demo-0.1.0.tar.parts.json'),
      source: tarPath,
      name: 'demo',
      version: '0.1.0',
      index: { partSize: PART_SIZE, parts },
    });
    expect(await readdir(out)).toEqual(await readdir(splitDir));
    for (const file of await readdir(out)) {
      expect(await sha256OfFiles([path.join(out, file)]), file).toBe(
        await sha256OfFiles([path.join(splitDir, file)]),
      );
    }
  });

  it('needs --size, and says how to write one', async () => {
    expect((await runCli(['split', tarPath])).exitCode).toBe(2);
    const junk = await runCli(['split', tarPath, '--size', 'lots']);
    expect(junk.exitCode).toBe(2);
    expect(junk.stderr).toContain('error[bad-size]: part size "lots" is not a size');
  });
});

describe('apertus verify on parts', () => {
  it('passes, by the index or by the tar name, checking each part and then the contents', async () => {
    const run = await runCli(['verify', indexPath, '--key', key.publicKeyPath, '--json']);
    expect(run.exitCode, run.stdout).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({
      ok: true,
      signed: true,
      split: { index: indexPath, parts: parts.length, badParts: 0, contentsChecked: true },
    });
    expect(result.results.slice(0, parts.length).map((r: { subject: string }) => r.subject)).toEqual(
      parts.map((part) => part.file),
    );
    const byTarName = await runCli([
      'verify',
      path.join(splitDir, 'demo-0.1.0.tar'),
      '--key',
      key.publicKeyPath,
    ]);
    expect(byTarName.exitCode).toBe(0);
    expect(byTarName.stdout).toMatch(/^ok: \d+ items verified, signature ok$/m);
  });

  it('names a corrupt part, exits 1, and install refuses it naming the part', async () => {
    const part = path.join(splitDir, 'demo-0.1.0.tar.part-002');
    await flipByte(part, 12345);
    try {
      const run = await runCli(['verify', indexPath, '--key', key.publicKeyPath]);
      expect(run.exitCode).toBe(1);
      const lines = stripAnsi(run.stdout).split('\n');
      expect(lines[0]).toMatch(
        new RegExp(
          `^digest-mismatch +demo-0\\.1\\.0\\.tar\\.part-002 {2}part 2 of ${parts.length}: demo-0\\.1\\.0\\.tar\\.part-002 digest mismatch \\(content sha256:[0-9a-f]{64}, the index says sha256:${parts[1]?.sha256}\\) — copy this part again from its medium$`,
        ),
      );
      expect(run.stdout).toContain(`1 of ${parts.length} parts bad; the bundle's contents were not checked.`);
      expect(run.stdout).toMatch(/^FAILED: 1 of \d+ items bad$/m);

      const json = await runCli(['verify', indexPath, '--json']);
      expect(json.exitCode).toBe(1);
      const result = JSON.parse(json.stdout);
      expect(result.results.filter((r: { status: string }) => r.status !== 'ok')).toEqual([
        expect.objectContaining({ subject: 'demo-0.1.0.tar.part-002', status: 'digest-mismatch' }),
      ]);

      const root = path.join(work, 'refused-root');
      const install = await runCli(['install', indexPath, '--local', '--root', root, '--dry-run', '--json']);
      expect(install.exitCode).toBe(1);
      const error = JSON.parse(install.stdout).error;
      expect(error.code).toBe('bundle-invalid');
      expect(error.message).toContain(`demo-0.1.0.tar.part-002: digest-mismatch (part 2 of ${parts.length}`);
      expect(error.hint).toContain('or the bad part');
      await expect(readdir(root)).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await flipByte(part, 12345);
    }
  });

  it('names a missing part', async () => {
    const last = parts.at(-1)?.file ?? '';
    await rename(path.join(splitDir, last), path.join(work, last));
    try {
      const run = await runCli(['verify', path.join(splitDir, 'demo-0.1.0.tar')]);
      expect(run.exitCode).toBe(1);
      expect(run.stdout).toContain(
        `missing          ${last}  part ${parts.length} of ${parts.length}: ${last} is missing — copy this part again from its medium`,
      );
    } finally {
      await rename(path.join(work, last), path.join(splitDir, last));
    }
  });
});

describe('apertus install from parts', () => {
  it('plans a local install from the index with --dry-run, changing nothing', async () => {
    const root = path.join(work, 'dry-root');
    const run = await runCli([
      'install',
      indexPath,
      '--local',
      '--root',
      root,
      '--trust-key',
      key.publicKeyPath,
      '--dry-run',
      '--json',
    ]);
    expect(run.exitCode, run.stdout).toBe(0);
    const plan = JSON.parse(run.stdout);
    expect(plan).toMatchObject({ dryRun: true });
    expect(plan.plan.uploads).toHaveLength(plan.plan.blobs.total);
    await expect(readdir(root)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('installs onto a local root, reading the blobs from the parts, and serves', async () => {
    const root = path.join(work, 'host-root');
    try {
      const run = await runCli([
        'install',
        indexPath,
        '--local',
        '--root',
        root,
        '--trust-key',
        key.publicKeyPath,
        '--json',
      ]);
      expect(run.exitCode, run.stdout).toBe(0);
      const report = JSON.parse(run.stdout);
      expect(report.ok).toBe(true);
      expect(report.transfer.bytesUploaded).toBe(report.transfer.bytesTotal);
      const checks = report.checks as Array<{ id: string; status: string }>;
      expect(checks.filter((c) => c.status !== 'ok')).toEqual([]);
      expect(new Set(checks.map((c) => c.id))).toEqual(
        new Set([
          'verify.health',
          'verify.models',
          'verify.chat',
          'verify.embeddings',
          'verify.rag-canary',
          'verify.golden',
          'verify.eval',
          'verify.audit',
        ]),
      );
      // The blobs on the host are the bundle's, byte for byte.
      const tarBlobs = (await execa('tar', ['-tf', tarPath])).stdout
        .split('\n')
        .filter((name) => /^blobs\/sha256\/[0-9a-f]{64}$/.test(name));
      const hostBlobs = await readdir(path.join(root, 'blobs', 'sha256'));
      expect(hostBlobs.sort()).toEqual(tarBlobs.map((name) => name.slice('blobs/sha256/'.length)).sort());
      const weights = hostBlobs[0] ?? '';
      expect(await sha256OfFiles([path.join(root, 'blobs', 'sha256', weights)])).toBe(weights);
    } finally {
      const transport = await openTarget({ kind: 'local' }, {});
      try {
        await stopCurrentRelease(transport, hostLayout(root)).catch(() => undefined);
      } finally {
        await transport.close();
      }
    }
  });
});
