import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createKeyPair,
  formatSecretKey,
  generateKeyPair,
  parseSecretKey,
  readPublicKey,
  readSecretKey,
} from '../../src/core/sign/keys.js';
import { sign, verifySignature } from '../../src/core/sign/minisign.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'apertus-sign-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('keys', () => {
  it('writes the secret key with mode 0600 and refuses to overwrite either file', async () => {
    const pair = await generateKeyPair(join(dir, 'keys', 'release'));
    expect((await stat(pair.secretKeyPath)).mode & 0o777).toBe(0o600);
    const pub = await readFile(pair.publicKeyPath, 'utf8');
    expect(pub).toBe(`untrusted comment: minisign public key ${pair.keyId}\n${pair.publicKey}\n`);
    expect(pair.keyId).toMatch(/^[0-9A-F]{16}$/);

    const before = await readFile(pair.secretKeyPath, 'utf8');
    await expect(generateKeyPair(join(dir, 'keys', 'release'))).rejects.toMatchObject({ code: 'key-exists' });
    expect(await readFile(pair.secretKeyPath, 'utf8')).toBe(before);

    // Only the .pub exists: the new .key must not be left behind.
    await writeFile(join(dir, 'other.pub'), 'x');
    await expect(generateKeyPair(join(dir, 'other'))).rejects.toMatchObject({ code: 'key-exists' });
    await expect(stat(join(dir, 'other.key'))).rejects.toThrow();
  });

  it('reads back what it writes', async () => {
    const pair = await generateKeyPair(join(dir, 'k'));
    const secret = await readSecretKey(pair.secretKeyPath);
    const pub = await readPublicKey(pair.publicKeyPath);
    expect(secret.keyId).toBe(pair.keyId);
    expect(secret.publicKey.key.equals(pub.key)).toBe(true);
  });

  it('rejects a damaged secret key and a password-protected one', async () => {
    const { secretKey } = createKeyPair();
    const text = formatSecretKey(secretKey);
    const lines = text.split('\n');
    const body = Buffer.from(lines[1] ?? '', 'base64');
    body[70] = (body[70] ?? 0) ^ 1; // inside the secret key bytes
    expect(() => parseSecretKey(`${lines[0]}\n${body.toString('base64')}\n`)).toThrow(/checksum/);

    await execa('minisign', ['-G', '-p', join(dir, 'enc.pub'), '-s', join(dir, 'enc.key')], {
      input: 'pw\npw\n',
    });
    await expect(readSecretKey(join(dir, 'enc.key'))).rejects.toMatchObject({ code: 'key-encrypted' });
  });
});

describe('signatures', () => {
  it('verifies its own signatures and rejects tampering, other keys and altered trusted comments', () => {
    const { publicKey, secretKey } = createKeyPair();
    const other = createKeyPair();
    const data = Buffer.from('abc\n');
    const signature = sign(data, secretKey, { trustedComment: 'bundle:x' });
    expect(verifySignature(data, signature, publicKey)).toMatchObject({
      valid: true,
      trustedComment: 'bundle:x',
    });
    expect(verifySignature(Buffer.from('abd\n'), signature, publicKey)).toMatchObject({ valid: false });
    expect(verifySignature(data, signature, other.publicKey)).toMatchObject({
      valid: false,
      keyId: publicKey.keyId,
    });
    const altered = signature.replace('trusted comment: bundle:x', 'trusted comment: bundle:y');
    expect(verifySignature(data, altered, publicKey)).toMatchObject({
      valid: false,
      reason: /trusted comment/,
    });
    expect(verifySignature(data, 'garbage', publicKey)).toMatchObject({ valid: false });
    // Deterministic: Ed25519 without a timestamp gives the same bytes.
    expect(sign(data, secretKey, { trustedComment: 'bundle:x' })).toBe(signature);
  });

  it('is accepted by minisign -Vm (prehashed), and reads what minisign signs with our key', async () => {
    const pair = await generateKeyPair(join(dir, 'ours'));
    const file = join(dir, 'SHA256SUMS');
    await writeFile(file, 'aa  bb\n');
    const secret = await readSecretKey(pair.secretKeyPath);
    await writeFile(`${file}.minisig`, sign(await readFile(file), secret));
    const checked = await execa('minisign', ['-Vm', file, '-p', pair.publicKeyPath]);
    expect(checked.stdout).toContain('Signature and comment signature verified');
    await execa('minisign', ['-V', '-H', '-m', file, '-P', pair.publicKey]);

    // minisign signs with the secret key file we wrote.
    await rm(`${file}.minisig`);
    await execa('minisign', ['-S', '-s', pair.secretKeyPath, '-m', file, '-t', 'from minisign']);
    const theirs = await readFile(`${file}.minisig`, 'utf8');
    const pub = await readPublicKey(pair.publicKeyPath);
    expect(verifySignature(await readFile(file), theirs, pub)).toMatchObject({
      valid: true,
      algorithm: 'ED',
      trustedComment: 'from minisign',
    });
  });

  it('uses keys made by minisign -G -W, and verifies its legacy signatures', async () => {
    await execa('minisign', ['-G', '-W', '-p', join(dir, 'm.pub'), '-s', join(dir, 'm.key')]);
    const secret = await readSecretKey(join(dir, 'm.key'));
    const pub = await readPublicKey(join(dir, 'm.pub'));
    expect(secret.keyId).toBe(pub.keyId);
    const file = join(dir, 'data');
    await writeFile(file, 'payload');
    await writeFile(`${file}.minisig`, sign(await readFile(file), secret));
    await execa('minisign', ['-Vm', file, '-p', join(dir, 'm.pub')]);

    await execa('minisign', [
      '-S',
      '-l',
      '-s',
      join(dir, 'm.key'),
      '-m',
      file,
      '-x',
      join(dir, 'legacy.minisig'),
    ]);
    const legacy = await readFile(join(dir, 'legacy.minisig'), 'utf8');
    expect(verifySignature(Buffer.from('payload'), legacy, pub)).toMatchObject({
      valid: true,
      algorithm: 'Ed',
    });
    expect(verifySignature(Buffer.from('payloaD'), legacy, pub)).toMatchObject({ valid: false });
  });
});
