/**
 * Ed25519 signatures over audit data, by a host's own key (minisign key files, so the
 * public half can be checked with the same tools as bundle keys). Each kind of signed
 * message starts with its own label, so a signature of one kind never passes for another.
 *
 *   record      apertus-audit-record-v1\n<hash>                   (install log records' sig)
 *   checkpoint  apertus-audit-checkpoint-v1\n<seq>\n<hash>\n<time>\n<reason>   (RAG log checkpoints)
 *
 * A signature is written as `<KEY ID>:<base64 of the 64 signature bytes>`, the key id as
 * minisign prints it. templates/rag/audit-log.mjs writes checkpoint signatures the same way.
 */
import { sign as ed25519Sign, verify as ed25519Verify } from 'node:crypto';
import { type PublicKey, privateKeyObject, publicKeyObject, type SecretKey } from '../sign/keys.js';

/** The form of a written signature: a 16 hex digit key id, ':', base64 of 64 bytes. */
export const AUDIT_SIGNATURE = /^[0-9A-F]{16}:[A-Za-z0-9+/]{86}==$/;

export function recordSigningMessage(hash: string): string {
  return `apertus-audit-record-v1\n${hash}`;
}

export interface CheckpointFields {
  seq: number;
  hash: string;
  time: string;
  reason: string;
}

/** templates/rag/audit-log.mjs builds the same message (it cannot import this); change both or neither. */
export function checkpointSigningMessage(checkpoint: CheckpointFields): string {
  return `apertus-audit-checkpoint-v1\n${checkpoint.seq}\n${checkpoint.hash}\n${checkpoint.time}\n${checkpoint.reason}`;
}

export function signAuditMessage(secretKey: SecretKey, message: string): string {
  const signature = ed25519Sign(null, Buffer.from(message, 'utf8'), privateKeyObject(secretKey.seed));
  return `${secretKey.keyId}:${signature.toString('base64')}`;
}

export type SignatureVerdict = { valid: true } | { valid: false; reason: string };

export function verifyAuditSignature(publicKey: PublicKey, message: string, sig: string): SignatureVerdict {
  const [keyId, base64] = sig.split(':');
  if (keyId === undefined || base64 === undefined) return { valid: false, reason: 'not KEYID:SIGNATURE' };
  if (keyId !== publicKey.keyId)
    return { valid: false, reason: `signed by key ${keyId}, not the host's key ${publicKey.keyId}` };
  const signature = Buffer.from(base64, 'base64');
  if (signature.length !== 64) return { valid: false, reason: 'the signature is not 64 bytes' };
  return ed25519Verify(null, Buffer.from(message, 'utf8'), publicKeyObject(publicKey), signature)
    ? { valid: true }
    : { valid: false, reason: `the signature by key ${keyId} does not match` };
}
