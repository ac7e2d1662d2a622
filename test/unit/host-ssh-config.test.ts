import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkHostKey,
  type PublicKey,
  parseKnownHosts,
  readKnownHosts,
} from '../../src/core/host/known-hosts.js';
import { loadSshConfig, resolveSshConfigHost } from '../../src/core/host/ssh-config.js';
import { describeJumps, resolveSshRoute } from '../../src/core/host/ssh-route.js';
import { parseInventory } from '../../src/core/spec/inventory.js';
import { resolveTargetRoute } from '../../src/core/target/connect.js';
import { rejection } from '../helpers/rejection.js';
import { runCli } from '../helpers/run-cli.js';

let dir: string;
let configFile: string;

// One real config, of the shape operators keep: specific hosts first, wildcards, then defaults.
const CONFIG = `# fleet
Host gpu1
  HostName 10.0.0.5
  Port 2200

Host gpu* !gpu9
  HostName %h.lab
  User admin
  IdentityFile ~/.ssh/fleet_ed25519
  IdentityFile /etc/apertus/fleet_rsa
  IdentitiesOnly yes
  ProxyJump ops@bastion.lab:2222,jump2
  UserKnownHostsFile ~/.ssh/fleet_known_hosts ~/.ssh/other_known_hosts

Host gpu9
  ProxyJump none

Host jump2
  HostName 10.1.0.2
  User relay
  Port 2022

host bastion.lab
  identityfile ~/.ssh/bastion_key

Host *
  User fallback
  ConnectTimeout 7
  ServerAliveInterval 30
`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'apertus-ssh-config-'));
  configFile = join(dir, 'config');
  await writeFile(configFile, CONFIG);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** What OpenSSH itself resolves: `ssh -G` prints the final options without connecting. */
async function sshG(alias: string): Promise<Map<string, string[]>> {
  const { stdout } = await execa('ssh', ['-G', '-F', configFile, alias]);
  const options = new Map<string, string[]>();
  for (const line of stdout.split('\n')) {
    const space = line.indexOf(' ');
    const key = line.slice(0, space);
    options.set(key, [...(options.get(key) ?? []), line.slice(space + 1)]);
  }
  return options;
}

const tilde = (file: string) => file.replace(/^~(?=\/)/, homedir());

