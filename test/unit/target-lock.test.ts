/**
 * The host lock on a real directory through the local transport: held, refused, released,
 * taken over from a holder killed with SIGKILL, and never left behind on a full disk.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalTransport } from '../../src/core/host/local-transport.js';
import { hostLayout } from '../../src/core/target/layout.js';
import { acquireHostLock, readLockState } from '../../src/core/target/lock.js';

const transport = createLocalTransport();

describe('the host lock', () => {
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'apertus-lock-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('is held with its holder and ballast, refused to a second command, and gone after release', async () => {
    const layout = hostLayout(path.join(work, 'root-a'));
    const lock = await acquireHostLock(transport, layout, 'install demo 0.1.0');
    expect(lock.tookOver).toBeNull();
    expect(lock.holder).toMatchObject({ pid: process.pid, command: 'install demo 0.1.0' });
    expect(lock.holder.keeperPid).toBeGreaterThan(0);
    expect((await readdir(layout.lock)).sort()).toEqual(['ballast', 'holder.json']);
    expect(await readLockState(transport, layout)).toMatchObject({ held: true, stale: false });

    await expect(acquireHostLock(transport, layout, 'rollback')).rejects.toMatchObject({
      code: 'host-busy',
      message: expect.stringContaining('install demo 0.1.0 by'),
    });
    await lock.release();
    await expect(readdir(layout.lock)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readLockState(transport, layout)).toEqual({ held: false, holder: null, stale: null });
  });

  it('is taken over, and says so, when the command that held it was killed with SIGKILL', async () => {
    const layout = hostLayout(path.join(work, 'root-b'));
    // Another apertus process (the build `npm test` makes first) takes the lock, then dies
    // without a chance to clean up.
    const built = (file: string) => JSON.stringify(path.resolve('dist/core', file));
    const script = `
      import { createLocalTransport } from ${built('host/local-transport.js')};
      import { hostLayout } from ${built('target/layout.js')};
      import { acquireHostLock } from ${built('target/lock.js')};
      await acquireHostLock(createLocalTransport(), hostLayout(${JSON.stringify(layout.root)}), 'install demo 0.2.0');
      console.log('locked');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('locked')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`holder exited with ${code}`)));
    });
    const held = await readLockState(transport, layout);
    expect(held).toMatchObject({ held: true, stale: false, holder: { command: 'install demo 0.2.0' } });
    await expect(acquireHostLock(transport, layout, 'rollback')).rejects.toMatchObject({ code: 'host-busy' });

    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    // The keeper reads end-of-file on its pipe and exits: the lock is stale now.
    await expect
      .poll(async () => (await readLockState(transport, layout)).stale, { timeout: 5_000 })
      .toBe(true);
    const lock = await acquireHostLock(transport, layout, 'rollback');
    expect(lock.tookOver).toMatchObject({ command: 'install demo 0.2.0', keeperPid: held.holder?.keeperPid });
    expect(lock.holder.command).toBe('rollback');
    await lock.release();
  });

  it('refuses, unchanged, a lock directory that names no holder', async () => {
    const layout = hostLayout(path.join(work, 'root-c'));
    await mkdir(layout.lock, { recursive: true });
    await expect(acquireHostLock(transport, layout, 'install')).rejects.toMatchObject({
      code: 'host-busy',
      hint: expect.stringContaining(`rm -r ${layout.lock}`),
    });
    expect(await readdir(layout.lock)).toEqual([]);
  });

  it('takes over a lock whose holder.json is a link to something else, writing nothing through it', async () => {
    const layout = hostLayout(path.join(work, 'root-d'));
    const victim = path.join(work, 'victim-d');
    await writeFile(victim, 'untouched');
    await mkdir(layout.lock, { recursive: true });
    await execa('ln', ['-s', victim, path.join(layout.lock, 'holder.json')]);
    // What it names is no holder with a live keeper: stale, taken over, and the link replaced.
    const lock = await acquireHostLock(transport, layout, 'install');
    expect(lock.tookOver).toBeNull();
    expect(JSON.parse(await readFile(path.join(layout.lock, 'holder.json'), 'utf8'))).toMatchObject({
      command: 'install',
    });
    await lock.release();
    expect(await readFile(victim, 'utf8')).toBe('untouched');
  });

  it.skipIf(process.getuid?.() !== 0)(
    'on a full disk fails saying so, and leaves no lock behind',
    async () => {
      const mount = path.join(work, 'tiny');
      await mkdir(mount);
      await execa('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mount]);
      try {
        const layout = hostLayout(path.join(mount, 'root'));
        await expect(acquireHostLock(transport, layout, 'rollback')).rejects.toMatchObject({
          code: 'host-disk-full',
          message: expect.stringMatching(/^No space left on .*tiny.*needs 1\.0 MB, has/),
        });
        expect(await readdir(layout.root)).toEqual([]);
      } finally {
        await execa('umount', [mount]);
      }
    },
  );
});
