import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  appendKnownHost,
  checkHostKey,
  fingerprintSha256,
  formatKnownHostsLine,
  hostFieldMatches,
  knownKeyTypes,
  type PublicKey,
  parseKnownHosts,
  publicKeyFromBlob,
  readKnownHosts,
} from '../../src/core/host/known-hosts.js';

let dir: string;
let keyA: PublicKey;
let keyB: PublicKey;
let rsaKey: PublicKey;

async function makeKey(name: string, type: 'ed25519' | 'rsa'): Promise<PublicKey> {
  const file = join(dir, name);
  await execa('ssh-keygen', [
    '-q',
    '-t',
    type,
    ...(type === 'rsa' ? ['-b', '2048'] : []),
    '-N',
    '',
    '-f',
    file,
  ]);
  const [keyType = '', base64 = ''] = (await readFile(`${file}.pub`, 'utf8')).split(' ');
  return { type: keyType, base64 };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'apertus-known-hosts-'));
  [keyA, keyB, rsaKey] = await Promise.all([
    makeKey('a', 'ed25519'),
    makeKey('b', 'ed25519'),
    makeKey('r', 'rsa'),
  ]);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const line = (hosts: string, key: PublicKey) => `${hosts} ${key.type} ${key.base64}`;

describe('known_hosts matching', () => {
  it('matches plain names, [host]:port, comma lists, wildcards and negation like ssh', () => {
    expect(hostFieldMatches('10.0.0.5', '10.0.0.5', 22)).toBe(true);
    expect(hostFieldMatches('10.0.0.5', '10.0.0.5', 2222)).toBe(false);
    expect(hostFieldMatches('[10.0.0.5]:2222', '10.0.0.5', 2222)).toBe(true);
    expect(hostFieldMatches('[10.0.0.5]:2222', '10.0.0.5', 22)).toBe(false);
    expect(hostFieldMatches('gpu-01,10.0.0.5', '10.0.0.5', 22)).toBe(true);
    expect(hostFieldMatches('GPU-01.Lab', 'gpu-01.lab', 22)).toBe(true);
    expect(hostFieldMatches('*.lab,!gpu-09.lab', 'gpu-01.lab', 22)).toBe(true);
    expect(hostFieldMatches('*.lab,!gpu-09.lab', 'gpu-09.lab', 22)).toBe(false);
    expect(hostFieldMatches('gpu-0?.lab', 'gpu-07.lab', 22)).toBe(true);
    expect(hostFieldMatches('[fe80::1]:2222', 'fe80::1', 2222)).toBe(true);
  });

  it('decides match, unknown, changed and revoked', () => {
    const entries = parseKnownHosts(
      [
        '# comment line',
        '',
        line('10.0.0.5', keyA),
        line('[10.0.0.5]:2222', keyA),
        `@revoked * ${keyB.type} ${keyB.base64}`,
        line('10.0.0.6', keyA),
        `@cert-authority *.lab ${rsaKey.type} ${rsaKey.base64}`,
        'garbage',
      ].join('\n'),
    );
    expect(entries.map((entry) => entry.line)).toEqual([3, 4, 5, 6, 7]);

    expect(checkHostKey(entries, '10.0.0.5', 22, keyA)).toMatchObject({
      status: 'match',
      entry: { line: 3 },
    });
    expect(checkHostKey(entries, '10.0.0.5', 2222, keyA)).toMatchObject({
      status: 'match',
      entry: { line: 4 },
    });
    expect(checkHostKey(entries, '10.0.0.7', 22, keyA)).toEqual({ status: 'unknown', knownTypes: [] });
    // Another key of the same type: changed, pointing at the line of the old one.
    const changed = checkHostKey(entries, '10.0.0.6', 22, rsaKey);
    expect(changed).toMatchObject({ status: 'changed', entry: { line: 6 }, knownTypes: ['ssh-ed25519'] });
    // A revoked key is refused everywhere its pattern reaches, even where it would be new.
    expect(checkHostKey(entries, '10.0.0.7', 22, keyB)).toMatchObject({
      status: 'revoked',
      entry: { line: 5 },
    });
    expect(checkHostKey(entries, '10.0.0.5', 22, keyB).status).toBe('revoked');
    // cert-authority lines never vouch for a plain key.
    expect(checkHostKey(entries, 'gpu-01.lab', 22, rsaKey).status).toBe('unknown');
    expect(knownKeyTypes(entries, '10.0.0.5', 22)).toEqual(['ssh-ed25519']);
  });

  it('matches hashed entries written by ssh-keygen -H', async () => {
    const file = join(dir, 'hashed');
    await writeFile(file, `${line('10.0.0.5', keyA)}\n${line('[169.254.7.2]:2222', keyA)}\n`);
    await execa('ssh-keygen', ['-H', '-f', file]);
    const text = await readFile(file, 'utf8');
    expect(text).not.toContain('10.0.0.5');
    expect(text).toMatch(/^\|1\|/);

    const entries = await readKnownHosts(file);
    expect(entries).toHaveLength(2);
    expect(checkHostKey(entries, '10.0.0.5', 22, keyA).status).toBe('match');
    expect(checkHostKey(entries, '169.254.7.2', 2222, keyA).status).toBe('match');
    expect(checkHostKey(entries, '169.254.7.2', 22, keyA).status).toBe('unknown');
    expect(checkHostKey(entries, '10.0.0.5', 22, keyB).status).toBe('changed');
  });

  it('reads a missing file as empty', async () => {
    expect(await readKnownHosts(join(dir, 'does-not-exist'))).toEqual([]);
  });
});

