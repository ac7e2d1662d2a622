/**
 * The gateway's key file as the CLI writes it. templates/gateway/api-keys.mjs reads the
 * same format on the host and says why only hashes are kept; change both or neither.
 */
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ApertusError } from '../../errors.js';
import { KEY_NAME, SCOPE } from './api-key-names.js';

const entrySchema = z.object({
  name: z.string().regex(KEY_NAME),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  scopes: z.array(z.string().regex(SCOPE)),
  created: z.string(),
  revoked: z.string().optional(),
});

const fileSchema = z.object({
  format: z.literal('apertus-api-keys'),
  formatVersion: z.literal(1),
  keys: z.array(entrySchema),
});

export type ApiKeyEntry = z.infer<typeof entrySchema>;
export type ApiKeyFile = z.infer<typeof fileSchema>;

export const EMPTY_KEY_FILE: ApiKeyFile = { format: 'apertus-api-keys', formatVersion: 1, keys: [] };

export function parseApiKeyFile(text: string, where: string): ApiKeyFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw damaged(where, (error as Error).message);
  }
  const result = fileSchema.safeParse(parsed);
  if (!result.success)
    throw damaged(where, result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  return result.data;
}

function damaged(where: string, why: string): ApertusError {
  return new ApertusError('api-keys-unreadable', `The API key file ${where} is not valid: ${why}.`, {
    kind: 'operation',
    hint: 'The gateway refuses every key until it is fixed. Restore it from a backup, or move it aside and create the keys again.',
  });
}

export function serializeApiKeyFile(file: ApiKeyFile): string {
  return `${JSON.stringify(file, null, 2)}\n`;
}

/** A new key: `apk-` and 256 random bits. Returned once; only its digest is kept. */
export function newApiKey(): { key: string; sha256: string } {
  const key = `apk-${randomBytes(32).toString('base64url')}`;
  return { key, sha256: createHash('sha256').update(key).digest('hex') };
}
