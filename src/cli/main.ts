import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { isApertusError } from '../core/errors.js';
import { PROJECT_ROOT } from '../core/project-root.js';
import { registerAudit } from './commands/audit.js';
import { registerBundle } from './commands/bundle.js';
import { registerCheck } from './commands/check.js';
import { registerDemo } from './commands/demo.js';
import { registerEval } from './commands/eval.js';
import { registerInspect } from './commands/inspect.js';
import { registerInstall } from './commands/install.js';
import { registerKeys } from './commands/keys.js';
import { registerMirror } from './commands/mirror.js';
import { registerPrune } from './commands/prune.js';
import { registerRag } from './commands/rag.js';
import { registerRollback } from './commands/rollback.js';
import { registerSchema } from './commands/schema.js';
import { registerSplit } from './commands/split.js';
import { registerStatus } from './commands/status.js';
import { registerTls } from './commands/tls.js';
import { registerTrust } from './commands/trust.js';
import { registerUninstall } from './commands/uninstall.js';
import { registerVerify } from './commands/verify.js';
import { programHelpTail } from './help-text.js';
import { CommandInterrupted } from './interrupt.js';
import { type CliIO, processIO } from './io.js';
import { writeJson } from './output/json-output.js';
import { ReportedFailure } from './reported-failure.js';

/** Exit codes are a contract with scripts; the README documents them. */
export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;

/**
 * The commands in the order of the journey, grouped as --help shows them. Each register
 * function declares its flags only; a command's code, and with it the core, is imported when
 * that command runs, so --help and usage errors start fast.
 */
const COMMAND_GROUPS: ReadonlyArray<{
  heading: string;
  commands: ReadonlyArray<(program: Command, io: CliIO) => void>;
}> = [
  { heading: 'Connected side:', commands: [registerBundle, registerSplit, registerKeys] },
  {
    heading: 'Inside the gap:',
    commands: [
      registerVerify,
      registerInspect,
      registerMirror,
      registerCheck,
      registerInstall,
      registerTrust,
      registerTls,
    ],
  },
  {
    heading: 'Day two:',
    commands: [
      registerStatus,
      registerRollback,
      registerUninstall,
      registerPrune,
      registerAudit,
      registerRag,
      registerEval,
    ],
  },
  { heading: 'Other:', commands: [registerDemo, registerSchema] },
];

export function buildProgram(io: CliIO): Command {
  const program = new Command('apertus')
    .description('Take an open LLM stack across an air gap: bundle, verify, check and install over SSH.')
    .version(ownVersion(), '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .exitOverride();
  for (const group of COMMAND_GROUPS) {
    program.commandsGroup(group.heading);
    for (const register of group.commands) register(program, io);
  }
  program.helpCommand('help [command]', 'show help for a command');
  program.addHelpText('after', programHelpTail());
  for (const command of program.commands) command.exitOverride();
  return program;
}

/**
 * Our own package.json, never npm_package_version: run from another package's npm script,
 * that variable holds the other package's version.
 */
function ownVersion(): string {
  const manifest = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as {
    version?: unknown;
  };
  return typeof manifest.version === 'string' ? manifest.version : 'unknown';
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
