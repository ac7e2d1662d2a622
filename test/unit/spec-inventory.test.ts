import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  inventoryJsonSchema,
  inventoryTargets,
  loadInventory,
  parseInventory,
} from '../../src/core/check/inventory.js';
import { ApertusError } from '../../src/core/errors.js';
import type { RecipeProblem } from '../../src/core/spec/load-recipe.js';

const FILE = '/etc/apertus/hosts.yaml';

function problems(text: string): { error: ApertusError; problems: RecipeProblem[] } {
  try {
    parseInventory(FILE, text);
  } catch (error) {
    expect(error).toBeInstanceOf(ApertusError);
    const e = error as ApertusError;
    expect(e.code).toBe('inventory-invalid');
    return { error: e, problems: (e.details as { problems: RecipeProblem[] }).problems };
  }
  throw new Error('the inventory was accepted');
}

describe('inventory', () => {
  it('loads hosts, applies defaults, and resolves key paths against the file', () => {
    const inventory = parseInventory(
      FILE,
      [
        'apiVersion: apertus.dev/v1',
        'kind: Inventory',
        'defaults:',
        '  identity: keys/id_ed25519',
        '  knownHosts: ~/.ssh/known_hosts_lab',
        'hosts:',
        '  - name: gpu-01',
        '    address: root@10.0.0.5',
        '  - address: admin@[fe80::1%eth0]:2222',
        '    root: /srv/apertus',
        '    identity: /opt/keys/admin',
        '    acceptNewHostKey: true',
      ].join('\n'),
    );
    expect(inventory.hosts).toEqual([
      {
        name: 'gpu-01',
        address: 'root@10.0.0.5',
        identity: '/etc/apertus/keys/id_ed25519',
        knownHosts: path.join(os.homedir(), '.ssh/known_hosts_lab'),
        root: '/var/lib/apertus',
        acceptNewHostKey: false,
      },
      {
        name: 'admin@[fe80::1%eth0]:2222',
        address: 'admin@[fe80::1%eth0]:2222',
        identity: '/opt/keys/admin',
        knownHosts: path.join(os.homedir(), '.ssh/known_hosts_lab'),
        root: '/srv/apertus',
        acceptNewHostKey: true,
      },
    ]);
    expect(inventoryTargets(inventory)[0]).toEqual({
      name: 'gpu-01',
      root: '/var/lib/apertus',
      target: {
        kind: 'ssh',
        address: 'root@10.0.0.5',
        identityFile: '/etc/apertus/keys/id_ed25519',
        knownHostsFile: path.join(os.homedir(), '.ssh/known_hosts_lab'),
        acceptNewHostKey: false,
      },
    });
  });

  it('names file, YAML path and line of each problem', () => {
    const { error, problems: found } = problems(
      [
        'apiVersion: apertus.dev/v1',
        'kind: Inventory',
        'hosts:',
        '  - name: gpu-01',
        '    address: root@10.0.0.5:99999',
        '  - name: gpu-01',
        '    address: root@10.0.0.6',
        '    root: relative/dir',
        '    password: hunter2',
      ].join('\n'),
    );
    expect(found.map((p) => [p.path, p.line])).toEqual(
      expect.arrayContaining([
        ['hosts[0].address', 5],
        ['hosts[1].root', 8],
        ['hosts[1]', 9],
        ['hosts[1].name', 6],
      ]),
    );
    expect(found.find((p) => p.path === 'hosts[1]')?.message).toBe('unknown field "password"');
    expect(found.find((p) => p.path === 'hosts[1].name')?.message).toContain('already hosts[0]');
    expect(error.message).toContain(`${FILE}:5:14 hosts[0].address: Invalid host address`);
  });

  it('refuses a bare list, pointing at the versioned form', () => {
    const { error } = problems('- address: root@10.0.0.5\n');
    expect(error.hint).toContain('apiVersion: apertus.dev/v1, kind: Inventory');
  });

  it('reports YAML syntax errors with their line', () => {
    const { problems: found } = problems('apiVersion: apertus.dev/v1\nkind: Inventory\nhosts: [\n');
    expect(found[0]?.line).toBeGreaterThan(0);
  });

  it('reads the file from disk, and says so when it is missing', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'apertus-inventory-'));
    const file = path.join(dir, 'hosts.yaml');
    await writeFile(
      file,
      'apiVersion: apertus.dev/v1\nkind: Inventory\nhosts:\n  - address: root@10.0.0.5\n',
    );
    expect((await loadInventory(file)).hosts[0]?.name).toBe('root@10.0.0.5');
    await expect(loadInventory(path.join(dir, 'nope.yaml'))).rejects.toMatchObject({
      code: 'inventory-not-found',
    });
  });

  it('has a JSON Schema for editors', () => {
    const schema = inventoryJsonSchema();
    expect(schema.$id).toBe('https://apertus.dev/schema/inventory.v1.json');
    expect(JSON.stringify(schema)).toContain('knownHosts');
  });
});
