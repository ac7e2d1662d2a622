/**
 * How apertus writes a file on a host: into a new file whose name nobody can guess,
 * created with the shell's noclobber (O_EXCL: it fails on anything already there, a link
 * included), then renamed over the target. A reader sees the old file or the new one,
 * never half of one, and a link planted at the target is replaced, never written through.
 * The directory itself is trusted only after the root-safety check (root-safety.ts).
 */
import { randomBytes } from 'node:crypto';
import { shellQuote } from '../host/shell-quote.js';

export type FileMode = '0600' | '0640' | '0644' | '0444';

/** Shell lines that put `content` at `file` with `mode`; they fail (non-zero) and leave nothing behind on error. */
export function writeFileScript(file: string, content: string, mode: FileMode = '0644'): string {
  const q = (value: string) => shellQuote([value]);
  const temp = `${file}.new-${randomBytes(8).toString('hex')}`;
  return [
    `if ( set -C; umask 077; printf '%s' ${q(content)} > ${q(temp)} ) && chmod ${mode} ${q(temp)} && mv -f ${q(temp)} ${q(file)}; then :; else`,
    `  rm -f ${q(temp)}; false`,
    'fi',
  ].join('\n');
}
