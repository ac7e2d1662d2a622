/**
 * One host command at a time per install root. The lock is a directory (mkdir is atomic on
 * every POSIX filesystem) holding `holder.json`: who holds it (operator pid, machine, user,
 * command, start time) and the host-side process that keeps it, a `cat` reading the SSH
 * channel (or, with --local, a pipe from this process). When apertus dies, even by
 * kill -9, its connection closes, the keeper reads end-of-file and exits: a lock whose
 * keeper is gone is stale and the next command takes it over, saying so.
 *
 * The lock also holds a 1 MiB ballast file. Taking the lock fails cleanly, leaving nothing,
 * when the disk cannot hold even that; once held, the ballast is released when the disk
 * fills mid-way, so the record, the state and the report of a failed command still fit.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { PassThrough } from 'node:stream';
import { ApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { ExecResult, Transport } from '../host/transport.js';
import { noSpaceError } from './disk.js';
import type { HostLayout } from './layout.js';

export interface LockHolder {
  /** The apertus process on the operator's machine. */
  pid: number;
  machine: string;
  operator: string;
  /** What it runs: 'install demo 0.1.0', 'rollback', 'trust add ...'. */
  command: string;
  startedAt: string;
  /** The process on the host that lives exactly as long as the holder's connection. */
  keeperPid: number;
  /** Its start time in clock ticks since boot (/proc/PID/stat), so a reused pid is not taken for it; '-' where there is no /proc. */
  keeperStart: string;
  /** Tells this holder's lock from another's when it is released. */
  nonce: string;
}

export interface HeldLock {
  holder: LockHolder;
  /** The stale lock this command took over (its keeper was gone), or null. */
  tookOver: LockHolder | null;
  /** Frees the ballast: call when the disk is full, before writing the record, state and report. */
  releaseBallast(): Promise<void>;
  release(): Promise<void>;
}

const BALLAST_BLOCKS = 16;
const BALLAST_BLOCK_BYTES = 65_536;
export const BALLAST_BYTES = BALLAST_BLOCKS * BALLAST_BLOCK_BYTES;
/** How long the keeper may take to answer before the attempt is given up. */
const ACQUIRE_TIMEOUT_MS = 30_000;

/**
 * sh functions shared by the keeper and by status: `apertus_start PID` prints the process's
 * start time ('-' without /proc), `apertus_alive PID START` is true while it runs.
 */
const PROCESS_FUNCTIONS = [
  `apertus_start() { if [ -r "/proc/$1/stat" ]; then sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f20; else echo -; fi; }`,
  'apertus_alive() {',
  '  case "$1" in ""|*[!0-9]*) return 1 ;; esac',
  // /proc answers for any user's process (kill -0 does not); a zombie is gone.
  '  if [ -d /proc/self ]; then',
  `    [ -r "/proc/$1/stat" ] || return 1`,
  `    case "$(sed 's/^.*) //' "/proc/$1/stat" | cut -c1)" in Z) return 1 ;; esac`,
  '    [ "$2" = - ] || [ "$(apertus_start "$1")" = "$2" ]',
  '  else kill -0 "$1" 2>/dev/null; fi',
  '}',
  `apertus_field() { printf '%s' "$1" | sed -n "s/.*\\"$2\\":\\"\\{0,1\\}\\([0-9-]*\\).*/\\1/p"; }`,
].join('\n');

const MARK = 'apertus-lock:';

