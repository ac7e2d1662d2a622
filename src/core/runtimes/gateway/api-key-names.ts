/**
 * What an API key's name and scopes may be, checked as flags enter (kept apart from the key
 * file's zod schema so that the CLI can check flags without loading zod).
 */
import { ApertusError } from '../../errors.js';

export const KEY_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const SCOPE = /^(chat|embeddings|admin|rag(:[A-Za-z0-9][A-Za-z0-9._-]{0,63})?)$/;

export function parseScopes(text: string): string[] {
  const scopes = [...new Set(text.split(',').map((s) => s.trim()))].filter((s) => s !== '');
  const bad = scopes.filter((s) => !SCOPE.test(s));
  if (scopes.length === 0 || bad.length > 0)
    throw new ApertusError(
      'usage',
      `Unknown scope${bad.length === 1 ? '' : 's'}: ${bad.join(', ') || '(none)'}.`,
      {
        hint: 'Pass --scope with a comma-separated list of chat, embeddings, rag, rag:COLLECTION and admin.',
      },
    );
  return scopes.sort();
}

export function parseKeyName(name: string): string {
  if (!KEY_NAME.test(name))
    throw new ApertusError('usage', `"${name}" is not a key name.`, {
      hint: 'Use 1 to 64 lower-case letters, digits, dots, dashes and underscores, starting with a letter or digit (it appears in audit logs).',
    });
  return name;
}
