/**
 * An inner host reachable only through a bastion: the bastion is a demo host (a network
 * namespace on a veth link to us), the inner host a second namespace whose only link goes to
 * the bastion's namespace. `apertus status` and `apertus install` reach it through ProxyJump
 * from an ssh_config alias and through --jump; a changed host key at either hop is refused,
 * and the inner sshd's log shows that nothing got past the hop that was refused.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, open, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { netnsCommand } from '../../src/core/demo-host/network-namespace.js';
import { generateKey, renderSshdConfig } from '../../src/core/demo-host/sshd.js';
import { parseHostAddress } from '../../src/core/host/host-address.js';
import { openTarget } from '../../src/core/target/connect.js';
import { hostLayout } from '../../src/core/target/layout.js';
import { stopCurrentRelease } from '../../src/core/target/releases.js';
import { apertusBin, parseJson } from '../helpers/apertus-bin.js';
import { sshE2eRequirement } from '../helpers/demo-host.js';

const requirement = sshE2eRequirement();
if (!requirement.ok) console.warn(`Skipping test/e2e/jump-host.test.ts: ${requirement.why}.`);

const INNER_NS = `apj-${process.pid}`;
const BASTION_SIDE = `apjb${process.pid.toString(36)}`.slice(0, 15);
const SUBNET = `10.213.${process.pid % 250}`;
const INNER_ADDRESS = `${SUBNET}.2`;

let work: string;
let bastion: DemoHost;
let bastionAddress: string;
let innerSshd: ChildProcess | undefined;
let innerLog: string;
let knownHosts: string;
let sshConfig: string;
let identity: string;
let innerRoot: string;
let bundle: string;

async function ip(args: string[]): Promise<void> {
  await execa('ip', args);
}

/** The inner namespace: one veth whose other end is inside the bastion's namespace; no other link, no route. */
async function createInnerHost(): Promise<void> {
  const bastionNs = bastion.namespace as string;
  await ip(['netns', 'add', INNER_NS]);
  await ip([
    '-n',
    bastionNs,
    'link',
    'add',
    BASTION_SIDE,
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    INNER_NS,
  ]);
  await ip(['-n', bastionNs, 'addr', 'add', `${SUBNET}.1/30`, 'dev', BASTION_SIDE]);
  await ip(['-n', bastionNs, 'link', 'set', BASTION_SIDE, 'up']);
  await ip(['-n', INNER_NS, 'addr', 'add', `${INNER_ADDRESS}/30`, 'dev', 'eth0']);
  await ip(['-n', INNER_NS, 'link', 'set', 'eth0', 'up']);
  await ip(['-n', INNER_NS, 'link', 'set', 'lo', 'up']);

  const dir = path.join(work, 'inner');
  await mkdir(dir);
  const hostKey = await generateKey(path.join(dir, 'ssh_host_ed25519_key'), 'inner');
  const authorizedKeysFile = path.join(dir, 'authorized_keys');
  await writeFile(authorizedKeysFile, await readFile(`${identity}.pub`, 'utf8'), { mode: 0o600 });
  const config = path.join(dir, 'sshd_config');
  await writeFile(
    config,
    renderSshdConfig({
      dir,
      listenAddress: INNER_ADDRESS,
      port: 22,
      hostKeyFile: path.join(dir, 'ssh_host_ed25519_key'),
      authorizedKeysFile,
    }),
  );
  innerLog = path.join(dir, 'sshd.log');
  const log = await open(innerLog, 'a');
  const [command, ...args] = netnsCommand(INNER_NS, ['/usr/sbin/sshd', '-D', '-e', '-f', config]);
  innerSshd = spawn(command as string, args, { stdio: ['ignore', log.fd, log.fd] });
  await log.close();
  // We cannot reach it to wait for its banner (that is the point): wait for its log line.
  const deadline = Date.now() + 10_000;
  while (!(await readFile(innerLog, 'utf8')).includes('Server listening')) {
    if (Date.now() > deadline)
      throw new Error(`inner sshd did not start: ${await readFile(innerLog, 'utf8')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const bastionKnown = await readFile(bastion.knownHostsFile as string, 'utf8');
  knownHosts = path.join(work, 'known_hosts');
  await writeFile(knownHosts, `${bastionKnown.trim()}\n${INNER_ADDRESS} ${hostKey.type} ${hostKey.base64}\n`);
}

/** Lines of the inner sshd log that show a TCP connection reached it, or a login. */
async function innerSeen(): Promise<{ connections: number; logins: number }> {
  const lines = (await readFile(innerLog, 'utf8')).split('\n');
  return {
    connections: lines.filter((line) => line.includes('Connection from')).length,
    logins: lines.filter((line) => line.includes('Accepted publickey')).length,
  };
}

/** known_hosts where `name` has another key than the one it presents. */
async function knownHostsWithChangedKey(name: string): Promise<string> {
  const fake = await generateKey(path.join(work, `fake-${name.replace(/\W/g, '_')}`), 'fake');
  const text = await readFile(knownHosts, 'utf8');
  const file = path.join(work, `known_hosts-changed-${name.replace(/\W/g, '_')}`);
  const lines = text
    .trim()
    .split('\n')
    .map((line) => (line.split(' ')[0] === name ? `${name} ${fake.type} ${fake.base64}` : line));
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

function tcpReachable(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => finish(false), timeoutMs);
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

describe.skipIf(!requirement.ok)('reaching an inner host through a bastion', () => {
  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-jump-e2e-'));
    bastion = await createDemoHost({ workDir: path.join(work, 'bastion'), mode: 'netns' });
    identity = bastion.identityFile as string;
    bastionAddress = bastion.address as string;
    innerRoot = path.join(work, 'inner-root');
    await mkdir(innerRoot);
    const bundled = await apertusBin([
      'bundle',
      'bundles/demo',
      '-o',
      path.join(work, 'out'),
      '--no-cli',
      '--json',
    ]);
    if (bundled.exitCode !== 0) throw new Error(`bundle failed: ${bundled.stderr}`);
    bundle = parseJson<{ path: string }>(bundled.stdout).path;
    await createInnerHost();
    const { host: bastionHost } = parseHostAddress(bastionAddress);
    sshConfig = path.join(work, 'ssh_config');
    await writeFile(
      sshConfig,
      [
        'Host gpu-inner',
        `  HostName ${INNER_ADDRESS}`,
        '  ProxyJump bastion',
        'Host bastion',
        `  HostName ${bastionHost}`,
        'Host *',
        '  User root',
        `  IdentityFile ${identity}`,
        '  IdentitiesOnly yes',
        `  UserKnownHostsFile ${knownHosts}`,
        '  ConnectTimeout 10',
        '',
      ].join('\n'),
    );
  }, 120_000);

  afterAll(async () => {
    innerSshd?.kill('SIGKILL');
    await execa('ip', ['netns', 'del', INNER_NS], { reject: false });
    await bastion?.teardown();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const status = (args: string[]) => apertusBin(['status', '--root', innerRoot, '--json', ...args]);
  const install = (root: string, args: string[]) =>
    apertusBin(['install', bundle, '--root', root, '--allow-unsigned', '--json', ...args]);
  const viaAlias = () => ['--host', 'gpu-inner', '-F', sshConfig];
  const viaJumpFlag = () => [
    '--host',
    `root@${INNER_ADDRESS}`,
    '--jump',
    bastionAddress,
    '-i',
    identity,
    '--known-hosts',
    knownHosts,
    '--ssh-config',
    'none',
  ];

  it('cannot reach the inner host directly', async () => {
    // This machine may answer connects to any address itself (a sandbox's proxy), so the proof
    // is the inner sshd's log: the attempt never arrives there.
    const before = await innerSeen();
    await tcpReachable(INNER_ADDRESS, 22, 1_500);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await innerSeen()).toEqual(before);
  });

  it('reaches it with ProxyJump from an ssh_config alias, and with --jump; reports name the path', async () => {
    const before = await innerSeen();
    const viaConfig = await status(viaAlias());
    expect(viaConfig.exitCode, viaConfig.stderr).toBe(0);
    const expected = `ssh root@${INNER_ADDRESS}:22 via ${bastionAddress}`;
    expect(JSON.parse(viaConfig.stdout).host).toBe(expected);

    const viaFlag = await status(viaJumpFlag());
    expect(viaFlag.exitCode, viaFlag.stderr).toBe(0);
    expect(JSON.parse(viaFlag.stdout).host).toBe(expected);
    const after = await innerSeen();
    expect(after.logins).toBe(before.logins + 2);
    // The inner sshd saw its connections come from the bastion's side of their link, never from us.
    const from = (await readFile(innerLog, 'utf8')).match(/Connection from (\S+)/g) ?? [];
    expect(new Set(from)).toEqual(new Set([`Connection from ${SUBNET}.1`]));
  });

  /**
   * status, then install, through the alias with `name`'s key changed in known_hosts: each
   * refused there, exit 1, and the install's root never made.
   */
  async function refusedWithChangedKey(name: string, named: string) {
    const changed = await knownHostsWithChangedKey(name);
    const before = await innerSeen();
    const root = path.join(work, `refused-${name.replace(/\W/g, '_')}`);
    for (const run of [
      await status([...viaAlias(), '--known-hosts', changed]),
      await install(root, [...viaAlias(), '--known-hosts', changed]),
    ]) {
      expect(run.exitCode).toBe(1);
      const error = JSON.parse(run.stdout).error;
      expect(error.code).toBe('host-key-changed');
      expect(error.message).toContain(named);
    }
    await expect(readFile(root)).rejects.toThrow(/ENOENT/);
    return { before, after: await innerSeen() };
  }

  it('refuses a changed key at the bastion with nothing sent to the inner host', async () => {
    const { before, after } = await refusedWithChangedKey(
      parseHostAddress(bastionAddress).host,
      bastionAddress,
    );
    // Not even a TCP connection reached the inner sshd.
    expect(after).toEqual(before);
  });

  it('refuses a changed key at the inner host before logging in to it', async () => {
    const { before, after } = await refusedWithChangedKey(INNER_ADDRESS, `root@${INNER_ADDRESS}:22`);
    // The handshakes reached it (that is how its key was seen); no login, so no command.
    expect(after.connections).toBe(before.connections + 2);
    expect(after.logins).toBe(before.logins);
  });
  it('installs the demo through ProxyJump from an ssh_config alias, and through --jump; services verified', async () => {
    const expected = `ssh root@${INNER_ADDRESS}:22 via ${bastionAddress}`;
    for (const [name, args] of [
      ['alias', viaAlias()],
      ['jump', viaJumpFlag()],
    ] as const) {
      const root = path.join(work, `installed-${name}`);
      const before = await innerSeen();
      const installed = await install(root, [...args]);
      expect(installed.exitCode, installed.stdout + installed.stderr).toBe(0);
      const report = parseJson<{
        ok: boolean;
        host: { transport: string };
        transfer: { bytesUploaded: number };
      }>(installed.stdout);
      // Verified on the host (health, model, chat, embeddings, RAG canary) before ok.
      expect(report.ok).toBe(true);
      expect(report.host.transport).toBe(expected);
      expect(report.transfer.bytesUploaded).toBeGreaterThan(0);
      expect(await readlink(path.join(root, 'current'))).toBe('releases/demo/0.1.0');
      expect((await innerSeen()).logins).toBeGreaterThan(before.logins);
      // Its services hold the inner host's ports: stop them before the next install.
      const transport = await openTarget({ kind: 'ssh', address: 'gpu-inner', sshConfigFile: sshConfig }, {});
      try {
        await stopCurrentRelease(transport, hostLayout(root));
      } finally {
        await transport.close();
      }
    }
    const from = (await readFile(innerLog, 'utf8')).match(/Connection from (\S+)/g) ?? [];
    expect(new Set(from)).toEqual(new Set([`Connection from ${SUBNET}.1`]));
  });
});
