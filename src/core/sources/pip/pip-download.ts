/**
 * Runs `python3 -m pip download` on this machine for another machine's Python: binary
 * wheels only, for the target's Python version and platform tags, into a wheel directory
 * that later runs reuse (pip skips a file it finds there, checking its hash). pip does the
 * dependency resolution; we read from its output which files it chose.
 *
 * pip runs isolated from this machine's pip configuration (PIP_CONFIG_FILE=/dev/null, no
 * inherited PIP_* variables) so the recipe's index is the only one, and it gets the index
 * URL through PIP_INDEX_URL, never on its command line, where credentials would be visible
 * to every user of the machine.
 */
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { ApertusError } from '../../errors.js';
import { scrubSecrets } from './index-url.js';

export interface PipDownloadRequest {
  python: string;
  platforms: string[];
  /** With credentials, if any: goes into pip's environment only. */
  indexUrl: string;
  /** Secrets to scrub from anything of pip's output that we pass on. */
  secrets: string[];
  requirementsFile: string;
  requireHashes: boolean;
  destDir: string;
  /** The Python interpreter that runs pip on this machine; python3 by default. */
  interpreter?: string;
  signal?: AbortSignal | undefined;
}

export interface PipDownloadResult {
  /** Wheel file names pip chose (saved now or found in destDir), in pip's order. */
  wheels: string[];
  /** Of those, the ones pip downloaded in this run. */
  downloaded: string[];
}

const SAVED = /^\s*Saved (.+\.whl)\s*$/;
const ALREADY = /^\s*File was already downloaded (.+\.whl)\s*$/;

export async function pipDownload(request: PipDownloadRequest): Promise<PipDownloadResult> {
  const interpreter = request.interpreter ?? 'python3';
  const args = [
    '-m',
    'pip',
    'download',
    '--no-cache-dir',
    '--disable-pip-version-check',
    '--no-input',
    '--progress-bar',
    'off',
    '--only-binary=:all:',
    '--implementation',
    'cp',
    '--python-version',
    request.python,
    ...request.platforms.flatMap((p) => ['--platform', p]),
    '--dest',
    '.',
    ...(request.requireHashes ? ['--require-hashes'] : []),
    '-r',
    request.requirementsFile,
  ];
  const result = await execa(interpreter, args, {
    cwd: request.destDir,
    env: pipEnvironment(request.indexUrl),
    extendEnv: false,
    reject: false,
    all: true,
    stdin: 'ignore',
    ...(request.signal ? { cancelSignal: request.signal } : {}),
  });
  const output = scrubSecrets(result.all ?? '', request.secrets);
  if (request.signal?.aborted) throw request.signal.reason;
  if (result.failed) throw pipFailure(result, output, interpreter, request);

  const wheels: string[] = [];
  const downloaded: string[] = [];
  for (const line of output.split('\n')) {
    const saved = SAVED.exec(line)?.[1];
    const already = ALREADY.exec(line)?.[1];
    const file = saved ?? already;
    if (file === undefined) continue;
    const name = path.basename(file.trim());
    if (!wheels.includes(name)) wheels.push(name);
    if (saved !== undefined && !downloaded.includes(name)) downloaded.push(name);
  }
  if (wheels.length === 0) {
    throw new ApertusError(
      'pip-download-unreadable',
      `pip download finished but named no wheel it saved (${request.requirementsFile}).`,
      {
        kind: 'operation',
        hint: 'Check that the requirements file names at least one package; if it does, this pip prints a format apertus does not read: report it with `python3 -m pip --version`.',
        details: { output: output.slice(-2000) },
      },
    );
  }
  return { wheels, downloaded };
}

/** This process's environment without pip's settings, plus ours. */
function pipEnvironment(indexUrl: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith('PIP_')) env[key] = value;
  }
  return {
    ...env,
    PIP_CONFIG_FILE: os.devNull,
    PIP_INDEX_URL: indexUrl,
    PIP_NO_INPUT: '1',
    PYTHONDONTWRITEBYTECODE: '1',
  };
}

function pipFailure(
  result: { exitCode?: number | undefined; code?: string | undefined; isCanceled?: boolean },
  output: string,
  interpreter: string,
  request: PipDownloadRequest,
): ApertusError {
  const tail = output.trim().split('\n').slice(-15).join('\n');
  if (result.code === 'ENOENT') {
    return new ApertusError('pip-python-missing', `${interpreter} is not installed on this machine.`, {
      hint: 'Install Python 3 with pip (Debian: apt-get install python3 python3-pip) on the machine that builds bundles; the target Python version is set by the recipe, not by this interpreter.',
    });
  }
  if (/No module named pip/.test(output)) {
    return new ApertusError('pip-missing', `${interpreter} has no pip module.`, {
      hint: 'Install pip for it (Debian: apt-get install python3-pip, else python3 -m ensurepip --upgrade).',
    });
  }
  if (/DO NOT MATCH THE HASHES/.test(output)) {
    return new ApertusError(
      'pip-hash-mismatch',
      `A wheel downloaded for ${request.requirementsFile} does not match the hash pinned for it:\n${tail}`,
      {
        kind: 'operation',
        hint: 'The index served other bytes than the requirements file pins. Do not bundle them: check the index (or a proxy in between), or update the pin if the new file is trusted.',
      },
    );
  }
  if (/Hashes are required in --require-hashes mode|hash-checking mode/i.test(output)) {
    return new ApertusError(
      'pip-hash-missing',
      `${request.requirementsFile} pins hashes for some requirements but not for all they pull in:\n${tail}`,
      {
        hint: 'In hash-checking mode every package, dependencies included, needs ==VERSION and --hash: pin them all (pip-compile --generate-hashes does), or remove the hashes.',
      },
    );
  }
  if (/No matching distribution found|Could not find a version that satisfies/.test(output)) {
    return new ApertusError(
      'pip-no-matching-wheel',
      `No wheel for CPython ${request.python} on ${request.platforms.join(', ')} satisfies ${request.requirementsFile}:\n${tail}`,
      {
        hint: 'Only binary wheels are bundled. Check the package names and versions, the python: version and the platforms: tags of the component, and that the index has wheels for them.',
      },
    );
  }
  return new ApertusError(
    'pip-download-failed',
    `pip download for ${request.requirementsFile} failed (exit code ${result.exitCode ?? 'none'}):\n${tail}`,
    {
      kind: 'operation',
      hint: "Read pip's message above; check that the index answers (indexUrl in the recipe, or PIP_INDEX_URL) and that its credentials are valid.",
    },
  );
}
