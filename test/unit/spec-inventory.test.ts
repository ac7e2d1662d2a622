import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ApertusError } from '../../src/core/errors.js';
import {
  globMatches,
  inventoryJsonSchema,
  inventoryTargets,
  loadInventory,
  parseInventory,
  selectHosts,
} from '../../src/core/spec/inventory.js';
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
        '    become: true',
      ].join('\n'),
    );
    expect(inventory.hosts).toEqual([
      {
        name: 'gpu-01',
        address: 'root@10.0.0.5:22',
        user: 'root',
        port: 22,
        identity: '/etc/apertus/keys/id_ed25519',
        knownHosts: path.join(os.homedir(), '.ssh/known_hosts_lab'),
        root: '/var/lib/apertus',
        acceptNewHostKey: false,
        become: false,
        groups: [],
      },
      {
        name: 'admin@[fe80::1%eth0]:2222',
        address: 'admin@[fe80::1%eth0]:2222',
        user: 'admin',
        port: 2222,
        identity: '/opt/keys/admin',
        knownHosts: path.join(os.homedir(), '.ssh/known_hosts_lab'),
        root: '/srv/apertus',
        acceptNewHostKey: true,
        become: true,
        groups: [],
      },
    ]);
    expect(inventoryTargets(inventory)[0]).toEqual({
      name: 'gpu-01',
      root: '/var/lib/apertus',
      target: {
        kind: 'ssh',
        address: 'root@10.0.0.5:22',
        identityFile: '/etc/apertus/keys/id_ed25519',
        knownHostsFile: path.join(os.homedir(), '.ssh/known_hosts_lab'),
        acceptNewHostKey: false,
      },
    });
    // become: true asks for sudo on that host only; the CLI fills in the password.
    expect(inventoryTargets(inventory)[1]?.target).toMatchObject({
      address: 'admin@[fe80::1%eth0]:2222',
      become: {},
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

  it('has a JSON Schema (`apertus schema inventory`) that takes a fleet inventory and refuses a misspelt field', () => {
    const schema = inventoryJsonSchema();
    expect(schema.$id).toBe('https://apertus.dev/schema/inventory.v1.json');
    const validate = new Ajv2020({ strict: false }).compile(schema);
    expect(validate(parseYaml(FLEET)), JSON.stringify(validate.errors)).toBe(true);
    const misspelt = parseYaml(FLEET.replace('root: /srv/apertus', 'rooot: /srv/apertus'));
    expect(validate(misspelt)).toBe(false);
  });

  const FLEET = [
    'apiVersion: apertus.dev/v1',
    'kind: Inventory',
    'defaults: { user: ops, port: 2200 }',
    'groups:',
    '  rack-a: [gpu-01, gpu-02]',
    '  rack-b: [gpu-03, cpu-01]',
    '  canary: [gpu-01]',
    'hosts:',
    '  - { name: gpu-01, address: 10.0.0.1 }',
    '  - { name: gpu-02, address: 10.0.0.2, user: admin, port: 2222, root: /srv/apertus }',
    '  - { name: gpu-03, address: root@10.0.0.3:22 }',
    '  - { name: cpu-01, address: 10.0.0.9 }',
  ].join('\n');

  it('takes user and port per host, under defaults, or in the address, and lists each host its groups', () => {
    const inventory = parseInventory(FILE, FLEET);
    expect(inventory.hosts.map((h) => [h.name, h.address, h.root, h.groups])).toEqual([
      ['gpu-01', 'ops@10.0.0.1:2200', '/var/lib/apertus', ['rack-a', 'canary']],
      ['gpu-02', 'admin@10.0.0.2:2222', '/srv/apertus', ['rack-a']],
      ['gpu-03', 'root@10.0.0.3:22', '/var/lib/apertus', ['rack-b']],
      ['cpu-01', 'ops@10.0.0.9:2200', '/var/lib/apertus', ['rack-b']],
    ]);
    expect(inventoryTargets(inventory.hosts.slice(1, 2))[0]?.target).toMatchObject({
      address: 'admin@10.0.0.2:2222',
    });
  });

  it('names file, path and line of a bad group, user or port, and of a user or port said twice', () => {
    const { problems: found } = problems(
      [
        'apiVersion: apertus.dev/v1',
        'kind: Inventory',
        'groups:',
        '  rack-a: [gpu-01, gpu-9]',
        '  gpu-01: [gpu-01]',
        '  all: [gpu-01]',
        'hosts:',
        '  - { name: gpu-01, address: root@10.0.0.1, user: admin }',
        '  - { name: gpu-02, address: 10.0.0.2:22, port: 2222 }',
        '  - { name: gpu-03, address: 10.0.0.3, user: "-oProxyCommand=x", port: 70000 }',
      ].join('\n'),
    );
    const at = (p: string) => found.find((f) => f.path === p);
    expect(at('groups.rack-a[1]')).toMatchObject({ line: 4, message: 'no host is named "gpu-9"' });
    expect(at('groups.gpu-01')?.message).toContain('also a host name');
    expect(at('groups.all')?.message).toContain('every host');
    expect(at('hosts[0].user')).toMatchObject({ line: 8 });
    expect(at('hosts[0].user')?.message).toContain('already names user "root"');
    expect(at('hosts[1].port')?.message).toContain('already names port 22');
    expect(at('hosts[2].user')?.message).toContain('not a valid user name');
    expect(at('hosts[2].port')).toMatchObject({ line: 10 });
  });

  it('refuses / and .. as the install root', () => {
    const base = 'apiVersion: apertus.dev/v1\nkind: Inventory\nhosts:\n  - address: 10.0.0.1\n';
    for (const root of ['/', '/var/../etc'])
      expect(problems(`${base}    root: ${root}\n`).problems[0]?.path).toBe('hosts[0].root');
  });

  describe('--limit', () => {
    const inventory = parseInventory(FILE, FLEET);
    const names = (pattern: string | undefined) => selectHosts(inventory, pattern).map((h) => h.name);

    it('selects by host name, group, glob and all, in inventory order, and excludes with !', () => {
      expect(names(undefined)).toEqual(['gpu-01', 'gpu-02', 'gpu-03', 'cpu-01']);
      expect(names('all')).toEqual(['gpu-01', 'gpu-02', 'gpu-03', 'cpu-01']);
      expect(names('gpu-03,gpu-01')).toEqual(['gpu-01', 'gpu-03']);
      expect(names('rack-b')).toEqual(['gpu-03', 'cpu-01']);
      expect(names('gpu-*')).toEqual(['gpu-01', 'gpu-02', 'gpu-03']);
      expect(names('rack-?')).toEqual(['gpu-01', 'gpu-02', 'gpu-03', 'cpu-01']);
      expect(names('gpu-*,!canary')).toEqual(['gpu-02', 'gpu-03']);
      expect(names('!rack-a')).toEqual(['gpu-03', 'cpu-01']);
      // Regular-expression characters in a pattern are literal.
      expect(() => names('gpu.01')).toThrow(/matches no host/);
      expect(() => names('gpu-0[12]')).toThrow(/matches no host/);
    });

    it('matches globs in linear time: a pattern built to backtrack returns at once', () => {
      expect(globMatches('*', '')).toBe(true);
      expect(globMatches('g*-0?', 'gpu-01')).toBe(true);
      expect(globMatches('g*-0?', 'gpu-1')).toBe(false);
      expect(globMatches('*a*a', 'aba')).toBe(true);
      // A backtracking matcher runs past the test timeout here; the walk is O(pattern x name).
      expect(globMatches(`${'*a'.repeat(30)}b`, 'a'.repeat(63))).toBe(false);
    });

    it('refuses an item that matches nothing, an empty item, and an empty selection, listing the names', () => {
      for (const [pattern, message] of [
        ['gpu-01,gpu-9', /"gpu-9" matches no host or group/],
        ['gpu-01,,', /empty item/],
        ['canary,!gpu-*', /leaves no host/],
      ] as const) {
        try {
          names(pattern);
          throw new Error(`${pattern} was accepted`);
        } catch (error) {
          expect(error).toMatchObject({ code: 'limit-no-match', kind: 'user' });
          expect((error as ApertusError).message).toMatch(message);
          expect((error as ApertusError).hint).toContain(
            'Hosts: gpu-01, gpu-02, gpu-03, cpu-01; groups: rack-a',
          );
        }
      }
    });
  });
});

