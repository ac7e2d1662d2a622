/**
 * What --help says beyond commander's flag lists: examples per command, and at the end of
 * the top-level help the environment variables and exit codes (the README repeats them).
 */
import type { Command } from 'commander';
import { DEFAULT_HOST_ROOT } from '../core/target/layout.js';

export interface Example {
  /** The command line, without the leading `apertus`. */
  run: string;
  /** What it does, in a few words. */
  does: string;
}

/** Adds an Examples block after the command's own help. */
export function withExamples(command: Command, examples: readonly Example[]): Command {
  return command.addHelpText('after', `\nExamples:\n${examples.map(formatExample).join('\n')}\n`);
}

function formatExample(example: Example): string {
  return `  $ apertus ${example.run}\n      ${example.does}`;
}

/** The variables apertus reads (and one it sets on hosts), for the end of `apertus --help`. */
const ENVIRONMENT: ReadonlyArray<readonly [string, string]> = [
  ['HF_TOKEN', 'token for hf: sources; sent to the Hub only, never written'],
  ['HF_ENDPOINT', 'the Hub or an internal mirror (bundle --hub-url overrides it)'],
  ['HF_HOME', 'Hugging Face cache; files already there are not downloaded again'],
  [
    'HF_HUB_OFFLINE',
    '1: check --recipe reads hf: sources from the Hugging Face cache only (the services install starts always run offline)',
  ],
  ['APERTUS_REGISTRY_USERNAME', ''],
  ['APERTUS_REGISTRY_PASSWORD', 'login for oci: sources (else the podman/docker login files)'],
  ['APERTUS_REGISTRY_HOST', 'the one registry that login is for'],
  ['PIP_INDEX_URL', 'index for pip: sources, credentials included; never written'],
  ['XDG_CACHE_HOME', 'downloads are kept in $XDG_CACHE_HOME/apertus (or bundle --cache-dir)'],
  ['CI', 'set and not "false": plain progress lines, as when stderr is not a terminal'],
];

const EXIT_CODES: ReadonlyArray<readonly [string, string]> = [
  ['0', 'ok'],
  ['1', 'the operation failed: verification failed, a host refused, services did not answer'],
  ['2', 'bad usage or invalid input: the message names the flag or file, the hint the fix'],
  ['130', 'interrupted (Ctrl-C); bundle keeps its partial downloads and the next run resumes them'],
];

/** Environment, exit codes and where things live: the tail of the top-level help. */
export function programHelpTail(): string {
  return [
    '',
    'Environment:',
    ...table(ENVIRONMENT),
    '',
    'Exit codes:',
    ...table(EXIT_CODES),
    '',
    'With --json, stdout holds only JSON, errors included. No command ever prompts.',
    `Hosts keep everything under ${DEFAULT_HOST_ROOT} unless --root says otherwise.`,
    '',
  ].join('\n');
}

/** Two columns; a key too long for the first puts its text on the next line. */
function table(rows: ReadonlyArray<readonly [string, string]>): string[] {
  const width = 18;
  return rows.flatMap(([key, text]) => {
    if (key.length < width - 1 || text === '') return [`  ${key.padEnd(width)}${text}`.trimEnd()];
    return [`  ${key}`, `  ${' '.repeat(width)}${text}`];
  });
}