/** The keeper script: take the lock (or take over a stale one), write the holder and ballast, then hold. */
function keeperScript(layout: HostLayout, holderTemplate: string, create: boolean): string {
  const q = (value: string) => shellQuote([value]);
  const lock = q(layout.lock);
  const takeover = q(`${layout.lock}.takeover`);
  return [
    PROCESS_FUNCTIONS,
    `apertus_say() { printf '${MARK} %s %s\\n' "$1" "$(printf '%s' "$2" | tr '\\n' ' ')"; }`,
    'me=$$; mystart=$(apertus_start $$)',
    `if [ -L ${q(layout.root)} ]; then apertus_say unsafe ''; exit 6; fi`,
    create
      ? `mkdir -p ${q(layout.root)} 2>/dev/null`
      : `if [ ! -d ${q(layout.root)} ]; then apertus_say no-root ''; exit 6; fi`,
    `if ! err=$(mkdir ${lock} 2>&1); then`,
    `  if [ ! -d ${lock} ]; then apertus_say failed "$err"; exit 5; fi`,
    `  h=$(cat ${lock}/holder.json 2>/dev/null)`,
    `  if [ -z "$h" ]; then apertus_say unknown ''; exit 3; fi`,
    '  if apertus_alive "$(apertus_field "$h" keeperPid)" "$(apertus_field "$h" keeperStart)"; then apertus_say held "$h"; exit 3; fi',
    // Stale: its keeper is gone. Take it over under a second, short-lived lock, and only if
    // it is still the holder we judged (a racing command may have taken it meanwhile).
    `  if ! mkdir ${takeover} 2>/dev/null; then apertus_say held "$h"; exit 3; fi`,
    `  if [ "$(cat ${lock}/holder.json 2>/dev/null)" = "$h" ]; then rm -rf ${lock}; fi`,
    `  rmdir ${takeover}`,
    `  if ! err=$(mkdir ${lock} 2>&1); then apertus_say held "$(cat ${lock}/holder.json 2>/dev/null)"; exit 3; fi`,
    '  apertus_say took-over "$h"',
    'fi',
    `if ! err=$( { ( set -C; printf '%s' ${q(holderTemplate)} | sed "s/__KEEPER_PID__/$me/; s/__KEEPER_START__/$mystart/" > ${lock}/holder.json ) && dd if=/dev/zero of=${lock}/ballast bs=${BALLAST_BLOCK_BYTES} count=${BALLAST_BLOCKS} conv=fsync; } 2>&1 ); then`,
    `  rm -rf ${lock}; apertus_say failed "$err"; exit 4`,
    'fi',
    "apertus_say locked ''",
    // Hold until our side closes stdin: at release, or when apertus and its connection die.
    'exec cat >/dev/null',
  ].join('\n');
}

/** Takes the host lock for `command`; throws 'host-busy' naming the holder when a live command holds it. */
export async function acquireHostLock(
  transport: Transport,
  layout: HostLayout,
  command: string,
  options: { create?: boolean } = {},
): Promise<HeldLock> {
  const nonce = randomBytes(8).toString('hex');
  const template: Omit<LockHolder, 'keeperPid' | 'keeperStart'> = {
    pid: process.pid,
    machine: os.hostname(),
    operator: os.userInfo().username,
    command,
    startedAt: new Date().toISOString(),
    nonce,
  };
  const holderTemplate = JSON.stringify({
    ...template,
    keeperPid: '__KEEPER_PID__',
    keeperStart: '__KEEPER_START__',
  }).replace('"__KEEPER_PID__"', '__KEEPER_PID__');
  const hold = new PassThrough();
  let output = '';
  let answered: (line: string) => void = () => {};
  const answer = new Promise<string>((resolve) => {
    answered = resolve;
  });
  const onStdout = (chunk: Buffer) => {
    output += chunk.toString('utf8');
    const done = /apertus-lock: (locked|held .*|unknown|no-root|unsafe|failed.*) ?\n/.exec(output);
    if (done) answered(done[1] as string);
  };
  // No abort signal: the keeper must outlive a Ctrl-C until the command has put the host back.
  const keeper: Promise<ExecResult> = transport.exec(
    `sh -c ${shellQuote([keeperScript(layout, holderTemplate, options.create ?? true)])}`,
    {
      stdin: hold,
      reject: false,
      onStdout,
    },
  );
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    answer,
    keeper.then((result) => `exited ${result.exitCode} ${result.stderr.trim()}`),
    new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), ACQUIRE_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));

  if (outcome.trim() !== 'locked') {
    hold.end();
    await keeper.catch(() => undefined);
    throw await lockRefusal(transport, layout, outcome);
  }
  const tookOverLine = /apertus-lock: took-over (.*)\n/.exec(output)?.[1]?.trim();
  const holder = await readHolder(transport, layout);
  if (holder?.nonce !== nonce) {
    hold.end();
    throw new ApertusError(
      'host-lock-lost',
      `The lock ${layout.lock} on ${transport.description} changed hands while it was taken.`,
      {
        kind: 'operation',
        hint: 'Another apertus command is running against this host; run yours again when it has finished.',
      },
    );
  }
  let released = false;
  return {
    holder,
    tookOver: tookOverLine ? parseHolder(tookOverLine) : null,
    releaseBallast: async () => {
      await transport.exec(shellQuote(['rm', '-f', `${layout.lock}/ballast`]), { reject: false });
    },
    release: async () => {
      if (released) return;
      released = true;
      // Only our own lock: after a takeover by another command (we were judged dead), leave theirs.
      await transport
        .exec(
          `if grep -q ${shellQuote([nonce])} ${shellQuote([`${layout.lock}/holder.json`])} 2>/dev/null; then rm -rf ${shellQuote([layout.lock])}; fi`,
          {
            reject: false,
          },
        )
        .catch(() => undefined);
      hold.end();
      await Promise.race([
        keeper.catch(() => undefined),
        new Promise((resolve) => setTimeout(resolve, 5_000)),
      ]);
    },
  };
}

