/**
 * `apertus demo --keep` leaves a host that later apertus runs on the same machine leave
 * alone (each new demo host sweeps stale namespaces first), and `apertus demo --down`
 * takes it down with its services: run as bin/apertus.js, the demo's real journey.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import type { DemoResult } from '../../src/core/demo/run-demo.js';
import { createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { type KeptHost, listKeptHosts, removeKeptHosts } from '../../src/core/demo-host/kept-hosts.js';
import { sshE2eRequirement } from '../helpers/demo-host.js';

const BIN = path.resolve('bin/apertus.js');
const requirement = sshE2eRequirement();

async function apertus(args: string[]) {
  const result = await execa(process.execPath, [BIN, ...args], { reject: false, env: { CI: 'true' } });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

async function namespaces(): Promise<string[]> {
  const listed = await execa('ip', ['netns', 'list'], { reject: false });
  return listed.stdout.split('\n').map((line) => line.split(/\s+/)[0] ?? '');
}

/** GET /health of a port inside the namespace, as a process of the host would ask. */
async function healthInside(namespace: string, port: number): Promise<number> {
  const script = `fetch('http://127.0.0.1:${port}/health').then((r) => console.log(r.status), () => console.log(0))`;
  const result = await execa('ip', ['netns', 'exec', namespace, process.execPath, '-e', script], {
    reject: false,
  });
  return Number(result.stdout.trim());
}

/** A process that exists and is not a zombie (one its reaper has not collected yet is gone). */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  return stat !== null && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

describe.skipIf(!requirement.ok)(`demo --keep and --down ${requirement.why}`, () => {
  let kept: KeptHost | undefined;
  let other: DemoHost | undefined;
  afterAll(async () => {
    await other?.teardown();
    // Whatever the test left: never a namespace or services behind.
    if (kept) await removeKeptHosts(kept.id).catch(() => undefined);
  });

  it('a kept host survives the next demo host; demo --down stops its services and removes it', async () => {
    const before = new Set((await listKeptHosts()).map((h) => h.id));
    const out = path.join(os.tmpdir(), `apertus-demo-keep-${process.pid}`);
    const demo = await apertus(['demo', '--keep', '--json', '-o', out]);
    expect(demo.exitCode, demo.stdout + demo.stderr).toBe(0);
    const result = JSON.parse(demo.stdout) as DemoResult;
    expect(result.host).toMatchObject({ mode: 'netns', kept: true });
    kept = (await listKeptHosts()).find((h) => !before.has(h.id));
    expect(kept).toMatchObject({ mode: 'netns', root: result.host.root, address: result.host.address });
    const host = kept as KeptHost;
    expect(result.next).toContain(`Remove it with its services: apertus demo --down ${host.id}`);
    // The demo process is gone: only the record says the host is kept.
    const supervisors = await Promise.all(
      (await readdir(path.join(host.root, 'run'))).map(async (f) =>
        Number(await readFile(path.join(host.root, 'run', f), 'utf8')),
      ),
    );
    expect(supervisors).toHaveLength(2);
    for (const pid of supervisors) expect(await running(pid)).toBe(true);

    // Another run makes a host of its own, sweeping namespaces whose owners are gone.
    other = await createDemoHost({ workDir: path.join(out, 'other'), mode: 'netns' });
    expect(await namespaces()).toContain(host.namespace);
    expect(await healthInside(host.namespace as string, 18090)).toBe(200);
    await other.teardown();
    other = undefined;

    const down = await apertus(['demo', '--down', host.id, '--json']);
    expect(down.exitCode, down.stdout + down.stderr).toBe(0);
    expect(JSON.parse(down.stdout)).toEqual({
      ok: true,
      removed: [
        {
          id: host.id,
          mode: 'netns',
          address: host.address,
          stopped: ['llm', 'rag'],
          containers: 0,
          namespaceDeleted: true,
          sshdStopped: true,
        },
      ],
    });
    for (const pid of supervisors) expect(await running(pid)).toBe(false);
    expect(await namespaces()).not.toContain(host.namespace);
    await expect(stat(host.dir)).rejects.toThrow();
    // With it went the demo's own work files (its signing key).
    expect(host.alsoRemove).toBeTruthy();
    await expect(stat(host.alsoRemove as string)).rejects.toThrow();
    expect((await listKeptHosts()).map((h) => h.id)).not.toContain(host.id);
    const again = await apertus(['demo', '--down', host.id]);
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toContain('No demo host kept on this machine');
    kept = undefined;
    await execa('rm', ['-rf', out]);
  });
});