describe('ssh_config', () => {
  it('resolves each alias as ssh -G does: first obtained value wins', async () => {
    const config = await loadSshConfig(configFile);
    for (const alias of ['gpu1', 'gpu7', 'gpu9', 'jump2', 'bastion.lab', 'other.example']) {
      const ours = resolveSshConfigHost(config, alias);
      const openssh = await sshG(alias);
      expect(ours.hostName ?? alias, alias).toBe(openssh.get('hostname')?.[0]);
      expect(ours.user ?? userInfo().username, alias).toBe(openssh.get('user')?.[0]);
      expect(ours.port ?? 22, alias).toBe(Number(openssh.get('port')?.[0]));
      expect(ours.connectTimeoutMs, alias).toBe(Number(openssh.get('connecttimeout')?.[0]) * 1000);
      expect(ours.serverAliveIntervalMs, alias).toBe(Number(openssh.get('serveraliveinterval')?.[0]) * 1000);
      expect(ours.identitiesOnly ?? false, alias).toBe(openssh.get('identitiesonly')?.[0] === 'yes');
      const proxyJump = openssh.get('proxyjump')?.[0];
      expect(ours.proxyJump === 'none' ? undefined : ours.proxyJump?.join(','), alias).toBe(proxyJump);
      // ssh -G lists the default identities when none is configured; compare configured ones.
      if (ours.identityFiles.length > 0) {
        expect(ours.identityFiles, alias).toEqual((openssh.get('identityfile') ?? []).map(tilde));
      }
      if (ours.userKnownHostsFiles.length > 0) {
        expect(ours.userKnownHostsFiles.join(' '), alias).toBe(openssh.get('userknownhostsfile')?.[0]);
      }
    }
    // The specific block set Port before the wildcard's, and %h expanded to the alias.
    expect(resolveSshConfigHost(config, 'gpu1')).toMatchObject({
      hostName: '10.0.0.5',
      port: 2200,
      user: 'admin',
    });
    expect(resolveSshConfigHost(config, 'gpu7').hostName).toBe('gpu7.lab');
    expect(resolveSshConfigHost(config, 'gpu9').proxyJump).toBe('none');
  });

  it('turns an alias into a route: target and each jump hop resolved against the config', async () => {
    const config = await loadSshConfig(configFile);
    const route = resolveSshRoute(config, { address: 'gpu7' });
    expect(route.target).toMatchObject({
      alias: 'gpu7',
      address: { user: 'admin', host: 'gpu7.lab', port: 22 },
      identityFiles: [join(homedir(), '.ssh/fleet_ed25519'), '/etc/apertus/fleet_rsa'],
      identitiesOnly: true,
      knownHostsFile: join(homedir(), '.ssh/fleet_known_hosts'),
      connectTimeoutMs: 7000,
      keepaliveIntervalMs: 30_000,
    });
    expect(route.jumps.map((hop) => hop.address)).toEqual([
      { user: 'ops', host: 'bastion.lab', port: 2222 },
      { user: 'relay', host: '10.1.0.2', port: 2022 },
    ]);
    expect(route.jumps[0]?.identityFiles).toEqual([join(homedir(), '.ssh/bastion_key')]);
    expect(describeJumps(route)).toBe('ops@bastion.lab:2222,relay@10.1.0.2:2022');
  });

  it('lets flags beat the config: user@ and :port, --identity, --known-hosts, --jump', async () => {
    const config = await loadSshConfig(configFile);
    const route = resolveSshRoute(config, {
      address: 'root@gpu1:22',
      identityFile: '/keys/id',
      knownHostsFile: '/keys/known_hosts',
      jump: 'me@10.9.9.9:2201',
    });
    expect(route.target.address).toEqual({ user: 'root', host: '10.0.0.5', port: 22 });
    expect(route.target.identityFiles).toEqual(['/keys/id']);
    expect(route.target.knownHostsFile).toBe('/keys/known_hosts');
    expect(route.jumps.map((hop) => [hop.address, hop.knownHostsFile, hop.identityFiles])).toEqual([
      [{ user: 'me', host: '10.9.9.9', port: 2201 }, '/keys/known_hosts', ['/keys/id']],
    ]);
    // A hop the config gives its own IdentityFile keeps it.
    const viaBastion = resolveSshRoute(config, {
      address: 'gpu1',
      identityFile: '/keys/id',
      jump: 'bastion.lab',
    });
    expect(viaBastion.jumps[0]?.identityFiles).toEqual([join(homedir(), '.ssh/bastion_key')]);
    expect(resolveSshRoute(config, { address: 'gpu7', jump: 'none' }).jumps).toEqual([]);
    const nine = Array.from({ length: 9 }, (_, i) => `ops@10.0.1.${i + 1}`).join(',');
    expect(() => resolveSshRoute(config, { address: 'gpu7', jump: nine })).toThrow(/at most 8/);
    expect(() => resolveSshRoute(config, { address: 'gpu7', jump: 'ops@b;rm -rf /' })).toThrow(
      /Invalid host address/,
    );
    expect(resolveSshRoute(config, { address: 'gpu9' }).jumps).toEqual([]);
  });

  it('reads ~/.ssh/config by default, an explicit file or none; a missing default is empty', async () => {
    const viaTarget = await resolveTargetRoute({ kind: 'ssh', address: 'gpu1', sshConfigFile: configFile });
    expect(viaTarget.target.address.host).toBe('10.0.0.5');
    const none = await resolveTargetRoute({ kind: 'ssh', address: 'admin@gpu1', sshConfigFile: 'none' });
    expect(none.target.address).toEqual({ user: 'admin', host: 'gpu1', port: 22 });
    expect(none.jumps).toEqual([]);
    expect((await rejection(loadSshConfig(join(dir, 'missing')))).code).toBe('ssh-config-unreadable');
  });

  it('refuses what it cannot do safely or what is malformed, with exit-2 errors', async () => {
    const file = join(dir, 'bad');
    await writeFile(
      file,
      [
        'Host proxied',
        '  ProxyCommand nc %h %p',
        'Host badport',
        '  Port 70000',
        'Host badjump',
        '  ProxyJump ops@,x',
        'Host execme',
        `  HostName 10.0.0.8`,
        `Match exec "touch ${join(dir, 'pwned')}"`,
        '  HostName 10.6.6.6',
        'Host evilname',
        '  HostName -oProxyCommand=x',
        'Host eviluser',
        '  User -oProxyCommand=x',
      ].join('\n'),
    );
    const config = await loadSshConfig(file);
    expect(() => resolveSshConfigHost(config, 'proxied')).toThrow(/ProxyCommand/);
    expect(() => resolveSshConfigHost(config, 'badport')).toThrow(/Port "70000"/);
    expect(() => resolveSshRoute(config, { address: 'badjump' })).toThrow(/Invalid host address 'ops@'/);
    expect(() => resolveSshRoute(config, { address: 'evilname' })).toThrow(
      /neither an IP address nor a host name/,
    );
    expect(() => resolveSshRoute(config, { address: 'eviluser' })).toThrow(/not a valid user name/);
    // Match exec is never run: the shell command would have created the file.
    expect(resolveSshRoute(config, { address: 'execme' }).target.address.host).toBe('10.0.0.8');
    await expect(readFile(join(dir, 'pwned'))).rejects.toThrow(/ENOENT/);
  });

  it('takes jump: in an inventory, per host and under defaults', () => {
    const inventory = parseInventory(
      join(dir, 'hosts.yaml'),
      [
        'apiVersion: apertus.dev/v1',
        'kind: Inventory',
        'defaults: { jump: ops@bastion:2222 }',
        'hosts:',
        '  - { name: a, address: root@10.0.0.5 }',
        '  - { name: b, address: root@10.0.0.6, jump: none }',
      ].join('\n'),
    );
    expect(inventory.hosts.map((host) => host.jump)).toEqual(['ops@bastion:2222', 'none']);
    expect(() =>
      parseInventory(
        join(dir, 'bad.yaml'),
        'apiVersion: apertus.dev/v1\nkind: Inventory\nhosts:\n  - { address: root@10.0.0.5, jump: "a,,b" }\n',
      ),
    ).toThrow(/hosts\[0\]\.jump.*empty/s);
  });
});