async function lockRefusal(transport: Transport, layout: HostLayout, outcome: string): Promise<ApertusError> {
  if (outcome.startsWith('held ')) {
    const holder = parseHolder(outcome.slice('held '.length));
    return new ApertusError(
      'host-busy',
      `Another apertus command holds ${layout.lock} on ${transport.description}: ${holder ? describeHolder(holder) : outcome.slice(5)}.`,
      {
        kind: 'operation',
        hint: 'Wait for it to finish. Its lock is taken over automatically once its process is gone (even after kill -9).',
        details: { holder },
      },
    );
  }
  if (outcome.trim() === 'no-root') {
    return new ApertusError(
      'host-root-missing',
      `${layout.root} does not exist on ${transport.description}: nothing is installed there.`,
      {
        kind: 'operation',
        hint: "Check --root (`apertus status` shows a host's root), or install a bundle first.",
      },
    );
  }
  if (outcome.trim() === 'unsafe') {
    return new ApertusError(
      'host-root-unsafe',
      `${layout.root} on ${transport.description} is a symbolic link; apertus writes only into a real directory, so nothing was changed.`,
      {
        kind: 'operation',
        hint: `Point --root at the directory itself (readlink -f ${layout.root} on the host), after checking who made the link.`,
      },
    );
  }
  if (outcome.trim() === 'unknown') {
    return new ApertusError(
      'host-busy',
      `${layout.lock} on ${transport.description} exists but names no holder (left by an older apertus, or made by hand), so whether it is in use cannot be told.`,
      {
        kind: 'operation',
        hint: `If no apertus command is running against this host, remove it: rm -r ${layout.lock}`,
      },
    );
  }
  if (outcome.startsWith('failed')) {
    const detail = outcome.slice('failed'.length).trim();
    if (/No space left|quota/i.test(detail))
      return noSpaceError(transport, layout.root, `taking the host lock (${layout.lock})`, BALLAST_BYTES);
    return new ApertusError(
      'host-lock-failed',
      `Cannot take the lock ${layout.lock} on ${transport.description}: ${detail}.`,
      {
        kind: 'operation',
        hint: `Check that ${layout.root} is writable by the login user; nothing was left behind.`,
      },
    );
  }
  return new ApertusError(
    'host-lock-failed',
    `Taking the lock ${layout.lock} on ${transport.description} did not answer (${outcome}).`,
    {
      kind: 'operation',
      hint: 'Check the connection to the host and run the command again.',
    },
  );
}

/** What a host's lock looks like now, for `apertus status`. */
export interface LockState {
  held: boolean;
  holder: LockHolder | null;
  /** The keeper is gone: the next command takes the lock over. Null when there is no holder to judge. */
  stale: boolean | null;
}

/** Reads the lock without taking it; one round trip. */
export async function readLockState(
  transport: Transport,
  layout: HostLayout,
  signal?: AbortSignal,
): Promise<LockState> {
  const lock = shellQuote([layout.lock]);
  const result = await transport.exec(
    [
      PROCESS_FUNCTIONS,
      `[ -d ${lock} ] || exit 0`,
      `h=$(cat ${lock}/holder.json 2>/dev/null)`,
      `printf 'holder=%s\\n' "$h"`,
      `[ -n "$h" ] || exit 0`,
      `if apertus_alive "$(apertus_field "$h" keeperPid)" "$(apertus_field "$h" keeperStart)"; then echo alive=1; else echo alive=0; fi`,
    ].join('\n'),
    { reject: false, ...(signal ? { signal } : {}) },
  );
  const line = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(result.stdout)?.[1];
  const raw = line('holder');
  if (raw === undefined) return { held: false, holder: null, stale: null };
  const holder = parseHolder(raw);
  const alive = line('alive');
  return { held: true, holder, stale: holder === null || alive === undefined ? null : alive === '0' };
}

async function readHolder(transport: Transport, layout: HostLayout): Promise<LockHolder | null> {
  const result = await transport.exec(shellQuote(['cat', `${layout.lock}/holder.json`]), { reject: false });
  return result.exitCode === 0 ? parseHolder(result.stdout) : null;
}

function parseHolder(text: string): LockHolder | null {
  try {
    const value = JSON.parse(text) as Partial<LockHolder>;
    if (typeof value.command !== 'string' || typeof value.keeperPid !== 'number') return null;
    return value as LockHolder;
  } catch {
    return null;
  }
}

/** "install demo 0.1.0 by alice@ops-1 (pid 4242) since 2026-12-02T01:00:00Z". */
export function describeHolder(holder: LockHolder): string {
  return `${holder.command} by ${holder.operator}@${holder.machine} (pid ${holder.pid}) since ${holder.startedAt}`;
}
