import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDemoHost, createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { ApertusError } from '../../src/core/errors.js';
import { httpRequest, httpRequestStream } from '../../src/core/host/http-over-transport.js';
import { fingerprintSha256, type PublicKey, readKnownHosts } from '../../src/core/host/known-hosts.js';
import { shellQuote } from '../../src/core/host/shell-quote.js';
import { connectSsh, type SshTransport } from '../../src/core/host/ssh-transport.js';
import type { ProgressEvent } from '../../src/core/progress.js';
import { type HostHttpServer, sshE2eRequirement, startHttpServerOnHost } from '../helpers/demo-host.js';

const requirement = sshE2eRequirement();
if (!requirement.ok) console.warn(`Skipping test/e2e/host-ssh.test.ts: ${requirement.why}.`);

/** Processes running `sleep 3001`, the command the abort test starts on the host. */
async function sleepersRunning(): Promise<number> {
  let count = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (argv === 'sleep\u00003001\u0000') count++;
  }
  return count;
}

/** The ApertusError a promise rejects with, for asserting code, message and hint together. */
async function failure(promise: Promise<unknown>): Promise<ApertusError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ApertusError);
    return error as ApertusError;
  }
  throw new Error('expected a rejection');
}

describe.skipIf(!requirement.ok)('SSH transport against sshd in a network namespace', () => {
  let work: string;
  let host: DemoHost;
  let transport: SshTransport;
  let hostKey: PublicKey;
  let innerAddress: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'apertus-host-ssh-'));
    host = await createDemoHost({ workDir: work, mode: 'netns' });
    transport = (await connectDemoHost(host)) as SshTransport;
    const [entry] = await readKnownHosts(host.knownHostsFile as string);
    hostKey = entry?.key as PublicKey;
    innerAddress = transport.address.host;
  });

  afterAll(async () => {
    await transport?.close();
    await host?.teardown();
    await rm(work, { recursive: true, force: true });
  });

  it('is a namespace on a link-local veth, reached over a verified host key with aes128-gcm', () => {
    expect(host.mode).toBe('netns');
    expect(host.reason).toContain(host.namespace);
    expect(host.address).toMatch(/^root@169\.254\.\d+\.2:22$/);
    expect(transport.description).toBe(`ssh ${host.address}`);
    expect(transport.hostKey).toBe(`ssh-ed25519 ${fingerprintSha256(hostKey)}`);
    expect(transport.cipher).toBe('aes128-gcm@openssh.com');
  });

  it('has no route out of the namespace: IPv4 ends in the counting sink, IPv6 has no route', async () => {
    // `ip route get` only consults the routing table: no packet leaves.
    const route = await host.runOnHost(['ip', 'route', 'get', '1.1.1.1']);
    expect(route.exitCode, route.stderr).toBe(0);
    expect(route.stdout).toMatch(/dev sink0/);
    const routes = (await transport.exec('ip route show')).stdout.trim().split('\n');
    expect(routes).toHaveLength(2);
    expect(routes).toContainEqual(expect.stringMatching(/^default dev sink0/));
    expect(routes).toContainEqual(expect.stringMatching(/^169\.254\.\d+\.0\/30 dev eth0/));
    // The sink's far end is inside the namespace too, with no address and no route on.
    const peer = await transport.exec('ip -o addr show dev sink1');
    expect(peer.stdout.trim()).toBe('');
    const v6 = await host.runOnHost(['ip', '-6', 'route', 'get', '2606:4700:4700::1111']);
    expect(v6.exitCode).not.toBe(0);
    expect(v6.stderr).toMatch(/unreachable/i);
  });

  describe('exec', () => {
    it('returns execa-shaped results', async () => {
      const result = await transport.exec('echo out; echo err >&2');
      expect(result).toEqual({
        command: 'echo out; echo err >&2',
        exitCode: 0,
        stdout: 'out',
        stderr: 'err',
        failed: false,
      });
    });

    it('reports the exit code with reject: false, and throws with the stderr tail otherwise', async () => {
      const command = shellQuote(['sh', '-c', 'echo partial; echo broken pipe >&2; exit 3']);
      const result = await transport.exec(command, { reject: false });
      expect(result).toEqual({
        command,
        exitCode: 3,
        stdout: 'partial',
        stderr: 'broken pipe',
        failed: true,
      });

      const error = await failure(transport.exec(command));
      expect(error.code).toBe('remote-command-failed');
      expect(error.kind).toBe('operation');
      expect(error.message).toContain('exit code 3');
      expect(error.message).toContain('broken pipe');
      expect(error.details).toEqual(result);
    });

    it('reports a command killed by a signal as 128 + signal number', async () => {
      const result = await transport.exec('kill -9 $$', { reject: false });
      expect(result.exitCode).toBe(137);
    });

    it('feeds stdin from a string, a Buffer and a stream', async () => {
      expect((await transport.exec('cat', { stdin: 'from a string' })).stdout).toBe('from a string');
      expect((await transport.exec('wc -c', { stdin: Buffer.alloc(1000) })).stdout.trim()).toBe('1000');
      const stream = Readable.from(['a', 'b', 'c'].map((s) => Buffer.from(s)));
      expect((await transport.exec('cat', { stdin: stream })).stdout).toBe('abc');
    });

    it('passes arguments through shellQuote unchanged, and runs nothing in them', async () => {
      const marker = join(work, 'must-not-exist');
      const args = [
        'plain',
        'with space',
        "it's",
        '"double"',
        `$(touch ${marker})`,
        `\`touch ${marker}\``,
        'line one\nline two\n',
        '*',
        '',
        '  leading and trailing  ',
        'tab\there',
        'back\\slash',
        '-n',
        '; exit 7',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal shell expansion, which must stay unexpanded.
        '$HOME ${PATH}',
        'ünïcødé ✓',
      ];
      const result = await transport.exec(shellQuote(['printf', '%s\\0', ...args]));
      expect(result.stdout.split('\0').slice(0, -1)).toEqual(args);
      await expect(stat(marker)).rejects.toThrow();
    });

    it('stops a command and what it started when aborted', async () => {
      const controller = new AbortController();
      const started = Date.now();
      setTimeout(() => controller.abort(), 300);
      const running = transport.exec('sleep 3001 | cat', { signal: controller.signal });
      await expect(running).rejects.toThrow(/abort/i);
      expect(Date.now() - started).toBeLessThan(3_000);
      // The namespace shares our pid namespace: watch the remote sleep go away.
      for (let tries = 0; tries < 100 && (await sleepersRunning()) > 0; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(await sleepersRunning()).toBe(0);
    });
  });

  describe('upload', () => {
    it('streams 64 MiB that arrive with the same sha256', async () => {
      const size = 64 * 1024 * 1024;
      const data = randomBytes(size);
      const local = join(work, 'random.bin');
      await writeFile(local, data);
      const remote = join(host.root, 'random.bin');
      const seen: number[] = [];
      await transport.upload(createReadStream(local, { highWaterMark: 1024 * 1024 }), remote, {
        size,
        onBytes: (done) => seen.push(done),
      });
      expect(seen.at(-1)).toBe(size);
      expect(seen).toEqual([...seen].sort((a, b) => a - b));
      const remoteSum = await transport.exec(shellQuote(['sha256sum', remote]));
      expect(remoteSum.stdout.split(' ')[0]).toBe(createHash('sha256').update(data).digest('hex'));
    });

    it('quotes the path and truncates an existing file', async () => {
      const remote = join(host.root, "odd name's $(x).txt");
      await transport.upload(Readable.from([Buffer.from('a longer first version')]), remote, { size: 22 });
      await transport.upload(Readable.from([Buffer.from('short')]), remote, { size: 5 });
      expect(await readFile(remote, 'utf8')).toBe('short');
    });

    it('fails clearly when the directory is missing or the size is wrong', async () => {
      const missing = await failure(
        transport.upload(Readable.from([Buffer.from('x')]), join(host.root, 'no-such-dir', 'f'), { size: 1 }),
      );
      expect(missing.code).toBe('upload-failed');
      expect(missing.message).toMatch(/no-such-dir\/f: Directory nonexistent|No such file/);
      expect(missing.hint).toContain('exists');

      const short = await failure(
        transport.upload(Readable.from([Buffer.from('abc')]), join(host.root, 'f'), { size: 4 }),
      );
      expect(short.code).toBe('upload-size-mismatch');
    });
  });

  describe('connect and HTTP over the transport', () => {
    let server: HostHttpServer;
    beforeAll(async () => {
      server = await startHttpServerOnHost(host);
    });
    afterAll(() => server?.stop());

    it('reaches a server on 127.0.0.1 inside the namespace', async () => {
      const health = await httpRequest(transport, { port: server.port, path: '/health', timeoutMs: 5_000 });
      expect(health.status).toBe(200);
      expect(health.headers['x-served-by']).toBe('demo-host');
      expect(JSON.parse(health.body)).toMatchObject({ method: 'GET', url: '/health' });

      const posted = await httpRequest(transport, {
        port: server.port,
        path: '/v1/embeddings',
        json: { input: ['hello'] },
        timeoutMs: 5_000,
      });
      const echoed = JSON.parse(posted.body) as {
        method: string;
        headers: Record<string, string>;
        body: string;
      };
      expect(echoed.method).toBe('POST');
      expect(echoed.headers['content-type']).toBe('application/json');
      expect(JSON.parse(echoed.body)).toEqual({ input: ['hello'] });

      const missing = await httpRequest(transport, { port: server.port, path: '/missing', timeoutMs: 5_000 });
      expect(missing.status).toBe(404);
    });

    it('streams a response as it arrives', async () => {
      const response = await httpRequestStream(transport, {
        port: server.port,
        path: '/stream',
        timeoutMs: 5_000,
      });
      expect(response.status).toBe(200);
      let text = '';
      for await (const chunk of response.body) text += String(chunk);
      expect(text).toBe('data: 0\n\ndata: 1\n\ndata: 2\n\n');
    });

    it('runs many requests over one SSH connection', async () => {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, n) =>
          httpRequest(transport, { port: server.port, path: `/n/${n}`, timeoutMs: 10_000 }),
        ),
      );
      expect(results.map((r) => JSON.parse(r.body).url)).toEqual(
        Array.from({ length: 20 }, (_, n) => `/n/${n}`),
      );
    });

    it('says when nothing listens on the port', async () => {
      const error = await failure(transport.connect(1));
      expect(error.code).toBe('host-port-unreachable');
    });
  });

  describe('host key verification', () => {
    const sshdLogSince = async (offset: number) =>
      (await readFile(host.sshdLogFile as string, 'utf8')).slice(offset);
    const sshdLogSize = async () => (await readFile(host.sshdLogFile as string, 'utf8')).length;

    it('refuses an unknown host key before authenticating, and leaves known_hosts alone', async () => {
      const knownHostsFile = join(work, 'empty_known_hosts');
      await writeFile(knownHostsFile, '# nothing known yet\n');
      const logOffset = await sshdLogSize();
      const error = await failure(
        connectSsh({ address: host.address as string, identityFile: host.identityFile, knownHostsFile }),
      );
      expect(error.code).toBe('host-key-unknown');
      expect(error.kind).toBe('operation');
      expect(error.message).toContain(fingerprintSha256(hostKey));
      expect(error.hint).toContain('--accept-new-host-key');
      expect(error.hint).toContain('ssh-keyscan');
      expect(await readFile(knownHostsFile, 'utf8')).toBe('# nothing known yet\n');
      // sshd saw the connection end during key exchange: no user ever presented a key.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const log = await sshdLogSince(logOffset);
      expect(log).not.toMatch(/publickey|authenticating user|Accepted/);
    });

    it('accepts and records a new host key with acceptNewHostKey, then matches it', async () => {
      const knownHostsFile = join(work, 'accept_known_hosts');
      const events: ProgressEvent[] = [];
      const accepted = await connectSsh({
        address: host.address as string,
        identityFile: host.identityFile,
        knownHostsFile,
        acceptNewHostKey: true,
        onProgress: (event) => events.push(event),
      });
      expect((await accepted.exec('echo ok')).stdout).toBe('ok');
      await accepted.close();
      expect(await readFile(knownHostsFile, 'utf8')).toBe(
        `${innerAddress} ${hostKey.type} ${hostKey.base64}\n`,
      );
      expect(events.find((event) => event.step === 'host.host-key')?.detail).toContain(
        fingerprintSha256(hostKey),
      );

      const again = await connectSsh({
        address: host.address as string,
        identityFile: host.identityFile,
        knownHostsFile,
      });
      await again.close();
      // OpenSSH reads the entry we wrote.
      const found = await execa('ssh-keygen', ['-F', innerAddress, '-f', knownHostsFile]);
      expect(found.stdout).toContain(hostKey.base64);
    });

    it('always refuses a changed host key, naming the file and line of the old one', async () => {
      const otherKey = join(work, 'other_key');
      await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', otherKey]);
      const [type, base64] = (await readFile(`${otherKey}.pub`, 'utf8')).split(' ');
      const knownHostsFile = join(work, 'changed_known_hosts');
      const content = `# an admin's file\n${innerAddress} ${type} ${base64}\n`;
      await writeFile(knownHostsFile, content);
      const error = await failure(
        connectSsh({
          address: host.address as string,
          identityFile: host.identityFile,
          knownHostsFile,
          acceptNewHostKey: true,
        }),
      );
      expect(error.code).toBe('host-key-changed');
      expect(error.message).toContain(`${knownHostsFile} line 2`);
      expect(error.message).toContain(fingerprintSha256(hostKey));
      expect(error.hint).toContain('ssh-keygen -R');
      expect(await readFile(knownHostsFile, 'utf8')).toBe(content);
    });

    it('refuses a host whose known key type it no longer presents', async () => {
      const rsaKey = join(work, 'rsa_key');
      await execa('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-f', rsaKey]);
      const knownHostsFile = join(work, 'rsa_known_hosts');
      await writeFile(
        knownHostsFile,
        `${innerAddress} ${(await readFile(`${rsaKey}.pub`, 'utf8')).trim()}\n`,
      );
      const error = await failure(
        connectSsh({
          address: host.address as string,
          identityFile: host.identityFile,
          knownHostsFile,
          acceptNewHostKey: true,
        }),
      );
      expect(error.code).toBe('host-key-changed');
    });

    it('refuses a revoked host key', async () => {
      const knownHostsFile = join(work, 'revoked_known_hosts');
      await copyFile(host.knownHostsFile as string, knownHostsFile);
      await writeFile(knownHostsFile, `@revoked * ${hostKey.type} ${hostKey.base64}\n`, { flag: 'a' });
      const error = await failure(
        connectSsh({ address: host.address as string, identityFile: host.identityFile, knownHostsFile }),
      );
      expect(error.code).toBe('host-key-revoked');
    });
  });

  describe('connection failures', () => {
    it('says the login was refused for a key the host does not know', async () => {
      const stranger = join(work, 'stranger');
      await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger]);
      const error = await failure(
        connectSsh({
          address: host.address as string,
          identityFile: stranger,
          knownHostsFile: host.knownHostsFile,
        }),
      );
      expect(error.code).toBe('auth-failed');
      expect(error.message).toContain(stranger);
    });

    it('explains an encrypted identity without a passphrase', async () => {
      const locked = join(work, 'locked');
      await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret', '-f', locked]);
      const error = await failure(connectSsh({ address: host.address as string, identityFile: locked }));
      expect(error.code).toBe('identity-encrypted');
      expect(error.hint).toContain('ssh-add');
    });

    it('tells a closed port from an unreachable host', async () => {
      const refused = await failure(
        connectSsh({
          address: `root@${innerAddress}:2`,
          identityFile: host.identityFile,
          knownHostsFile: host.knownHostsFile,
        }),
      );
      expect(refused.code).toBe('host-connection-refused');

      // Replies from the namespace vanish: to us the host is silent, as behind a dropping firewall.
      const hostSide = innerAddress.replace(/\.2$/, '.1');
      await host.runOnHost(['ip', 'route', 'add', 'blackhole', `${hostSide}/32`]);
      try {
        const started = Date.now();
        const silent = await failure(
          connectSsh({
            address: host.address as string,
            identityFile: host.identityFile,
            knownHostsFile: host.knownHostsFile,
            connectTimeoutMs: 1_000,
          }),
        );
        expect(silent.code).toBe('host-unreachable');
        expect(silent.message).toContain('1 s');
        expect(Date.now() - started).toBeLessThan(5_000);
      } finally {
        await host.runOnHost(['ip', 'route', 'del', 'blackhole', `${hostSide}/32`]);
      }
    });

    it('aborts a connection attempt', async () => {
      const controller = new AbortController();
      controller.abort();
      await expect(
        connectSsh({ address: host.address as string, signal: controller.signal }),
      ).rejects.toThrow(/abort/i);
    });
  });
});

