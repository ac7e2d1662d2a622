/**
 * Where the sudo password for `--become` (or an inventory's `become: true`) comes from: the
 * environment variable APERTUS_BECOME_PASSWORD, else, on a terminal outside CI and --json, a
 * hidden prompt asked once before any step starts. Never a flag (flags show in `ps`), never
 * a file. Without either, the core tries passwordless sudo (`sudo -n`) and, when the host
 * wants a password, fails with a hint that names the variable.
 */
import type { BecomeOptions } from '../core/host/become.js';
import { CommandInterrupted } from './interrupt.js';
import type { CliIO } from './io.js';
import { chooseRendererMode } from './output/renderer-mode.js';

export const BECOME_PASSWORD_ENV = 'APERTUS_BECOME_PASSWORD';

export async function becomeOptions(
  io: CliIO,
  flags: { json?: boolean | undefined },
): Promise<BecomeOptions> {
  const fromEnv = io.env[BECOME_PASSWORD_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return { password: fromEnv };
  const stdin = io.stdin;
  if (chooseRendererMode(io, flags) !== 'live' || !stdin?.isTTY || typeof stdin.setRawMode !== 'function')
    return {};
  const typed = await askHidden(io, stdin, 'sudo password on the host (Enter for passwordless sudo): ');
  return typed === '' ? {} : { password: typed };
}

/** Reads one line from the terminal without echoing it. */
function askHidden(io: CliIO, stdin: NonNullable<CliIO['stdin']>, prompt: string): Promise<string> {
  io.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let typed = '';
    const finish = (error?: Error) => {
      stdin.removeListener('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      io.stderr.write('\n');
      if (error) reject(error);
      else resolve(typed);
    };
    const onData = (chunk: Buffer | string) => {
      for (const char of chunk.toString('utf8')) {
        if (char === '\r' || char === '\n') return finish();
        if (char === '\u0003') return finish(new CommandInterrupted('Nothing was changed on the host.'));
        if (char === '\u007f' || char === '\b') typed = typed.slice(0, -1);
        else if (char === '\u0015') typed = '';
        else typed += char;
      }
    };
    stdin.setRawMode?.(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}
