import { Command, CommanderError } from 'commander';
import { isApertusError } from '../core/errors.js';
import { registerAudit } from './commands/audit.js';
import { registerBundle } from './commands/bundle.js';
import { registerCheck } from './commands/check.js';
import { registerDemo } from './commands/demo.js';
import { registerInspect } from './commands/inspect.js';
import { registerInstall } from './commands/install.js';
import { registerKeys } from './commands/keys.js';
import { registerRollback } from './commands/rollback.js';
import { registerSchema } from './commands/schema.js';
import { registerSplit } from './commands/split.js';
import { registerStatus } from './commands/status.js';
import { registerTrust } from './commands/trust.js';
import { registerVerify } from './commands/verify.js';
import { CommandInterrupted } from './interrupt.js';
import { type CliIO, processIO } from './io.js';
import { writeJson } from './output/json-output.js';
import { ReportedFailure } from './reported-failure.js';

/** Exit codes are a contract with scripts; the README documents them. */
export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;

export function buildProgram(io: CliIO): Command {
  const program = new Command('apertus')
    .description('Take an open LLM stack across an air gap: bundle, verify, check and install over SSH.')
    .version(process.env.npm_package_version ?? '0.1.0', '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .exitOverride();
  for (const register of [
    registerBundle,
    registerVerify,
    registerSplit,
    registerInspect,
    registerKeys,
    registerCheck,
    registerInstall,
    registerStatus,
    registerRollback,
    registerTrust,
    registerAudit,
    registerDemo,
    registerSchema,
  ]) {
    register(program, io);
  }
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** Runs the CLI in-process and returns the exit code; never calls process.exit. */
export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  const json = argv.includes('--json');
  try {
    await buildProgram(io).parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (error) {
    return reportError(io, error, json);
  }
}

function reportError(io: CliIO, error: unknown, json: boolean): number {
  if (error instanceof ReportedFailure) return EXIT.failed;
  if (error instanceof CommandInterrupted) {
    const interrupted = {
      code: 'interrupted',
      message: error.message,
      hint: error.hint,
      details: error.details,
    };
    if (json) writeJson(io, { ok: false, error: interrupted });
    else io.stderr.write(`${error.message} ${error.hint}\n`);
    return EXIT.interrupted;
  }
  if (error instanceof CommanderError) {
    if (error.exitCode === 0) return EXIT.ok; // --help, --version
    if (json) writeJson(io, { ok: false, error: { code: 'usage', message: error.message } });
    return EXIT.usage;
  }
  if (isApertusError(error)) {
    const exitCode = error.kind === 'user' ? EXIT.usage : EXIT.failed;
    if (json) {
      writeJson(io, {
        ok: false,
        error: {
          code: error.code,
          message: error.message,
          hint: error.hint ?? null,
          details: error.details ?? null,
        },
      });
    } else {
      io.stderr.write(`error[${error.code}]: ${error.message}\n`);
      if (error.hint) io.stderr.write(`hint: ${error.hint}\n`);
    }
    return exitCode;
  }
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  if (json) writeJson(io, { ok: false, error: { code: 'internal', message: String(error) } });
  else
    io.stderr.write(
      `error[internal]: ${message}\nThis is a bug in apertus; please report it with the output above.\n`,
    );
  return EXIT.failed;
}
