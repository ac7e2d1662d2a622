/**
 * Wheels components on the host: each becomes a venv at `<release>/venvs/<component>`,
 * made with the host's own python3 and filled from the staged wheelhouse only:
 * `pip install --no-index --find-links <component>/wheels --require-hashes -r
 * <component>/requirements.lock`, so nothing is fetched and every file is checked against
 * the hash it was bundled with. The host's Python must be the version the wheels were
 * resolved for; preflight checks that before anything is uploaded.
 */
import path from 'node:path/posix';
import { ApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { BundleConfig } from '../layout/types.js';

/** Inside a wheels component (src/core/sources/pip/resolve-pip.ts writes them). */
const WHEELS_DIR = 'wheels';
const LOCK_FILE = 'requirements.lock';
/** Written last into a venv: one without it is incomplete and is made again. */
const COMPLETE_MARKER = '.apertus-venv-complete';
/** Bundles written before the recipe named a version were resolved for this one. */
const DEFAULT_PYTHON = '3.11';

export interface WheelsVenv {
  component: string;
  /** MAJOR.MINOR the wheels were resolved for. */
  python: string;
  /** The staged component: holds wheels/ and requirements.lock. */
  componentDir: string;
  venvDir: string;
}

/** The venvs a release needs: one per wheels component of the bundle. */
export function wheelsVenvs(config: BundleConfig, releaseDir: string): WheelsVenv[] {
  return config.components
    .filter((c) => c.kind === 'wheels')
    .map((c) => ({
      component: c.name,
      python: c.provenance.python ?? DEFAULT_PYTHON,
      componentDir: path.join(releaseDir, c.name),
      venvDir: path.join(releaseDir, 'venvs', c.name),
    }));
}

/** Python version (MAJOR.MINOR) -> the interpreter on the host that has it, with venv support. */
export type HostPythons = Map<string, string>;

/**
 * Finds, for each Python version the venvs need, an interpreter on the host (pythonX.Y,
 * else python3) that has that version and can make venvs. Throws with the next step when
 * there is none. Changes nothing on the host.
 */
export async function checkHostPython(
  transport: Transport,
  venvs: WheelsVenv[],
  signal?: AbortSignal,
): Promise<HostPythons> {
  const found: HostPythons = new Map();
  for (const version of [...new Set(venvs.map((v) => v.python))]) {
    const candidates = [`python${version}`, 'python3'];
    const script = candidates
      .map((p) =>
        [
          `if command -v ${shellQuote([p])} >/dev/null 2>&1; then`,
          `  v=$(${shellQuote([p])} -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo unknown)`,
          `  if ${shellQuote([p])} -c 'import venv, ensurepip' >/dev/null 2>&1; then venv=yes; else venv=no; fi`,
          `  echo "python ${p} $v $venv"`,
          'fi',
        ].join('\n'),
      )
      .join('\n');
    const result = await transport.exec('sh -s', { stdin: `${script}\ntrue\n`, reject: false, signal });
    const pythons = result.stdout
      .split('\n')
      .map((line) => line.split(' '))
      .filter((parts) => parts[0] === 'python' && parts.length === 4)
      .map(([, name, v, venv]) => ({ name: name as string, version: v as string, venv: venv === 'yes' }));
    const components = venvs.filter((v) => v.python === version).map((v) => v.component);
    const match = pythons.find((p) => p.version === version);
    if (match === undefined) {
      const seen = pythons.map((p) => `${p.name} is ${p.version}`).join(', ');
      throw new ApertusError(
        pythons.length === 0 ? 'host-python-missing' : 'host-python-mismatch',
        pythons.length === 0
          ? `${transport.description} has no python3; wheels component ${components.join(', ')} needs Python ${version}.`
          : `${transport.description} has no Python ${version} (${seen}); wheels component ${components.join(', ')} was resolved for Python ${version}.`,
        {
          kind: 'operation',
          hint: `Install Python ${version} on the host (as python${version} or python3, with its venv module), or bundle again with \`python: "${pythons.find((p) => p.version !== 'unknown')?.version ?? version}"\` on the component so the wheels match the host.`,
        },
      );
    }
    if (!match.venv) {
      throw new ApertusError(
        'host-python-venv-missing',
        `${match.name} on ${transport.description} cannot make venvs (no venv/ensurepip module).`,
        {
          kind: 'operation',
          hint: `Install the venv module on the host (Debian/Ubuntu: apt-get install python${version}-venv), then run the install again.`,
        },
      );
    }
    found.set(version, match.name);
  }
  return found;
}

/** Venvs made (or kept, when complete from an earlier run of the same release). */
export interface VenvResult {
  component: string;
  venvDir: string;
  created: boolean;
}

export async function createVenvs(
  transport: Transport,
  venvs: WheelsVenv[],
  pythons: HostPythons,
  signal?: AbortSignal,
): Promise<VenvResult[]> {
  const results: VenvResult[] = [];
  for (const venv of venvs) {
    const python = pythons.get(venv.python);
    if (python === undefined) throw new Error(`no host python checked for ${venv.python}`);
    const q = (value: string) => shellQuote([value]);
    const bin = path.join(venv.venvDir, 'bin', 'python');
    const script = [
      'set -eu',
      // Only the staged wheels count: no pip.conf of the host may add an index or constraints.
      'export PIP_CONFIG_FILE=/dev/null PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1',
      `if [ -f ${q(path.join(venv.venvDir, COMPLETE_MARKER))} ]; then echo kept; exit 0; fi`,
      `rm -rf ${q(venv.venvDir)}`,
      `mkdir -p ${q(path.dirname(venv.venvDir))}`,
      `${q(python)} -m venv ${q(venv.venvDir)}`,
      `${q(bin)} -m pip install --no-index --no-cache-dir --only-binary=:all: --require-hashes --find-links ${q(path.join(venv.componentDir, WHEELS_DIR))} -r ${q(path.join(venv.componentDir, LOCK_FILE))}`,
      `touch ${q(path.join(venv.venvDir, COMPLETE_MARKER))}`,
      'echo created',
    ].join('\n');
    const result = await transport.exec('sh -s', { stdin: `${script}\n`, reject: false, signal });
    if (result.exitCode !== 0) {
      const tail = `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-12).join('\n');
      throw new ApertusError(
        'install-venv-failed',
        `Installing the wheels of ${venv.component} into ${venv.venvDir} failed (exit code ${result.exitCode}):\n${tail}`,
        {
          kind: 'operation',
          hint: /is not a supported wheel|THESE PACKAGES DO NOT MATCH/.test(tail)
            ? "The host's Python or platform does not take these wheels, or a staged file changed: check the component's python: and platforms: against the host (`python3 -m pip debug --verbose` lists its tags), bundle again and install."
            : "Read pip's message above; the release is staged but not active, so run the install again once it is fixed.",
        },
      );
    }
    results.push({
      component: venv.component,
      venvDir: venv.venvDir,
      created: result.stdout.trim().endsWith('created'),
    });
  }
  return results;
}