describe('--jump and --ssh-config on the command line', () => {
  it('refuses bad values with exit 2 and a hint, before connecting', async () => {
    const cases: [string[], RegExp][] = [
      [['--host', 'root@10.0.0.5', '--jump', 'ops@a,,b'], /hop between the commas is empty/],
      [['--host', 'root@10.0.0.5', '--jump', '-oProxyCommand=x'], /not a valid user name|neither an IP/],
      [['--local', '--jump', 'ops@a'], /--jump cannot be combined with --local/],
      [['--host', 'root@10.0.0.5', '-F', join(dir, 'no-such-config')], /ssh-config|SSH config/i],
    ];
    for (const [args, message] of cases) {
      const run = await runCli(['status', '--json', ...args]);
      expect(run.exitCode, args.join(' ')).toBe(2);
      const { error } = JSON.parse(run.stdout);
      expect(`${error.code} ${error.message}`, args.join(' ')).toMatch(message);
      expect(error.hint, args.join(' ')).toBeTruthy();
    }
  });
});

describe('known_hosts as OpenSSH reads it', () => {
  let key: PublicKey;
  let other: PublicKey;

  beforeAll(async () => {
    const pub = async (name: string): Promise<PublicKey> => {
      await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, name)]);
      const [type = '', base64 = ''] = (await readFile(join(dir, `${name}.pub`), 'utf8')).split(' ');
      return { type, base64 };
    };
    key = await pub('hk1');
    other = await pub('hk2');
  });

  it('agrees with ssh-keygen -F on port-less, [host]:port and hashed names', async () => {
    const file = join(dir, 'kh');
    const lines = [
      `10.0.0.5 ${key.type} ${key.base64}`,
      `[10.0.0.6]:2222 ${key.type} ${key.base64}`,
      `bastion.lab,10.0.0.7 ${key.type} ${key.base64}`,
    ];
    await writeFile(file, `${lines.join('\n')}\n`);
    const hashed = join(dir, 'kh-hashed');
    await writeFile(hashed, `${lines.join('\n')}\n`);
    await execa('ssh-keygen', ['-H', '-f', hashed]);
    const cases: [string, number][] = [
      ['10.0.0.5', 22],
      ['10.0.0.5', 2222],
      ['10.0.0.6', 2222],
      ['10.0.0.6', 22],
      ['bastion.lab', 22],
      ['10.0.0.7', 2022],
    ];
    for (const known of [file, hashed]) {
      const entries = await readKnownHosts(known);
      for (const [host, port] of cases) {
        const name = port === 22 ? host : `[${host}]:${port}`;
        const found = await execa('ssh-keygen', ['-F', name, '-f', known], { reject: false });
        const ours = checkHostKey(entries, host, port, key).status;
        expect(ours === 'match', `${name} in ${known}`).toBe(found.exitCode === 0);
      }
    }
  });

  it('refuses an @revoked key even on a host it would otherwise match', () => {
    const entries = parseKnownHosts(
      [`bastion.lab ${key.type} ${key.base64}`, `@revoked bastion.lab ${key.type} ${key.base64}`].join('\n'),
    );
    expect(checkHostKey(entries, 'bastion.lab', 22, key).status).toBe('revoked');
    expect(checkHostKey(entries, 'bastion.lab', 22, other).status).toBe('changed');
  });
});