describe.skipIf(!requirement.ok)('demo host lifecycle', () => {
  it('sweeps a stale namespace of a crashed run, and tears down twice without error', async () => {
    const work = await mkdtemp(join(tmpdir(), 'apertus-host-life-'));
    // A pid that is surely gone: a process that ran and exited.
    const dead = await execa('sh', ['-c', 'echo $$']);
    const stale = `apertus-${dead.stdout.trim()}-0`;
    await execa('ip', ['netns', 'add', stale]);
    let host: DemoHost | undefined;
    try {
      host = await createDemoHost({ workDir: work });
      expect(host.mode).toBe('netns');
      expect((await execa('ip', ['netns', 'list'])).stdout).not.toContain(stale);
      const transport = await connectDemoHost(host);
      expect((await transport.exec('echo up')).stdout).toBe('up');
      await transport.close();

      const namespace = host.namespace as string;
      await host.teardown();
      await host.teardown();
      expect((await execa('ip', ['netns', 'list'])).stdout).not.toContain(namespace);
      await expect(stat(host.root)).rejects.toThrow();
    } finally {
      await host?.teardown();
      await execa('ip', ['netns', 'del', stale], { reject: false });
      await rm(work, { recursive: true, force: true });
    }
  });

  it('keeps a long upload going through re-keys, without asking known_hosts twice', async () => {
    const work = await mkdtemp(join(tmpdir(), 'apertus-host-rekey-'));
    // OpenSSH re-keys every 1-4 GB by default; 1 MiB makes a 16 MiB upload re-key 16 times.
    const host = await createDemoHost({ workDir: work, sshdConfig: ['RekeyLimit 1M'] });
    try {
      const knownHostsFile = join(work, 'fresh_known_hosts');
      const transport = await connectSsh({
        address: host.address as string,
        identityFile: host.identityFile,
        knownHostsFile,
        acceptNewHostKey: true,
      });
      const data = randomBytes(16 * 1024 * 1024);
      const remote = join(host.root, 'rekeyed.bin');
      await transport.upload(Readable.from([data]), remote, { size: data.length });
      const sum = await transport.exec(shellQuote(['sha256sum', remote]));
      expect(sum.stdout.split(' ')[0]).toBe(createHash('sha256').update(data).digest('hex'));
      await transport.close();
      expect((await readFile(knownHostsFile, 'utf8')).trim().split('\n')).toHaveLength(1);
    } finally {
      await host.teardown();
      await rm(work, { recursive: true, force: true });
    }
  });

  it('falls back to sshd on 127.0.0.1 and says so', async () => {
    const work = await mkdtemp(join(tmpdir(), 'apertus-host-loop-'));
    const host = await createDemoHost({ workDir: work, mode: 'loopback-sshd' });
    try {
      expect(host.mode).toBe('loopback-sshd');
      expect(host.address).toMatch(/^root@127\.0\.0\.1:\d+$/);
      expect(host.reason).toContain('127.0.0.1');
      const transport = await connectDemoHost(host);
      expect((await transport.exec('echo loop')).stdout).toBe('loop');
      await transport.close();
    } finally {
      await host.teardown();
      await rm(work, { recursive: true, force: true });
    }
  });
});