describe('appending to known_hosts', () => {
  it('appends [host]:port off port 22, plain on 22, and ssh-keygen finds both', async () => {
    const file = join(dir, 'sub', 'known_hosts');
    expect(await appendKnownHost(file, '169.254.9.2', 22, keyA)).toBe(1);
    expect(await appendKnownHost(file, '127.0.0.1', 2222, keyB)).toBe(2);
    expect(await readFile(file, 'utf8')).toBe(
      `${line('169.254.9.2', keyA)}\n${line('[127.0.0.1]:2222', keyB)}\n`,
    );
    // OpenSSH itself agrees on the format.
    const found = await execa('ssh-keygen', ['-F', '[127.0.0.1]:2222', '-f', file]);
    expect(found.stdout).toContain(keyB.base64);
  });

  it('starts a new line when the file lacks a final newline', async () => {
    const file = join(dir, 'no-newline');
    await writeFile(file, line('10.0.0.1', keyA));
    expect(await appendKnownHost(file, '10.0.0.2', 22, keyB)).toBe(2);
    const entries = await readKnownHosts(file);
    expect(entries.map((entry) => entry.hosts)).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  it('writes hashed names that ssh-keygen -F finds', async () => {
    const file = join(dir, 'hashed-append');
    await writeFile(file, `${formatKnownHostsLine('10.1.2.3', 2200, keyA, { hash: true })}\n`);
    expect(await readFile(file, 'utf8')).toMatch(/^\|1\|[^ ]+ ssh-ed25519 /);
    const found = await execa('ssh-keygen', ['-F', '[10.1.2.3]:2200', '-f', file]);
    expect(found.stdout).toContain(keyA.base64);
  });
});

describe('key helpers', () => {
  it('prints the SHA256 fingerprint ssh-keygen -l prints', async () => {
    const listed = await execa('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(dir, 'a.pub')]);
    expect(listed.stdout.split(' ')[1]).toBe(fingerprintSha256(keyA));
  });

  it('reads the key type from the wire-format blob', () => {
    expect(publicKeyFromBlob(Buffer.from(rsaKey.base64, 'base64'))).toEqual(rsaKey);
    expect(() => publicKeyFromBlob(Buffer.from([0, 0]))).toThrow();
  });
});
