/**
 * Privilege escalation for a login user that is not root (inventory `become: true`,
 * `--become`): a Transport whose every command and upload runs under `sudo`, so the code
 * above it (probe, lock, store, releases, services) stays the same as for root.
 *
 * `sudo -n` by default (passwordless sudo). With a password, `sudo -k -S -p ''`: the password
 * is the first line of the command's stdin and never part of a command line, a file, a log
 * or an error. `-k` makes sudo ask for it every time (a cached credential would leave the
 * line to the command); the password is checked once when become is set up, so a wrong one
 * is refused before anything on the host changes, and sudo never reads a later line of a
 * command's own input as a second try. Uploads stream into `cat > FILE` run under sudo, so
 * files end root-owned with no temporary copy and the host-side hash sees the same bytes.
 */
import { Readable, Transform } from 'node:stream';
import { ApertusError } from '../errors.js';
import { quoteArg } from './shell-quote.js';
import type { ExecOptions, ExecResult, Transport, UploadOptions } from './transport.js';

export interface BecomeOptions {
  /** The login user's sudo password; without it, only passwordless sudo (`sudo -n`) is tried. */
  password?: string | undefined;
}

/** What `sudo -n` answers when it would need a password. */
const PASSWORD_REQUIRED = /a password is required/;

/**
 * Checks that `inner`'s login user can run commands as root with sudo (and the password, when
 * one is given and needed), then returns a Transport that runs everything through it. Nothing
 * on the host changes when it throws.
 */
export async function becomeRoot(inner: Transport, options: BecomeOptions): Promise<Transport> {
  const where = inner.description;
  const probe = await inner.exec(`if [ "$(id -u)" = 0 ]; then echo root; else sudo -n true; fi`, {
    reject: false,
  });
  // Logged in as root already: nothing to become.
  if (probe.exitCode === 0 && probe.stdout.trim() === 'root') return inner;
  if (probe.exitCode === 0) return sudoTransport(inner, undefined);
  if (probe.exitCode === 127 || /sudo: (not found|command not found)/.test(probe.stderr)) {
    throw new ApertusError('become-unavailable', `${where} has no sudo, which --become needs.`, {
      kind: 'operation',
      hint: 'Install sudo on the host (apt-get install sudo) and give the login user a sudoers entry, or log in as root.',
    });
  }
  if (!PASSWORD_REQUIRED.test(probe.stderr)) throw sudoRefused(where, probe.stderr);
  if (options.password === undefined) {
    throw new ApertusError(
      'become-password-required',
      `sudo on ${where} needs the login user's password, and none was given.`,
      {
        hint: 'Put it in the environment variable APERTUS_BECOME_PASSWORD (never a flag: flags show in ps), run on a terminal to be asked for it, or give the user passwordless sudo (NOPASSWD in /etc/sudoers.d).',
      },
    );
  }
  const password = Buffer.from(`${options.password}\n`);
  const checked = await inner.exec(`sudo -k -S -p '' -- true`, { stdin: password, reject: false });
  if (checked.exitCode !== 0) {
    if (/incorrect password|Sorry, try again/.test(checked.stderr)) {
      throw new ApertusError('become-password-wrong', `sudo on ${where} refused the password.`, {
        hint: 'Check APERTUS_BECOME_PASSWORD (or what you typed): it is the login user’s own password on the host. Nothing on the host was changed.',
      });
    }
    throw sudoRefused(where, checked.stderr);
  }
  return sudoTransport(inner, password);
}

function sudoRefused(where: string, stderr: string): ApertusError {
  const why = stderr.trim().split('\n').slice(-3).join(' ') || 'no reason given';
  return new ApertusError('become-refused', `sudo on ${where} refused to run commands as root: ${why}`, {
    kind: 'operation',
    hint: 'Give the login user a sudoers entry that lets it run any command as root (e.g. a file in /etc/sudoers.d), or log in as root.',
  });
}

/** The command line that runs `command` as root. */
function sudoCommand(command: string, password: Buffer | undefined): string {
  return `${password ? "sudo -k -S -p ''" : 'sudo -n'} -- sh -c ${quoteArg(command)}`;
}

function sudoTransport(inner: Transport, password: Buffer | undefined): Transport {
  const withPassword = (stdin: ExecOptions['stdin']): ExecOptions['stdin'] => {
    if (password === undefined) return stdin;
    if (stdin === undefined) return password;
    if (typeof stdin === 'string' || Buffer.isBuffer(stdin))
      return Buffer.concat([password, Buffer.from(stdin)]);
    return prefixed(password, stdin);
  };
  const exec = (command: string, options: ExecOptions = {}): Promise<ExecResult> =>
    inner.exec(sudoCommand(command, password), { ...options, stdin: withPassword(options.stdin) });

  return {
    description: `${inner.description} with sudo`,
    exec,

    async upload(source: Readable, remotePath: string, options: UploadOptions): Promise<void> {
      // Counted before the password goes in front, so progress and the size check see the file only.
      let sent = 0;
      const counted = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          sent += chunk.length;
          options.onBytes?.(sent);
          done(null, chunk);
        },
      });
      source.once('error', (error) => counted.destroy(error));
      // A command that stops reading ends the upload early: stop reading the file too.
      counted.once('close', () => {
        if (!source.readableEnded) source.destroy();
      });
      const result = await exec(`cat > ${quoteArg(remotePath)}`, {
        stdin: source.pipe(counted),
        reject: false,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (result.failed) {
        const why =
          result.stderr.trim().split('\n').slice(-5).join('\n') || `cat exited with code ${result.exitCode}`;
        throw new ApertusError(
          'upload-failed',
          `Upload to ${remotePath} on ${inner.description} failed: ${why}`,
          {
            kind: 'operation',
            hint: `Check that the directory of ${remotePath} exists on the host and has ${options.size} bytes free (df -h).`,
            details: result,
          },
        );
      }
      if (sent !== options.size) {
        throw new ApertusError(
          'upload-size-mismatch',
          `Upload to ${remotePath} on ${inner.description} sent ${sent} bytes, but ${options.size} were expected.`,
          { kind: 'operation', hint: 'The local file changed while it was read; run the command again.' },
        );
      }
    },

    connect: (port, host) => inner.connect(port, host),
    close: () => inner.close(),
  };
}

/** `head` then everything `rest` yields; destroying it destroys `rest`, as a pipe would. */
function prefixed(head: Buffer, rest: Readable): Readable {
  const stream = Readable.from(
    (async function* () {
      yield head;
      for await (const chunk of rest) yield chunk;
    })(),
    { objectMode: false },
  );
  stream.once('close', () => {
    if (!rest.readableEnded) rest.destroy();
  });
  return stream;
}