describe('inventory: the gateway per host', () => {
  it('gives a host its TLS files (relative to the inventory) and the address its gateway binds', () => {
    const inventory = parseInventory(
      FILE,
      [
        'apiVersion: apertus.dev/v1',
        'kind: Inventory',
        'hosts:',
        '  - name: gpu-01',
        '    address: 10.0.0.5',
        '    tlsCert: tls/gpu-01.pem',
        '    tlsKey: tls/gpu-01.key',
        '    exposeAddress: 10.0.0.5',
        '  - name: gpu-02',
        '    address: 10.0.0.6',
      ].join('\n'),
    );
    const [one, two] = inventoryTargets(inventory);
    expect(one?.gateway).toEqual({
      tls: { certPath: '/etc/apertus/tls/gpu-01.pem', keyPath: '/etc/apertus/tls/gpu-01.key' },
      exposeAddress: '10.0.0.5',
    });
    expect(two).not.toHaveProperty('gateway');
  });

  it('refuses a certificate without its key and an address that is no IP, at their lines', () => {
    const found = problems(
      [
        'apiVersion: apertus.dev/v1',
        'kind: Inventory',
        'hosts:',
        '  - address: 10.0.0.5',
        '    tlsCert: tls/gpu-01.pem',
        '    exposeAddress: gpu-01.lab',
      ].join('\n'),
    ).problems;
    expect(found.map((p) => [p.path, p.line, p.message])).toEqual([
      ['hosts[0].exposeAddress', 6, 'an IPv4 or IPv6 address, e.g. 10.0.0.5'],
      ['hosts[0].tlsKey', 4, 'tlsCert and tlsKey go together'],
    ]);
  });
});
