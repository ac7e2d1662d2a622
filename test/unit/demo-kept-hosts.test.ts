/**
 * The record that keeps a `demo --keep` host: later runs' sweeps ask it by namespace name
 * (sshd's rewritten command line cannot tell them), and `demo --down` removes what it names.
 * A record whose namespace and processes are long gone still takes its files with it.
 */
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  isKeptNamespace,
  keptHostsDir,
  listKeptHosts,
  recordKeptHost,
  removeKeptHosts,
} from '../../src/core/demo-host/kept-hosts.js';

describe('kept demo hosts', () => {
  const id = `apertus-test-${process.pid}-kept`;
  let work: string | undefined;
  afterAll(async () => {
    await rm(path.join(keptHostsDir(), `${id}.json`), { force: true });
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('are kept while their record and directory exist, and --down removes both', async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-kept-'));
    const dir = path.join(work, 'host', 'demo-host-x');
    await mkdir(path.join(dir, 'root'), { recursive: true });
    expect(await isKeptNamespace(id)).toBe(false);
    recordKeptHost({
      id,
      mode: 'netns',
      dir,
      alsoRemove: work,
      root: path.join(dir, 'root'),
      address: 'root@169.254.1.2:22',
      namespace: id,
      hostInterface: 'apvtest0',
      // No such process: its pid was reused or it is gone; nothing is signalled.
      sshdPid: 2 ** 22 + 1,
      sshdExe: '/usr/sbin/sshd',
      containersConf: null,
      keptAt: new Date().toISOString(),
    });
    expect((await listKeptHosts()).find((h) => h.id === id)).toMatchObject({ dir, namespace: id });
    expect(await isKeptNamespace(id)).toBe(true);
    expect(await isKeptNamespace(`${id}-other`)).toBe(false);

    await expect(removeKeptHosts(`${id}-other`)).rejects.toMatchObject({ code: 'demo-host-unknown' });
    expect(await removeKeptHosts(id)).toEqual([
      {
        id,
        mode: 'netns',
        address: 'root@169.254.1.2:22',
        stopped: [],
        containers: 0,
        namespaceDeleted: false,
        sshdStopped: false,
      },
    ]);
    await expect(stat(work)).rejects.toThrow();
    expect(await isKeptNamespace(id)).toBe(false);
    expect((await listKeptHosts()).map((h) => h.id)).not.toContain(id);
  });
});
