import { ApertusError } from '../errors.js';
import type { ExecResult } from './transport.js';

/** The code of the error both transports throw for a non-zero exit with `reject` on. */
export const COMMAND_FAILED = 'remote-command-failed';

const TAIL_CHARS = 2000;

/** execa strips one final newline; both transports do, so callers compare outputs alike. */
export function stripFinalNewline(text: string): string {
  if (text.endsWith('\r\n')) return text.slice(0, -2);
  if (text.endsWith('\n')) return text.slice(0, -1);
  return text;
}

export function execResult(command: string, exitCode: number, stdout: string, stderr: string): ExecResult {
  return {
    command,
    exitCode,
    stdout: stripFinalNewline(stdout),
    stderr: stripFinalNewline(stderr),
    failed: exitCode !== 0,
  };
}

/** The error for a failed command: what ran where, its exit code, and the end of its stderr. */
export function commandFailedError(result: ExecResult, where: string): ApertusError {
  const shown = result.command.length > 300 ? `${result.command.slice(0, 300)}...` : result.command;
  const stderr = result.stderr.trim();
  const tail = stderr.length > TAIL_CHARS ? `...${stderr.slice(-TAIL_CHARS)}` : stderr;
  const message =
    `Command failed with exit code ${result.exitCode} on ${where}: ${shown}` +
    (tail === '' ? ' (no output on stderr)' : `\n${tail}`);
  return new ApertusError(COMMAND_FAILED, message, {
    kind: 'operation',
    hint: `Run the command by hand on ${where} to see why it failed; the full output is in the error details.`,
    details: result,
  });
}
