/**
 * Ed25519 keys in minisign's file formats, so keys made here work with Debian's
 * `minisign` and the other way round. Secret keys are stored unencrypted, as
 * `minisign -G -W` writes them: bundles are signed in CI, where nobody types a password.
 */
import { createPrivateKey, createPublicKey, type KeyObject, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ApertusError } from '../errors.js';
import { blake2b } from './blake2b.js';

export interface PublicKey {
  /** minisign's key id: the 8 key-number bytes read as a little-endian integer, in hex ('EE5E9050339018CE'). */
  keyId: string;
  keyNum: Buffer;
  /** Raw 32-byte Ed25519 public key. */
  key: Buffer;
}

export interface SecretKey {
  keyId: string;
  keyNum: Buffer;
  /** Raw 32-byte Ed25519 seed. */
  seed: Buffer;
  publicKey: PublicKey;
}

export interface GeneratedKeyPair {
  keyId: string;
  publicKeyPath: string;
  secretKeyPath: string;
  /** The public key as one base64 line, what `minisign -P` takes. */
  publicKey: string;
}

const SIG_ALG = Buffer.from('Ed');
const CHK_ALG = Buffer.from('B2');
const KDF_NONE = Buffer.from([0, 0]);
const KDF_SCRYPT = Buffer.from('Sc');
/** sig_alg(2) kdf_alg(2) chk_alg(2) salt(32) opslimit(8) memlimit(8) keynum(8) sk(64) chk(32). */
const SECRET_KEY_BYTES = 158;
const PUBLIC_KEY_BYTES = 42;
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const UNTRUSTED_PREFIX = 'untrusted comment: ';

export function keyIdOf(keyNum: Buffer): string {
  return Buffer.from(keyNum).reverse().toString('hex').toUpperCase();
}

/** A fresh key pair in memory; `generateKeyPair` writes one to files. */
export function createKeyPair(): { publicKey: PublicKey; secretKey: SecretKey } {
  const seed = randomBytes(32);
  const keyNum = randomBytes(8);
  const secretKey = secretKeyFromSeed(seed, keyNum);
  return { publicKey: secretKey.publicKey, secretKey };
}

function secretKeyFromSeed(seed: Buffer, keyNum: Buffer): SecretKey {
  const publicDer = createPublicKey(privateKeyObject(seed)).export({ format: 'der', type: 'spki' });
  const key = Buffer.from(publicDer.subarray(publicDer.length - 32));
  const keyId = keyIdOf(keyNum);
  return { keyId, keyNum, seed, publicKey: { keyId, keyNum, key } };
}

export function privateKeyObject(seed: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

export function publicKeyObject(publicKey: PublicKey): KeyObject {
  return createPublicKey({
    key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey.key]),
    format: 'der',
    type: 'spki',
  });
}

/** The public key as one base64 line ("RW..."), what `minisign -P` takes. */
export function publicKeyBase64(publicKey: PublicKey): string {
  return Buffer.concat([SIG_ALG, publicKey.keyNum, publicKey.key]).toString('base64');
}

export function formatPublicKey(publicKey: PublicKey): string {
  return `${UNTRUSTED_PREFIX}minisign public key ${publicKey.keyId}\n${publicKeyBase64(publicKey)}\n`;
}

export function formatSecretKey(secretKey: SecretKey): string {
  const sk = Buffer.concat([secretKey.seed, secretKey.publicKey.key]);
  const body = Buffer.concat([
    SIG_ALG,
    KDF_NONE,
    CHK_ALG,
    Buffer.alloc(32 + 8 + 8),
    secretKey.keyNum,
    sk,
    keyChecksum(secretKey.keyNum, sk),
  ]);
  return `${UNTRUSTED_PREFIX}minisign unencrypted secret key ${secretKey.keyId}\n${body.toString('base64')}\n`;
}

/** minisign's checksum: BLAKE2b-256 of sig_alg || keynum || sk. */
function keyChecksum(keyNum: Buffer, sk: Buffer): Buffer {
  return blake2b(Buffer.concat([SIG_ALG, keyNum, sk]), 32);
}

/** A public key file's text, or the bare base64 line `minisign -P` takes. */
export function parsePublicKey(text: string, source = 'the public key'): PublicKey {
  const bytes = decodeKeyLine(text, source, 'public');
  if (bytes?.length !== PUBLIC_KEY_BYTES || !bytes.subarray(0, 2).equals(SIG_ALG)) {
    throw badKey(source, 'public', 'it is not a minisign Ed25519 public key');
  }
  const keyNum = Buffer.from(bytes.subarray(2, 10));
  return { keyId: keyIdOf(keyNum), keyNum, key: Buffer.from(bytes.subarray(10)) };
}

