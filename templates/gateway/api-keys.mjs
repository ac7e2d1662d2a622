// The gateway's API keys: the key file's format, how a presented key is checked, and scopes.
//
// Key file (JSON, written by `apertus keys api` with safe-write: a whole new file renamed
// over the old one, so a reader never sees half of it):
//   {"format":"apertus-api-keys","formatVersion":1,
//    "keys":[{"name":"alice","sha256":"<64 hex>","scopes":["chat","rag:default"],
//             "created":"<ISO>","revoked":"<ISO>"?}]}
//
// Only the SHA-256 of each key is stored. A key is `apk-` plus 43 base64url characters of
// 32 random bytes (256 bits): nobody can search that space, so a slow password hash (scrypt,
// argon2) would buy nothing, while one SHA-256 per request costs microseconds. A slow hash
// protects guessable secrets such as passwords, and these are not guessable. The digest of
// the presented key is looked up in a Map: the lookup's timing depends on the digest, which
// tells an attacker nothing about any stored key.
//
// The file is re-read whenever its inode, size or times change (checked on each request, a
// stat call), so `revoke` takes effect on the next request without a restart. A file that
// is missing or cannot be parsed fails closed: no key is accepted until it is fixed.

import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';

export const KEY_FILE_FORMAT = 'apertus-api-keys';
export const KEY_PATTERN = /^apk-[A-Za-z0-9_-]{43}$/;
export const KEY_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const SCOPE_PATTERN = /^(chat|embeddings|admin|rag(:[A-Za-z0-9][A-Za-z0-9._-]{0,63})?)$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export function keyDigest(key) {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Parses and validates the key file's text; throws with the reason. */
export function parseKeyFile(text) {
  const doc = JSON.parse(text);
  if (doc?.format !== KEY_FILE_FORMAT || doc.formatVersion !== 1 || !Array.isArray(doc.keys)) {
    throw new Error(`not an ${KEY_FILE_FORMAT} version 1 file`);
  }
  const byDigest = new Map();
  const names = new Set();
  for (const [i, entry] of doc.keys.entries()) {
    const where = `keys[${i}]`;
    if (typeof entry?.name !== 'string' || !KEY_NAME_PATTERN.test(entry.name))
      throw new Error(`${where}.name must match ${KEY_NAME_PATTERN}`);
    if (names.has(entry.name)) throw new Error(`${where}.name "${entry.name}" is used twice`);
    names.add(entry.name);
    if (typeof entry.sha256 !== 'string' || !SHA256_HEX.test(entry.sha256))
      throw new Error(`${where}.sha256 must be 64 lower-case hex digits`);
    if (
      !Array.isArray(entry.scopes) ||
      entry.scopes.some((s) => typeof s !== 'string' || !SCOPE_PATTERN.test(s))
    )
      throw new Error(`${where}.scopes must be a list of chat, embeddings, admin, rag or rag:COLLECTION`);
    byDigest.set(entry.sha256, {
      name: entry.name,
      scopes: new Set(entry.scopes),
      revoked: typeof entry.revoked === 'string' ? entry.revoked : null,
    });
  }
  return byDigest;
}

/**
 * Whether a key with these scopes may do `need`: 'chat', 'embeddings', 'admin', or
 * 'rag:COLLECTION'. admin may do everything; 'rag' covers every collection.
 */
export function allows(scopes, need) {
  if (scopes.has('admin') || scopes.has(need)) return true;
  return need.startsWith('rag:') && scopes.has('rag');
}

/** The key file, re-read when it changes. */
export function createKeyStore(file, { onNotice = () => {} } = {}) {
  let signature = null;
  let keys = new Map();
  let broken = 'the key file has not been read yet';
  let loading = null;

  async function refresh() {
    let info;
    try {
      info = await stat(file);
    } catch (error) {
      if (broken === null || signature !== 'missing') onNotice(`key file ${file}: ${error.message}`);
      signature = 'missing';
      keys = new Map();
      broken = `the key file cannot be read (${error.code ?? error.message})`;
      return;
    }
    const now = `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
    if (now === signature) return;
    try {
      keys = parseKeyFile(await readFile(file, 'utf8'));
      broken = null;
      onNotice(`key file ${file}: ${keys.size} keys loaded`);
    } catch (error) {
      keys = new Map();
      broken = `the key file is invalid (${error.message})`;
      onNotice(`key file ${file}: ${broken}; refusing every key until it is fixed`);
    }
    signature = now;
  }

  return {
    /**
     * Checks an Authorization header value. Resolves to {ok:true, name, scopes} or
     * {ok:false, reason, message}; reason is 'missing', 'malformed', 'unknown', 'revoked'
     * or 'unavailable'.
     */
    async authenticate(authorization) {
      loading ??= refresh().finally(() => {
        loading = null;
      });
      await loading;
      if (typeof authorization !== 'string' || authorization.trim() === '') {
        return {
          ok: false,
          reason: 'missing',
          message:
            "You didn't provide an API key. Send it in the Authorization header: Authorization: Bearer YOUR_KEY.",
        };
      }
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
      if (match === null || !KEY_PATTERN.test(match[1])) {
        return { ok: false, reason: 'malformed', message: 'Incorrect API key provided.' };
      }
      if (broken !== null) {
        return { ok: false, reason: 'unavailable', message: `No API key can be checked: ${broken}.` };
      }
      const entry = keys.get(keyDigest(match[1]));
      if (entry === undefined)
        return { ok: false, reason: 'unknown', message: 'Incorrect API key provided.' };
      if (entry.revoked !== null) {
        return { ok: false, reason: 'revoked', message: `This API key was revoked on ${entry.revoked}.` };
      }
      return { ok: true, name: entry.name, scopes: entry.scopes };
    },
    get size() {
      return keys.size;
    },
  };
}
