/**
 * Whether an install root can be trusted with what apertus writes and runs there. A root
 * another user can write into lets them plant a blob that is later run as root, or a link
 * that sends a write or a release elsewhere. So every directory and file under it must
 * belong to the login user or root and be writable by nobody else, and every entry the
 * layout names must be what the layout expects: no link where a directory or file
 * belongs, and `current` a link to releases/NAME/VERSION. Judged from the probe
 * (probe.ts root_safety); each problem comes with the command that fixes it.
 */
import path from 'node:path/posix';
import { shellQuote } from '../host/shell-quote.js';
import type { EntryKind, HostLayout } from './layout.js';
import type { RootEntry } from './probe.js';
import { RELEASE_LINK } from './state.js';

export interface RootProblem {
  path: string;
  problem: string;
  /** A shell command that fixes it, run as root on the host. */
  fix: string;
}

export function judgeRoot(
  entries: readonly RootEntry[],
  layout: HostLayout,
  uid: number | undefined,
): RootProblem[] {
  const problems: RootProblem[] = [];
  const q = (value: string) => shellQuote([value]);
  for (const entry of entries) {
    const expected = expectedKind(entry.path, layout);
    const found =
      entry.type === 'link' ? `a link to ${entry.target ?? '?'}` : `a ${describeType(entry.type)}`;
    if (entry.path === layout.current) {
      if (entry.type !== 'link' || !RELEASE_LINK.test(entry.target ?? '')) {
        problems.push({
          path: entry.path,
          problem: `is ${found}; it must be a link to releases/NAME/VERSION`,
          fix: `rm -r ${q(entry.path)}   # then \`apertus rollback --to VERSION\` sets it again`,
        });
      }
    } else if (entry.type === 'link') {
      problems.push({
        path: entry.path,
        problem: `is ${found}, which could send what apertus writes or runs outside the root`,
        fix: `rm ${q(entry.path)}`,
      });
      continue;
    } else if (expected !== undefined && expected !== entry.type) {
      problems.push({
        path: entry.path,
        problem: `is ${found} where the layout has a ${describeType(expected)}`,
        fix: `mv ${q(entry.path)} ${q(`${entry.path}.moved-aside`)}`,
      });
      continue;
    }
    if (entry.type === 'link') continue;
    if (uid !== undefined && entry.uid !== uid && entry.uid !== 0) {
      problems.push({
        path: entry.path,
        problem: `belongs to uid ${entry.uid}, neither the login user (uid ${uid}) nor root`,
        fix: `chown ${uid === 0 ? 'root' : uid} ${q(entry.path)}`,
      });
    }
    if (entry.mode[4] === 'w' || entry.mode[7] === 'w') {
      problems.push({
        path: entry.path,
        problem: `is writable by ${entry.mode[4] === 'w' ? 'its group' : ''}${entry.mode[4] === 'w' && entry.mode[7] === 'w' ? ' and ' : ''}${entry.mode[7] === 'w' ? 'everyone' : ''} (${entry.mode})`,
        fix: `chmod go-w ${q(entry.path)}`,
      });
    }
    if (entry.path === layout.hostSecretKey && (entry.mode[3] !== '-' || entry.mode[6] !== '-')) {
      problems.push({
        path: entry.path,
        problem: `is readable by others (${entry.mode}): anyone who reads it can sign audit records as this host`,
        fix: `chmod 0600 ${q(entry.path)}`,
      });
    }
  }
  return problems;
}

/** The kind the layout gives a path, matching its globbed entries (`releases/*`) too. */
function expectedKind(target: string, layout: HostLayout): EntryKind | undefined {
  for (const entry of layout.expected) {
    if (entry.path === target) return entry.kind;
    if (!entry.path.includes('*')) continue;
    const pattern = new RegExp(`^${entry.path.split('*').map(escapeRegex).join('[^/]+')}$`);
    if (pattern.test(target) && !path.basename(target).startsWith('.')) return entry.kind;
  }
  return undefined;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function describeType(type: RootEntry['type'] | EntryKind): string {
  return type === 'dir' ? 'directory' : type === 'file' ? 'file' : type === 'link' ? 'link' : 'special file';
}
