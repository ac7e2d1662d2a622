/**
 * `<root>/state.json`: what the host runs and how it got there, as the last command left
 * it. Install writes it twice: before it switches `current` (the new release, not yet
 * verified, and what to go back to) and after (verified, or the release put back). So a
 * command killed in between leaves a host whose status names the unverified release and
 * whose rollback returns to the previous one. It also holds the head of the audit log
 * (a shorter log is caught) and how the host decides trust. Field names are a contract.
 */
import { z } from 'zod';
import { ApertusError } from '../errors.js';
import type { HostLayout } from './layout.js';
import { writeFileScript } from './safe-write.js';

const HEX64 = /^[0-9a-f]{64}$/;
/** `releases/NAME/VERSION`, what the `current` link holds; nothing else may be named here. */
export const RELEASE_LINK =
  /^releases\/[0-9A-Za-z][0-9A-Za-z.+_-]{0,127}\/[0-9A-Za-z][0-9A-Za-z.+_-]{0,127}$/;
const releaseLink = z
  .string()
  .regex(RELEASE_LINK)
  .refine((value) => !value.split('/').some((part) => part === '.' || part === '..'));

const signerSchema = z.object({
  keyId: z.string().regex(/^[0-9A-F]{16}$/),
  trustedComment: z.string().max(8192),
});
export type Signer = z.infer<typeof signerSchema>;

const releaseStateSchema = z.object({
  name: z.string().min(1).max(128),
  version: z.string().min(1).max(128),
  manifestDigest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  release: releaseLink,
  /** The report of the command that made it current; null while it is being verified. */
  report: z.string().nullable(),
  /** Its services passed verification. False only between the switch and the end of verification. */
  verified: z.boolean().default(true),
  /** Who signed the bundle it came from; null for an --allow-unsigned install. */
  signer: signerSchema.nullable().default(null),
});
export type ReleaseState = z.infer<typeof releaseStateSchema>;

const hostStateSchema = z.object({
  current: releaseStateSchema.nullable(),
  /** The last verified release before `current`: where `apertus rollback` goes. */
  previous: releaseLink.nullable(),
  updatedAt: z.string().nullable(),
  /** The head of <root>/audit.log when this was written (seq and hash of its last record). */
  audit: z
    .object({ seq: z.number().int().min(0), hash: z.string().regex(HEX64) })
    .nullable()
    .default(null),
  /** A command that was changing `current` and has not finished: a kill leaves it here. */
  pending: z
    .object({
      command: z.string().max(512),
      release: releaseLink,
      previous: releaseLink.nullable(),
      since: z.string(),
    })
    .nullable()
    .default(null),
  /** 'unsigned': the first install went with --allow-unsigned and no key is trusted; status warns. */
  trust: z
    .object({ mode: z.enum(['keys', 'unsigned']), since: z.string() })
    .nullable()
    .default(null),
});
export type HostState = z.infer<typeof hostStateSchema>;

export const EMPTY_STATE: HostState = {
  current: null,
  previous: null,
  updatedAt: null,
  audit: null,
  pending: null,
  trust: null,
};

/**
 * state.json's text as the probe read it (undefined: no file). Files written before the
 * fields above existed read with their defaults; anything else that does not parse is an
 * error, since its release paths would decide what is started and removed.
 */
export function parseHostState(text: string | undefined, where: string): HostState {
  if (text === undefined || text.trim() === '') return EMPTY_STATE;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    raw = undefined;
  }
  const parsed = hostStateSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ApertusError(
      'host-state-invalid',
      `${where} is not a state file apertus wrote${issue ? ` (${issue.path.join('.') || 'its form'}: ${issue.message})` : ''}.`,
      {
        kind: 'operation',
        hint: 'Keep it as evidence (mv state.json state.json.damaged on the host), then run `apertus status` and install again: the audit log and the release directories say what ran.',
      },
    );
  }
  return parsed.data;
}

/** Shell lines that replace state.json (never through a link, never half written). */
export function writeHostStateScript(layout: HostLayout, state: HostState): string {
  return writeFileScript(layout.state, `${JSON.stringify(state, null, 2)}\n`, '0644');
}
