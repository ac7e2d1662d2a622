/**
 * A jump host list as `ssh -J` and ProxyJump take it: `[user@]host[:port]` hops separated by
 * commas, visited in order; `none` for no jump. Light (no config parser) so the CLI checks
 * `--jump` as it enters.
 */
import { ApertusError } from '../errors.js';
import { parseHostAddress } from './host-address.js';

/** Longest jump chain followed. */
export const MAX_JUMP_HOPS = 8;

/** `a,b,c` into hops; empty, undefined or `none` (ssh_config: "disables this option") is none. */
export function parseJumpList(text: string | undefined): string[] {
  if (text === undefined || text.trim().toLowerCase() === 'none') return [];
  const hops = text.split(',').map((hop) => hop.trim());
  for (const hop of hops) {
    if (hop === '') throw jumpListError(text, 'a hop between the commas is empty');
    // An ssh:// URI (which ProxyJump also allows) names the same thing as user@host:port.
    parseHostAddress(hop.replace(/^ssh:\/\//, ''), { defaultUser: 'x' });
  }
  return hops.map((hop) => hop.replace(/^ssh:\/\//, ''));
}

export function jumpListError(text: string, why: string): ApertusError {
  return new ApertusError('jump-invalid', `Invalid jump host list '${text}': ${why}.`, {
    hint: 'Write it as USER@HOST[:PORT], several separated by commas, e.g. --jump ops@bastion.lab,ops@10.1.0.2:2222 (or none).',
  });
}
