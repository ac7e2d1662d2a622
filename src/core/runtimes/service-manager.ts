/**
 * Running a service under the host's service manager: a systemd unit where systemd is
 * PID 1, else apertus's own supervisor (supervisor.ts). Shared by every kind: our Node
 * servers run as commands of the runtime component, containers as units that run the
 * engine in the foreground.
 */
import path from 'node:path/posix';
import { ApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { HostLayout } from '../target/layout.js';
import type { StartContext } from './adapter.js';
import { runtimePaths } from './runtime-files.js';
import { startUnderSupervisor, stopUnderSupervisor } from './supervisor.js';
import { renderSystemdUnit, systemdUnitName } from './systemd.js';

const SYSTEMD_UNIT_DIR = '/etc/systemd/system';

/** The system account our own servers run as under systemd; made at their first start when absent. */
export const SERVICE_USER = 'apertus';

/** Shell commands, joined with &&, that write a service's unit, enable it at boot and (re)start it. */
export function installUnitCommands(service: string, unitText: string): string[] {
  const unit = systemdUnitName(service);
  return [
    `printf '%s' ${shellQuote([unitText])} > ${shellQuote([path.join(SYSTEMD_UNIT_DIR, unit)])}`,
    'systemctl daemon-reload',
    shellQuote(['systemctl', 'enable', '--quiet', unit]),
    shellQuote(['systemctl', 'restart', unit]),
  ];
}

/**
 * Shell lines that make the service account when the host lacks it: a system user with no
 * home and no login shell, and its own group (useradd, else busybox's adduser).
 */
export function ensureServiceUserScript(user: string = SERVICE_USER): string {
  const u = shellQuote([user]);
  return [
    `if ! id -u ${u} >/dev/null 2>&1; then`,
    `  if command -v useradd >/dev/null 2>&1; then useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ${u}`,
    `  elif command -v adduser >/dev/null 2>&1; then addgroup -S ${u} && adduser -S -D -H -h /nonexistent -s /sbin/nologin -G ${u} ${u}`,
    `  else echo "no useradd or adduser to create the service user "${u} >&2; exit 1; fi`,
    'fi',
  ].join('\n');
}

/** systemd learnt LoadCredential= and the %d specifier in version 247. */
const CREDENTIALS_SINCE = 247;

export interface RuntimeCommandOptions {
  /** Services this one calls: under systemd its unit requires theirs and starts after them. */
  requires?: readonly string[];
  /** Directories it writes (made and given to its user under systemd); default its data directory. */
  writes?: readonly string[];
  /** Directories it only reads that root writes (given to its user under systemd, not writable to it). */
  reads?: readonly string[];
  /** The host's systemd version; older than 247 cannot hand the host key in as a credential. */
  systemdVersion?: number;
}

/**
 * The unit of a command of the release's runtime component under systemd: run as the
 * service user, writing only `writes`; the host key, which only root reads, reaches it as a
 * systemd credential.
 */
export function runtimeCommandUnit(
  name: string,
  argv: readonly string[],
  where: { layout: HostLayout; releaseDir: string },
  options: RuntimeCommandOptions = {},
): { text: string; writes: readonly string[] } {
  const { layout } = where;
  const writes = options.writes ?? [layout.dataDir(name)];
  const needsKey = argv.includes(layout.hostSecretKey);
  // Without credentials (RHEL 8's systemd 239) a service that reads the root-only host key
  // runs as root, with the rest of the hardening.
  const asRoot = needsKey && (options.systemdVersion ?? CREDENTIALS_SINCE) < CREDENTIALS_SINCE;
  const text = renderSystemdUnit({
    service: name,
    argv,
    workingDirectory: where.releaseDir,
    ...(asRoot ? {} : { user: SERVICE_USER }),
    requires: options.requires ?? [],
    readWritePaths: writes,
    credentials: needsKey && !asRoot ? { 'host.key': layout.hostSecretKey } : {},
  });
  return { text, writes };
}

/** Starts a command of the release's runtime component (argv, program first) as the service `name`. */
export async function startRuntimeCommand(
  transport: Transport,
  name: string,
  argv: string[],
  context: StartContext,
  options: RuntimeCommandOptions = {},
): Promise<void> {
  const { releaseDir, layout } = context;
  if (context.manager === 'systemd') {
    const version = await transport.exec('systemctl --version', { reject: false });
    const systemdVersion = Number(/^systemd (\d+)/.exec(version.stdout)?.[1] ?? CREDENTIALS_SINCE);
    const { text, writes } = runtimeCommandUnit(name, argv, context, { ...options, systemdVersion });
    const result = await transport.exec(
      [
        'set -e',
        ensureServiceUserScript(),
        ...[...writes, ...(options.reads ?? [])].flatMap((dir) => [
          shellQuote(['mkdir', '-p', dir]),
          shellQuote(['chown', '-R', `${SERVICE_USER}:${SERVICE_USER}`, dir]),
        ]),
        installUnitCommands(name, text).join(' && '),
      ].join('\n'),
      { reject: false },
    );
    if (result.exitCode !== 0) {
      throw new ApertusError(
        'service-start-failed',
        `Starting ${systemdUnitName(name)} on ${transport.description} failed with exit code ${result.exitCode}: ${result.stderr.trim().slice(-500)}`,
        {
          kind: 'operation',
          hint: `See \`journalctl -u ${systemdUnitName(name)}\` on the host, fix what it says, then install again.`,
        },
      );
    }
    return;
  }
  const runtime = runtimePaths(releaseDir);
  await transport.exec(
    startUnderSupervisor({
      name,
      node: runtime.node,
      supervisor: runtime.supervisor,
      argv,
      runDir: layout.run,
      logDir: layout.logs,
    }),
  );
}

/**
 * Shell lines that stop the service under whichever manager ran it last, and under systemd
 * disable it, so a release that is no longer current does not start at boot; stopping what
 * is not running is not an error.
 */
export function managedStopScript(name: string, layout: HostLayout): string {
  const unit = shellQuote([systemdUnitName(name)]);
  return [
    `if [ -d /run/systemd/system ]; then systemctl disable --now --quiet ${unit} 2>/dev/null || systemctl stop ${unit} 2>/dev/null || true; fi`,
    stopUnderSupervisor({ name, runDir: layout.run }),
  ].join('\n');
}

/** Shell lines that remove the services' unit files (uninstall); a host without systemd has none. */
export function removeUnitsScript(names: readonly string[]): string {
  if (names.length === 0) return 'true';
  const files = names.map((name) => path.join(SYSTEMD_UNIT_DIR, systemdUnitName(name)));
  return `if [ -d /run/systemd/system ]; then ${shellQuote(['rm', '-f', ...files])} && systemctl daemon-reload; fi`;
}
