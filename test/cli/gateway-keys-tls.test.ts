/**
 * `apertus tls ca|cert` and `apertus keys api create|list|revoke` in-process, on real files
 * (openssl, a --local root), and against a running gateway that reads the key file they
 * write: a new key works at once, a revoked one is refused without a restart, and the key
 * itself is in no file under the root.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayDataPaths } from '../../src/core/runtimes/gateway/gateway-service.js';
import { type Gateway, startGateway } from '../helpers/gateway-stack.js';
import { runCli } from '../helpers/run-cli.js';

const execFileAsync = promisify(execFile);
let dir: string;
let gateway: Gateway | undefined;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'apertus-gateway-cli-'));
});
afterAll(async () => {
  await gateway?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

describe('apertus tls', () => {
  it('makes a CA and a host certificate that openssl verifies, keys 0600, never overwriting', async () => {
    const ca = await runCli(['tls', 'ca', '--out', dir, '--json']);
    expect(ca.exitCode, ca.stdout).toBe(0);
    const cert = await runCli([
      'tls',
      'cert',
      '--ca',
      dir,
      '--name',
      'localhost',
      '--name',
      '127.0.0.1',
      '--out',
      path.join(dir, 'host'),
      '--json',
    ]);
    expect(cert.exitCode, cert.stdout).toBe(0);
    expect(JSON.parse(cert.stdout)).toMatchObject({ names: ['localhost', '127.0.0.1'] });
    for (const key of ['ca.key', 'host.key'])
      expect((await stat(path.join(dir, key))).mode & 0o777).toBe(0o600);
    const verified = await execFileAsync('openssl', [
      'verify',
      '-CAfile',
      path.join(dir, 'ca.pem'),
      path.join(dir, 'host.pem'),
    ]);
    expect(verified.stdout).toContain(': OK');
    const san = await execFileAsync('openssl', [
      'x509',
      '-in',
      path.join(dir, 'host.pem'),
      '-noout',
      '-ext',
      'subjectAltName',
    ]);
    expect(san.stdout).toContain('DNS:localhost, IP Address:127.0.0.1');

    const keyBefore = await readFile(path.join(dir, 'ca.key'));
    const again = await runCli(['tls', 'ca', '--out', dir, '--json']);
    expect(again.exitCode).toBe(2);
    expect(JSON.parse(again.stdout).error.code).toBe('file-exists');
    expect(await readFile(path.join(dir, 'ca.key'))).toEqual(keyBefore);
    const badName = await runCli([
      'tls',
      'cert',
      '--ca',
      dir,
      '--name',
      'x;rm -rf /',
      '--out',
      path.join(dir, 'bad'),
      '--json',
    ]);
    expect(badName.exitCode).toBe(2);
    expect(JSON.parse(badName.stdout).error.hint).toContain('host names');
  });
});

describe('apertus keys api', () => {
  it('creates, lists and revokes keys; the running gateway follows without a restart', async () => {
    const root = path.join(dir, 'root');
    const keysFile = gatewayDataPaths(root).keys;
    const none = await runCli(['keys', 'api', 'create', 'alice', '--local', '--root', root, '--json']);
    expect(JSON.parse(none.stdout).error.code).toBe('host-root-missing');
    await mkdir(root, { mode: 0o700 });
    const created = await runCli([
      'keys',
      'api',
      'create',
      'alice',
      '--scope',
      'chat,rag:docs',
      '--local',
      '--root',
      root,
      '--json',
    ]);
    expect(created.exitCode, created.stdout + created.stderr).toBe(0);
    const alice = JSON.parse(created.stdout);
    expect(alice).toMatchObject({
      name: 'alice',
      scopes: ['chat', 'rag:docs'],
      revoked: null,
      file: keysFile,
    });
    expect(alice.key).toMatch(/^apk-[A-Za-z0-9_-]{43}$/);
    expect((await stat(keysFile)).mode & 0o777).toBe(0o600);

    gateway = await startGateway([
      ...['--insecure-http', '--keys', keysFile, '--access-log', path.join(dir, 'access.log')],
      ...['--upstream', 'm=http://127.0.0.1:9', '--rag', 'docs=http://127.0.0.1:9'],
    ]);
    const ok = await fetch(`${gateway.url}/v1/models`, { headers: { authorization: `Bearer ${alice.key}` } });
    expect(ok.status).toBe(200);
    expect((await ok.json()).data.map((m: { id: string }) => m.id)).toEqual(['m', 'rag:docs']);

    const listed = await runCli(['keys', 'api', 'list', '--local', '--root', root, '--json']);
    expect(JSON.parse(listed.stdout).keys).toEqual([
      expect.objectContaining({ name: 'alice', fingerprint: alice.fingerprint, revoked: null }),
    ]);
    const twice = await runCli(['keys', 'api', 'create', 'alice', '--local', '--root', root, '--json']);
    expect(twice.exitCode).toBe(2);
    expect(JSON.parse(twice.stdout).error.code).toBe('api-key-exists');

    const revoked = await runCli(['keys', 'api', 'revoke', 'alice', '--local', '--root', root, '--json']);
    expect(JSON.parse(revoked.stdout)).toMatchObject({
      name: 'alice',
      changed: true,
      revoked: expect.any(String),
    });
    const refused = await fetch(`${gateway.url}/v1/models`, {
      headers: { authorization: `Bearer ${alice.key}` },
    });
    expect(refused.status).toBe(401);
    expect((await refused.json()).error).toMatchObject({
      code: 'invalid_api_key',
      message: expect.stringContaining('revoked'),
    });
    const revokedAgain = await runCli([
      'keys',
      'api',
      'revoke',
      'alice',
      '--local',
      '--root',
      root,
      '--json',
    ]);
    expect(JSON.parse(revokedAgain.stdout)).toMatchObject({ changed: false, record: null });

    // Both changes are signed records of the host's audit log, which verifies.
    expect(alice.record.seq).toBe(1);
    expect(JSON.parse(revoked.stdout).record.seq).toBe(2);
    const log = (await readFile(path.join(root, 'audit.log'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(log.map((r) => [r.method, r.endpoint])).toEqual([
      ['API-KEY-CREATE', 'alice'],
      ['API-KEY-REVOKE', 'alice'],
    ]);
    const audit = await runCli(['audit', 'verify', '--installs', '--local', '--root', root, '--json']);
    expect(audit.exitCode, audit.stdout).toBe(0);

    for (const file of [...(await filesUnder(root)), ...(await filesUnder(dir))])
      expect(await readFile(file, 'latin1'), file).not.toContain(alice.key);

    for (const bad of [
      ['create', 'Bad Name'],
      ['create', 'bob', '--scope', 'root'],
      ['revoke', 'nobody'],
    ]) {
      const run = await runCli(['keys', 'api', ...bad, '--local', '--root', root, '--json']);
      expect(run.exitCode, bad.join(' ')).toBe(2);
      expect(JSON.parse(run.stdout).error.hint).toEqual(expect.any(String));
    }
  });
});
