/**
 * minisign signatures (https://jedisct1.github.io/minisign/), so `minisign -Vm` checks
 * what apertus signs, with no apertus on the verifying machine.
 *
 *   untrusted comment: <text>
 *   base64(sig_alg(2) || keynum(8) || ed25519(message)(64))
 *   trusted comment: <text>
 *   base64(ed25519(signature || trusted comment)(64))
 *
 * sig_alg 'ED' signs BLAKE2b-512 of the file (what minisign writes by default since
 * 0.10); legacy 'Ed' signs the file itself. We write 'ED' and read both.
 */
import { createHash, sign as ed25519Sign, verify as ed25519Verify } from 'node:crypto';
import { ApertusError } from '../errors.js';
import { keyIdOf, type PublicKey, privateKeyObject, publicKeyObject, type SecretKey } from './keys.js';

const PREHASHED = Buffer.from('ED');
const LEGACY = Buffer.from('Ed');
const UNTRUSTED_PREFIX = 'untrusted comment: ';
const TRUSTED_PREFIX = 'trusted comment: ';
/** minisign refuses longer trusted comments. */
const MAX_TRUSTED_COMMENT = 8192 - TRUSTED_PREFIX.length;

export interface SignOptions {
  /** Signed along with the file; minisign shows it after verifying. No newlines. */
  trustedComment?: string;
  untrustedComment?: string;
}

export interface ParsedSignature {
  algorithm: 'ED' | 'Ed';
  keyId: string;
  keyNum: Buffer;
  signature: Buffer;
  untrustedComment: string;
  trustedComment: string;
  globalSignature: Buffer;
}

export type SignatureCheck =
  | { valid: true; keyId: string; trustedComment: string; algorithm: 'ED' | 'Ed' }
  | { valid: false; reason: string; keyId?: string };

/** Signs bytes held in memory (SHA256SUMS); returns the .minisig text. */
export function sign(bytes: Uint8Array, secretKey: SecretKey, options: SignOptions = {}): string {
  return signDigest(createHash('blake2b512').update(bytes).digest(), secretKey, {
    trustedComment: options.trustedComment ?? `timestamp:${unixNow()}\thashed`,
    untrustedComment: options.untrustedComment,
  });
}

function signDigest(
  digest: Buffer,
  secretKey: SecretKey,
  comments: { trustedComment: string; untrustedComment: string | undefined },
): string {
  const untrusted = comments.untrustedComment ?? 'signature from apertus secret key';
  for (const [name, text] of [
    ['trusted', comments.trustedComment],
    ['untrusted', untrusted],
  ] as const) {
    if (/[\r\n]/.test(text)) {
      throw new ApertusError('signature-bad-comment', `the ${name} comment contains a line break`, {
        hint: 'Comments in a minisign signature are one line each.',
      });
    }
  }
  if (Buffer.byteLength(comments.trustedComment) > MAX_TRUSTED_COMMENT) {
    throw new ApertusError('signature-bad-comment', 'the trusted comment is too long for minisign', {
      hint: `Keep trusted comments under ${MAX_TRUSTED_COMMENT} bytes.`,
    });
  }
  const key = privateKeyObject(secretKey.seed);
  const signature = ed25519Sign(null, digest, key);
  const globalSignature = ed25519Sign(
    null,
    Buffer.concat([signature, Buffer.from(comments.trustedComment)]),
    key,
  );
  const line = Buffer.concat([PREHASHED, secretKey.keyNum, signature]).toString('base64');
  return `${UNTRUSTED_PREFIX}${untrusted}\n${line}\n${TRUSTED_PREFIX}${comments.trustedComment}\n${globalSignature.toString('base64')}\n`;
}

/** The parts of a .minisig text, or a reason it is not one. Checks nothing cryptographic. */
export function parseSignature(text: string): ParsedSignature | { error: string } {
  const lines = text.split('\n').map((line) => line.replace(/\r$/, ''));
  const [untrusted, sigLine, trusted, globalLine] = lines;
  if (untrusted === undefined || !untrusted.startsWith(UNTRUSTED_PREFIX)) {
    return { error: 'the first line is not an untrusted comment' };
  }
  if (trusted === undefined || !trusted.startsWith(TRUSTED_PREFIX)) {
    return { error: 'the third line is not a trusted comment' };
  }
  const sig = decodeBase64(sigLine);
  const global = decodeBase64(globalLine);
  if (sig?.length !== 74 || global?.length !== 64)
    return { error: 'the signature lines are not valid base64 of the right length' };
  const algorithm = sig.subarray(0, 2);
  if (!algorithm.equals(PREHASHED) && !algorithm.equals(LEGACY)) {
    return { error: `unknown signature algorithm "${algorithm.toString('latin1')}"` };
  }
  const keyNum = Buffer.from(sig.subarray(2, 10));
  return {
    algorithm: algorithm.equals(PREHASHED) ? 'ED' : 'Ed',
    keyId: keyIdOf(keyNum),
    keyNum,
    signature: Buffer.from(sig.subarray(10)),
    untrustedComment: untrusted.slice(UNTRUSTED_PREFIX.length),
    trustedComment: trusted.slice(TRUSTED_PREFIX.length),
    globalSignature: global,
  };
}

/** Checks a .minisig text over `bytes`. Returns data; a bad signature is not an exception. */
export function verifySignature(
  bytes: Uint8Array,
  signatureText: string,
  publicKey: PublicKey,
): SignatureCheck {
  const parsed = parseSignature(signatureText);
  if ('error' in parsed) return { valid: false, reason: `not a minisign signature: ${parsed.error}` };
  if (!parsed.keyNum.equals(publicKey.keyNum)) {
    return {
      valid: false,
      keyId: parsed.keyId,
      reason: `signed with key ${parsed.keyId}, not with the given key ${publicKey.keyId}`,
    };
  }
  const key = publicKeyObject(publicKey);
  const message = parsed.algorithm === 'ED' ? createHash('blake2b512').update(bytes).digest() : bytes;
  if (!ed25519Verify(null, message, key, parsed.signature)) {
    return { valid: false, keyId: parsed.keyId, reason: 'the signature does not match the signed file' };
  }
  const global = Buffer.concat([parsed.signature, Buffer.from(parsed.trustedComment)]);
  if (!ed25519Verify(null, global, key, parsed.globalSignature)) {
    return { valid: false, keyId: parsed.keyId, reason: 'the trusted comment was altered' };
  }
  return {
    valid: true,
    keyId: parsed.keyId,
    trustedComment: parsed.trustedComment,
    algorithm: parsed.algorithm,
  };
}

function decodeBase64(line: string | undefined): Buffer | undefined {
  if (line === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(line.trim())) return undefined;
  return Buffer.from(line.trim(), 'base64');
}

function unixNow(): number {
  return Math.floor(Date.now() / 1000);
}