export function parseSecretKey(text: string, source = 'the secret key'): SecretKey {
  const bytes = decodeKeyLine(text, source, 'secret');
  if (bytes?.length !== SECRET_KEY_BYTES || !bytes.subarray(0, 2).equals(SIG_ALG)) {
    throw badKey(source, 'secret', 'it is not a minisign Ed25519 secret key');
  }
  const kdf = bytes.subarray(2, 4);
  if (kdf.equals(KDF_SCRYPT)) {
    throw new ApertusError(
      'key-encrypted',
      `${source} is protected by a password, which apertus does not ask for`,
      {
        hint: 'Remove the password with `minisign -C -s <key>` (enter an empty new password), or create a key with `apertus keys generate`.',
      },
    );
  }
  if (!kdf.equals(KDF_NONE) || !bytes.subarray(4, 6).equals(CHK_ALG)) {
    throw badKey(source, 'secret', 'it uses a key derivation or checksum apertus does not know');
  }
  const keyNum = Buffer.from(bytes.subarray(54, 62));
  const sk = bytes.subarray(62, 126);
  const checksum = bytes.subarray(126, 158);
  // minisign 0.11 leaves the checksum of unencrypted keys zeroed; a set one must match.
  if (!checksum.every((byte) => byte === 0) && !checksum.equals(keyChecksum(keyNum, sk))) {
    throw badKey(source, 'secret', 'its checksum does not match (the file is damaged)');
  }
  const secretKey = secretKeyFromSeed(Buffer.from(sk.subarray(0, 32)), keyNum);
  if (!secretKey.publicKey.key.equals(sk.subarray(32))) {
    throw badKey(source, 'secret', 'its public half does not match its seed (the file is damaged)');
  }
  return secretKey;
}

export async function readPublicKey(path: string): Promise<PublicKey> {
  return parsePublicKey(await readKeyFile(path, 'public'), path);
}

export async function readSecretKey(path: string): Promise<SecretKey> {
  return parseSecretKey(await readKeyFile(path, 'secret'), path);
}

/**
 * Writes `<prefix>.key` (mode 0600) and `<prefix>.pub`. Refuses to overwrite either:
 * replacing a signing key silently would orphan every bundle signed with it.
 */
export async function generateKeyPair(prefix: string): Promise<GeneratedKeyPair> {
  const secretKeyPath = `${prefix}.key`;
  const publicKeyPath = `${prefix}.pub`;
  const { publicKey, secretKey } = createKeyPair();
  await mkdir(dirname(secretKeyPath), { recursive: true });
  const secretHandle = await openNew(secretKeyPath, 0o600);
  try {
    const publicHandle = await openNew(publicKeyPath, 0o644);
    try {
      await publicHandle.writeFile(formatPublicKey(publicKey));
    } finally {
      await publicHandle.close();
    }
    await secretHandle.writeFile(formatSecretKey(secretKey));
  } catch (error) {
    await secretHandle.close();
    await rm(secretKeyPath, { force: true });
    throw error;
  }
  await secretHandle.close();
  return { keyId: publicKey.keyId, publicKeyPath, secretKeyPath, publicKey: publicKeyBase64(publicKey) };
}

async function openNew(path: string, mode: number) {
  try {
    // 'wx' creates with `mode` (umask can only remove bits) and fails if the file exists.
    return await open(path, 'wx', mode);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      throw new ApertusError('key-exists', `${path} already exists; refusing to overwrite a key`, {
        hint: 'Choose another --out prefix, or move the existing key pair away first.',
      });
    }
    throw new ApertusError('key-write-failed', `cannot create ${path}: ${(error as Error).message}`, {
      kind: 'operation',
      hint: 'Check that the directory exists and is writable.',
      cause: error,
    });
  }
}

async function readKeyFile(path: string, which: 'public' | 'secret'): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new ApertusError(
      'key-unreadable',
      `cannot read ${which} key ${path}: ${(error as Error).message}`,
      {
        hint: `Check the path; create a key pair with \`apertus keys generate --out <prefix>\`.`,
        cause: error,
      },
    );
  }
}

function decodeKeyLine(text: string, source: string, which: 'public' | 'secret'): Buffer | undefined {
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '');
  const keyLine = lines[0]?.startsWith(UNTRUSTED_PREFIX) ? lines[1] : lines[0];
  if (keyLine === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(keyLine)) {
    throw badKey(source, which, 'it has no base64 key line');
  }
  return Buffer.from(keyLine, 'base64');
}

function badKey(source: string, which: 'public' | 'secret', why: string): ApertusError {
  return new ApertusError('key-invalid', `${source} is not a usable ${which} key: ${why}`, {
    hint:
      which === 'public'
        ? 'Pass the .pub file written by `apertus keys generate` or `minisign -G`.'
        : 'Pass the .key file written by `apertus keys generate` or `minisign -G -W`.',
  });
}
