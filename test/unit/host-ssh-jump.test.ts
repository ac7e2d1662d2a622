import { appendFile, chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { parseHostAddress } from '../../src/core/host/host-address.js';
import { connectSshRoute } from '../../src/core/host/ssh-jump.js';
import type { SshHop, SshRoute } from '../../src/core/host/ssh-route.js';
import { connectSsh } from '../../src/core/host/ssh-transport.js';
import { sshE2eRequirement } from '../helpers/demo-host.js';
import { rejection } from '../helpers/rejection.js';

// Two real sshd on 127.0.0.1 (port 0 picked), each with its own host key: a bastion and a
// target. The isolation (target reachable only through the bastion) is the e2e test's;
// here the chain, the per-hop host key checks and agent use are tested on real sshd.
const requirement = sshE2eRequirement();

let dir: string;
let bastion: DemoHost;
let inner: DemoHost;

function hop(host: DemoHost, knownHostsFile = host.knownHostsFile as string): SshHop {
  return {
    alias: 'h',
    address: parseHostAddress(host.address as string),
    identityFiles: [host.identityFile as string],
    identitiesOnly: false,
    knownHostsFile,
  };
}

/** sshd log lines of accepted logins so far. */
async function logins(host: DemoHost): Promise<number> {
  const log = await readFile(host.sshdLogFile as string, 'utf8');
  return log.split('\n').filter((line) => line.includes('Accepted publickey')).length;
}

async function connections(host: DemoHost): Promise<number> {
  const log = await readFile(host.sshdLogFile as string, 'utf8');
  return log.split('\n').filter((line) => line.includes('Connection from')).length;
}

/** A known_hosts file that holds another key for `host` than the one it has. */
async function wrongKnownHosts(host: DemoHost, name: string): Promise<string> {
  const file = join(dir, name);
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, `${name}-key`)]);
  const [type, base64] = (await readFile(join(dir, `${name}-key.pub`), 'utf8')).split(' ');
  const { host: address, port } = parseHostAddress(host.address as string);
  await writeFile(file, `[${address}]:${port} ${type} ${base64}\n`);
  return file;
}

describe.skipIf(!requirement.ok)('ssh through jump hosts (real sshd on loopback)', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'apertus-jump-'));
    bastion = await createDemoHost({ workDir: join(dir, 'bastion'), mode: 'loopback-sshd' });
    inner = await createDemoHost({ workDir: join(dir, 'inner'), mode: 'loopback-sshd' });
  }, 60_000);

  afterAll(async () => {
    await inner?.teardown();
    await bastion?.teardown();
    await rm(dir, { recursive: true, force: true });
  });

  it('reaches the target through a chain of hops and names the path, not a local port', async () => {
    // Two hops through the same bastion: each forwardOut channel carries the next SSH session.
    const route: SshRoute = { jumps: [hop(bastion), hop(bastion)], target: hop(inner) };
    const transport = await connectSshRoute(route, {});
    try {
      const result = await transport.exec('echo reached');
      expect(result.stdout.trim()).toBe('reached');
      expect(transport.description).toBe(`ssh ${inner.address} via ${bastion.address},${bastion.address}`);
      expect(transport.address).toEqual(parseHostAddress(inner.address as string));
    } finally {
      await transport.close();
    }
  });

  it('refuses a changed key at the jump host before anything reaches the target', async () => {
    const before = await connections(inner);
    const route: SshRoute = {
      jumps: [hop(bastion, await wrongKnownHosts(bastion, 'kh-bastion'))],
      target: hop(inner),
    };
    const error = await rejection(connectSshRoute(route, {}));
    expect(error.code).toBe('host-key-changed');
    expect(error.message).toContain(bastion.address as string);
    expect(await connections(inner)).toBe(before);
  });

  it('refuses a changed key at the target before authenticating to it', async () => {
    const before = await logins(inner);
    const bastionLogins = await logins(bastion);
    const route: SshRoute = {
      jumps: [hop(bastion)],
      target: hop(inner, await wrongKnownHosts(inner, 'kh-inner')),
    };
    const error = await rejection(connectSshRoute(route, {}));
    expect(error.code).toBe('host-key-changed');
    expect(error.message).toContain(inner.address as string);
    // The bastion let us through; the target saw a handshake and no login.
    expect(await logins(bastion)).toBe(bastionLogins + 1);
    expect(await logins(inner)).toBe(before);
  });

  it('logs in with a passphrase-protected IdentityFile through the ssh-agent that holds it', async () => {
    const key = join(dir, 'id_locked');
    const passphrase = 'correct horse battery';
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-f', key]);
    // The .pub is removed: the public half is read from the private key file's clear header.
    const pub = await readFile(`${key}.pub`, 'utf8');
    await rm(`${key}.pub`);
    // prepareSsh keeps authorized_keys next to the sshd log.
    await appendFile(join(dirname(inner.sshdLogFile as string), 'authorized_keys'), pub);

    const socket = join(dir, 'agent.sock');
    const agent = await execa('ssh-agent', ['-a', socket, '-s']);
    const agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(agent.stdout)?.[1]);
    const askpass = join(dir, 'askpass.sh');
    await writeFile(askpass, `#!/bin/sh\necho '${passphrase}'\n`);
    await chmod(askpass, 0o700);
    const saved = process.env.SSH_AUTH_SOCK;
    try {
      await execa('ssh-add', [key], {
        env: { SSH_AUTH_SOCK: socket, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' },
        stdin: 'ignore',
      });
      // Without the agent: refused with the hint to use it.
      delete process.env.SSH_AUTH_SOCK;
      const locked = { ...hop(inner), identityFiles: [key], identitiesOnly: true };
      expect((await rejection(connectSshRoute({ jumps: [], target: locked }, {}))).code).toBe(
        'identity-encrypted',
      );

      process.env.SSH_AUTH_SOCK = socket;
      const before = await logins(inner);
      const transport = await connectSshRoute({ jumps: [hop(bastion)], target: locked }, {});
      try {
        expect((await transport.exec('echo agent')).stdout.trim()).toBe('agent');
      } finally {
        await transport.close();
      }
      expect(await logins(inner)).toBe(before + 1);
      // IdentitiesOnly: the agent offers only that key, so a target that does not accept it refuses us.
      const other = { ...hop(bastion), identityFiles: [key], identitiesOnly: true };
      expect((await rejection(connectSsh({ ...other, acceptNewHostKey: false }))).code).toMatch(/auth/);
    } finally {
      if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = saved;
      if (agentPid > 0) process.kill(agentPid);
    }
  });
});
