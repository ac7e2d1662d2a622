/**
 * Parsers for flag and argument values that name a file, a directory, a size or a number,
 * given to commander where the flag is declared. Each checks its value as it enters, so a
 * typo is a usage error (exit 2) that names the flag, before anything is read, fetched or
 * written, instead of errno text from deep in an operation or a stack trace.
 *
 * Light on purpose: main.ts loads it with every command's flags, also for --help.
 */
import { accessSync, constants, type Stats, statSync } from 'node:fs';
import path from 'node:path';
import { parsePartSize } from '../core/bundle/part-size.js';
import { ApertusError } from '../core/errors.js';
import { splitIndexFileName } from '../core/layout/names.js';

/** What commander calls with the text of a flag or argument. */
export type ValueParser<T> = (value: string) => T;

/** How an error names the value, and what the operator does about it. */
export interface InputName {
  /** The flag ('--sign'), or undefined for a command's argument. */
  flag?: string;
  /** What the value is, for the message: 'secret key', 'bundle'. */
  what: string;
  /** The error code scripts see with --json. */
  code: string;
  hint: string;
}

/** A file that must exist: a key, an identity, an inventory, an image config. */
export function existingFile(input: InputName): ValueParser<string> {
  return (value) => {
    const stats = statOrUndefined(value);
    if (stats === undefined) throw missing(input, value);
    if (!stats.isFile()) throw inputError(input, value, `is ${describe(stats)}, not a file`);
    return value;
  };
}

/** A minisign key file: the secret key that signs bundles, or the public key that checks them. */
export function keyFile(flag: string, which: 'public' | 'secret'): ValueParser<string> {
  return existingFile({
    flag,
    what: `${which} key`,
    code: 'key-not-found',
    hint:
      which === 'public'
        ? 'Pass the .pub file written by `apertus keys generate` (or `minisign -G`).'
        : 'Pass the .key file written by `apertus keys generate` (or `minisign -G -W`); keep it off the bundle media.',
  });
}

const BUNDLE_HINT =
  'Check the path; a bundle is the .tar written by `apertus bundle`, the .tar.parts.json index of a split bundle, or the directory it was extracted into.';

/**
 * A bundle: a tar, the directory it was extracted into, or a split bundle by its index or by
 * the tar name its parts and index carry. What is inside is the bundle loader's to judge.
 */
export function existingBundle(flag?: string): ValueParser<string> {
  const input = { flag, what: 'bundle', code: 'bundle-not-found', hint: BUNDLE_HINT };
  return (value) => {
    if (statOrUndefined(value) !== undefined) return value;
    const index = path.join(path.dirname(value), splitIndexFileName(path.basename(value)));
    if (statOrUndefined(index)?.isFile()) return value;
    throw missing(input, value);
  };
}

/** A directory that exists or can be made: where bundles, parts and downloads are written. */
export function outputDirectory(flag: string): ValueParser<string> {
  const input = {
    flag,
    what: 'directory',
    code: 'output-dir-unusable',
    hint: `Pass ${flag} a directory you can write to; it is created if it does not exist.`,
  };
  return (value) => {
    const stats = statOrUndefined(value);
    if (stats !== undefined && !stats.isDirectory()) {
      throw inputError(input, value, `is ${describe(stats)}, not a directory`);
    }
    assertCreatable(input, value, value);
    return value;
  };
}

/** The path prefix of files to be written (`keys generate -o keys/release`): its directory can be made. */
export function outputPrefix(flag: string): ValueParser<string> {
  const input = {
    flag,
    what: 'path prefix',
    code: 'output-dir-unusable',
    hint: `Pass ${flag} a path in a directory you can write to; the directory is created if it does not exist.`,
  };
  return (value) => {
    assertCreatable(input, value, path.dirname(path.resolve(value)));
    return value;
  };
}

/** A file read if it is there and written otherwise (known_hosts): a file, or a path where one can be made. */
export function fileOrCreatable(input: InputName): ValueParser<string> {
  return (value) => {
    const stats = statOrUndefined(value);
    if (stats !== undefined && !stats.isFile()) {
      throw inputError(input, value, `is ${describe(stats)}, not a file`);
    }
    assertCreatable(input, value, path.dirname(path.resolve(value)));
    return value;
  };
}

/** The size of each part of a split bundle, as people write it for media (`4GiB`, `25GB`). */
export const partSize: ValueParser<number> = (value) => parsePartSize(value);

/** A positive number: a whole one, or one up to `max` (a fraction such as 0.9). */
export function positiveNumber(
  flag: string,
  options: { integer: true } | { max: number },
): ValueParser<number> {
  const integer = 'integer' in options;
  return (value) => {
    const n = Number(value);
    const max = integer ? undefined : options.max;
    if (
      value.trim() === '' ||
      !Number.isFinite(n) ||
      n <= 0 ||
      (integer && !Number.isInteger(n)) ||
      (max !== undefined && n > max)
    ) {
      throw new ApertusError(
        'usage',
        `${flag} ${value} is not ${integer ? 'a positive whole number' : `a number in (0, ${max}]`}.`,
        { hint: integer ? `e.g. ${flag} 32768` : `e.g. ${flag} 0.9` },
      );
    }
    return n;
  };
}

/**
 * Walks up from `dir` to the nearest path that exists: it must be a directory this process
 * may write into, or nothing below it can be created (`-o /dev/null/x`). `value` is what the
 * operator typed, for the message.
 */
function assertCreatable(input: InputName, value: string, dir: string): void {
  let existing = path.resolve(dir);
  let stats = statOrUndefined(existing);
  while (stats === undefined) {
    const parent = path.dirname(existing);
    if (parent === existing) return;
    existing = parent;
    stats = statOrUndefined(existing);
  }
  if (!stats.isDirectory()) {
    throw inputError(input, value, `cannot be created: ${existing} is ${describe(stats)}, not a directory`);
  }
  try {
    accessSync(existing, constants.W_OK);
  } catch {
    throw inputError(input, value, `cannot be written: ${existing} is not writable for this user`);
  }
}

/** Undefined where nothing is (ENOENT), and where a parent is not a directory (ENOTDIR). */
function statOrUndefined(file: string): Stats | undefined {
  try {
    return statSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new ApertusError('input-unreadable', `Cannot look at ${file}: ${(error as Error).message}.`, {
      hint: 'Check the permissions of the directories on the path.',
      cause: error,
    });
  }
}

function describe(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFile()) return 'a file';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  if (stats.isFIFO()) return 'a pipe';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

function named(input: InputName, value: string): string {
  return input.flag === undefined ? `the ${input.what} ${value}` : `${input.flag} ${value}`;
}

function missing(input: InputName, value: string): ApertusError {
  return new ApertusError(
    input.code,
    `No ${input.what} at ${value}${input.flag === undefined ? '' : ` (${input.flag})`}.`,
    { hint: input.hint },
  );
}

function inputError(input: InputName, value: string, why: string): ApertusError {
  return new ApertusError(input.code, `${capitalize(named(input, value))} ${why}.`, { hint: input.hint });
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
