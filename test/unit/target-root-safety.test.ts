/**
 * The probe's view of an install root and the verdict on it, on real directories: a root
 * as apertus leaves it passes; each way another user or a planted link could steer what
 * apertus writes or runs is named, with the command that fixes it.
 */
import { chmod, chown, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalTransport } from '../../src/core/host/local-transport.js';
import { hostLayout } from '../../src/core/target/layout.js';
import { runProbe } from '../../src/core/target/probe.js';
import { judgeRoot } from '../../src/core/target/root-safety.js';

const transport = createLocalTransport();
const HEX = 'a'.repeat(64);
const asRoot = process.getuid?.() === 0;

async function sound(root: string): Promise<void> {
  await mkdir(path.join(root, 'blobs', 'sha256'), { recursive: true, mode: 0o755 });
  await mkdir(path.join(root, 'releases', 'demo', '0.1.0', 'model'), { recursive: true, mode: 0o755 });
  await mkdir(path.join(root, 'reports'), { mode: 0o755 });
  await writeFile(path.join(root, 'blobs', 'sha256', HEX), 'blob', { mode: 0o444 });
  await writeFile(path.join(root, 'state.json'), '{}\n', { mode: 0o644 });
  await writeFile(path.join(root, 'audit.log'), '', { mode: 0o640 });
  await symlink('releases/demo/0.1.0', path.join(root, 'current'));
  for (const dir of [root, path.join(root, 'releases'), path.join(root, 'releases', 'demo')])
    await chmod(dir, 0o755);
}

async function verdict(root: string) {
  const { probe } = await runProbe(transport, { root, system: false });
  return judgeRoot(probe.root.entries, hostLayout(root), probe.uid);
}

describe('root safety', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'apertus-root-safety-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('passes a root as apertus leaves it, and a root that does not exist yet', async () => {
    const root = path.join(work, 'sound');
    await mkdir(root);
    await sound(root);
    expect(await verdict(root)).toEqual([]);
    expect(await verdict(path.join(work, 'absent'))).toEqual([]);
  });

  it('names a world-writable root and a group-writable directory under it, with the chmod that fixes each', async () => {
    const root = path.join(work, 'open');
    await mkdir(root);
    await sound(root);
    await chmod(root, 0o777);
    await chmod(path.join(root, 'blobs', 'sha256'), 0o775);
    const problems = await verdict(root);
    expect(problems).toContainEqual({
      path: root,
      problem: expect.stringContaining('writable by its group and everyone'),
      fix: `chmod go-w ${root}`,
    });
    expect(problems).toContainEqual(
      expect.objectContaining({
        path: path.join(root, 'blobs', 'sha256'),
        fix: expect.stringContaining('chmod go-w'),
      }),
    );
  });

  it.skipIf(!asRoot)('names a blob planted by another user', async () => {
    const root = path.join(work, 'planted');
    await mkdir(root);
    await sound(root);
    const planted = path.join(root, 'blobs', 'sha256', 'b'.repeat(64));
    await writeFile(planted, 'not what its name says', { mode: 0o555 });
    await chown(planted, 4242, 4242);
    expect(await verdict(root)).toEqual([
      {
        path: planted,
        problem: expect.stringContaining('belongs to uid 4242'),
        fix: `chown root ${planted}`,
      },
    ]);
  });

  it('names links where the layout has directories and files, and a current link out of the root', async () => {
    const root = path.join(work, 'linked');
    await mkdir(root);
    await sound(root);
    const elsewhere = path.join(work, 'elsewhere');
    await mkdir(elsewhere);
    await rm(path.join(root, 'releases'), { recursive: true });
    await symlink(elsewhere, path.join(root, 'releases'));
    await rm(path.join(root, 'state.json'));
    await symlink('/etc/passwd', path.join(root, 'state.json'));
    await symlink('/etc/shadow', path.join(root, 'state.json.new'));
    await rm(path.join(root, 'current'));
    await symlink('../victim', path.join(root, 'current'));
    const problems = await verdict(root);
    const byPath = new Map(problems.map((p) => [p.path, p]));
    expect(byPath.get(path.join(root, 'releases'))?.problem).toBe(
      `is a link to ${elsewhere}, which could send what apertus writes or runs outside the root`,
    );
    expect(byPath.get(path.join(root, 'state.json'))?.fix).toBe(`rm ${path.join(root, 'state.json')}`);
    expect(byPath.get(path.join(root, 'state.json.new'))?.problem).toContain('a link to /etc/shadow');
    expect(byPath.get(path.join(root, 'current'))?.problem).toBe(
      'is a link to ../victim; it must be a link to releases/NAME/VERSION',
    );
    expect(problems).toHaveLength(4);
  });

  it('names a directory where state.json belongs, and a readable host key', async () => {
    const root = path.join(work, 'kinds');
    await mkdir(root);
    await sound(root);
    await rm(path.join(root, 'state.json'));
    await mkdir(path.join(root, 'state.json'), { mode: 0o755 });
    await mkdir(path.join(root, 'keys'), { mode: 0o700 });
    await writeFile(path.join(root, 'keys', 'host.key'), 'secret', { mode: 0o644 });
    const problems = await verdict(root);
    expect(problems).toEqual([
      expect.objectContaining({
        path: path.join(root, 'state.json'),
        problem: 'is a directory where the layout has a file',
      }),
      expect.objectContaining({
        path: path.join(root, 'keys', 'host.key'),
        fix: expect.stringContaining('chmod 0600'),
      }),
    ]);
  });
});
