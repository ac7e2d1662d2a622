/**
 * Shell command lines that run a service under apertus's own supervisor
 * (templates/runtime/supervisor.mjs) where systemd is not PID 1. They run on the host
 * through any transport, need only POSIX sh plus `setsid` where it exists, and each is
 * wrapped in a subshell so its `exit` never ends a larger script it is joined into.
 */
import path from 'node:path/posix';
import { ApertusError } from '../errors.js';
import { quoteArg, shellQuote } from '../host/shell-quote.js';

/** Exit status of the status command when the service is not running (as LSB init scripts). */
export const SUPERVISOR_NOT_RUNNING_EXIT = 3;

/** How long start waits for the supervisor to write its pid file. */
const DEFAULT_START_TIMEOUT_S = 10;
/** The supervisor gives its child 10 s after SIGTERM; stop waits a little longer. */
const DEFAULT_STOP_TIMEOUT_S = 15;

export interface SupervisorDirs {
  /** Where pid files live, e.g. /var/lib/apertus/run. */
  runDir: string;
  /** Where logs live, e.g. /var/lib/apertus/logs. */
  logDir: string;
}

export interface SupervisedService extends SupervisorDirs {
  name: string;
  /** The shipped Node binary that runs the supervisor. */
  node: string;
  /** supervisor.mjs on the host. */
  supervisor: string;
  /** The service's command, program first (e.g. from renderLlamacppCommand). */
  argv: readonly string[];
  /** Directory the service starts in; the supervisor's own by default. */
  workingDirectory?: string;
  /** Extra environment for the service. */
  env?: Readonly<Record<string, string>>;
  /** How long to wait for the supervisor's pid file; 10 s by default. */
  startTimeoutSeconds?: number;
}

function checkSeconds(what: string, seconds: number): number {
  if (!Number.isInteger(seconds) || seconds < 1) {
    throw new ApertusError('service-invalid', `${what} must be a whole number of seconds, got ${seconds}`);
  }
  return seconds;
}

function checkName(name: string): void {
  if (!/^[a-z0-9][a-z0-9._-]*$/i.test(name)) {
    throw new ApertusError('service-invalid', `service name "${name}" cannot name a pid or log file`, {
      hint: 'Use letters, digits, ".", "_" and "-" only, starting with a letter or digit.',
    });
  }
}

/** Where the supervisor of `name` keeps its pid file and log. */
export function supervisorFiles(name: string, dirs: SupervisorDirs): { pidFile: string; logFile: string } {
  checkName(name);
  return { pidFile: path.join(dirs.runDir, `${name}.pid`), logFile: path.join(dirs.logDir, `${name}.log`) };
}

/**
 * sh function `apertus_running PID`: true when PID is a live supervisor. Checks the
 * command line where /proc exists, so a recycled pid is not mistaken for the service,
 * and treats zombies as gone.
 */
const RUNNING_FUNCTION = [
  'apertus_running() {',
  '  case "$1" in ""|*[!0-9]*) return 1 ;; esac',
  '  kill -0 "$1" 2>/dev/null || return 1',
  '  [ -r "/proc/$1/stat" ] || return 0',
  '  case "$(sed "s/^.*) //" "/proc/$1/stat" 2>/dev/null | cut -c1)" in Z) return 1 ;; esac',
  '  grep -q supervisor.mjs "/proc/$1/cmdline" 2>/dev/null',
  '}',
  // A tenth of a second where sleep takes fractions (GNU, busybox), else a whole one.
  'apertus_nap() { sleep 0.1 2>/dev/null && apertus_tenths=$((apertus_tenths + 1)) || { sleep 1; apertus_tenths=$((apertus_tenths + 10)); }; }',
].join('\n');

function subshell(lines: string[]): string {
  return `(\n${lines.join('\n')}\n)`;
}

/**
 * Start the service under the supervisor, detached (setsid + nohup, all output to the
 * service log), and return once the supervisor has written its pid file; the service
 * may still be loading. Starting a service that already runs does nothing.
 */
export function startUnderSupervisor(service: SupervisedService): string {
  const { pidFile, logFile } = supervisorFiles(service.name, service);
  if (service.argv.length === 0) {
    throw new ApertusError('service-invalid', `service ${service.name} has no command to run`);
  }
  const envArgs = Object.entries(service.env ?? {}).map(([key, value]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new ApertusError(
        'service-invalid',
        `service ${service.name}: "${key}" is not an environment variable name`,
      );
    }
    return `${key}=${value}`;
  });
  const command = [
    ...(envArgs.length > 0 ? ['env', ...envArgs] : []),
    service.node,
    service.supervisor,
    '--name',
    service.name,
    '--pid-file',
    pidFile,
    '--log-file',
    logFile,
    '--',
    ...service.argv,
  ];
  const startTenths =
    checkSeconds('start timeout', service.startTimeoutSeconds ?? DEFAULT_START_TIMEOUT_S) * 10;
  const pid = quoteArg(pidFile);
  const log = quoteArg(logFile);
  const name = quoteArg(service.name);
  return subshell([
    RUNNING_FUNCTION,
    shellQuote(['mkdir', '-p', path.dirname(pidFile), path.dirname(logFile)]),
    ...(service.workingDirectory ? [`cd ${quoteArg(service.workingDirectory)} || exit 1`] : []),
    `if [ -s ${pid} ] && apertus_running "$(cat ${pid})"; then echo ${name}" already running (supervisor pid $(cat ${pid}))"; exit 0; fi`,
    `rm -f ${pid}`,
    // setsid gives the supervisor its own session and process group, so it outlives this
    // shell and its SSH channel, and stop can signal the whole group as a last resort.
    `if command -v setsid >/dev/null 2>&1; then apertus_detach=setsid; else apertus_detach=; fi`,
    `$apertus_detach nohup ${shellQuote(command)} </dev/null >>${log} 2>&1 &`,
    'apertus_tenths=0',
    `until [ -s ${pid} ] && apertus_running "$(cat ${pid})"; do`,
    `  if [ "$apertus_tenths" -ge ${startTenths} ]; then`,
    `    echo ${name}": the supervisor did not start; last lines of "${log}":" >&2`,
    `    tail -n 20 ${log} >&2`,
    '    exit 1',
    '  fi',
    '  apertus_nap',
    'done',
    `echo ${name}" started (supervisor pid $(cat ${pid}))"`,
  ]);
}

/**
 * Stop the service: SIGTERM to the supervisor (which stops its child and removes the pid
 * file), wait until it is gone, and after `timeoutSeconds` SIGKILL its process group.
 * Stopping a service that does not run succeeds.
 */
export function stopUnderSupervisor(options: {
  name: string;
  runDir: string;
  timeoutSeconds?: number;
}): string {
  const { pidFile } = supervisorFiles(options.name, { runDir: options.runDir, logDir: options.runDir });
  const timeout = checkSeconds('stop timeout', options.timeoutSeconds ?? DEFAULT_STOP_TIMEOUT_S);
  const pid = quoteArg(pidFile);
  const name = quoteArg(options.name);
  return subshell([
    RUNNING_FUNCTION,
    `if [ ! -f ${pid} ]; then echo ${name}" not running"; exit 0; fi`,
    `apertus_pid=$(cat ${pid})`,
    `if ! apertus_running "$apertus_pid"; then rm -f ${pid}; echo ${name}" not running (stale pid file removed)"; exit 0; fi`,
    'kill -TERM "$apertus_pid"',
    'apertus_tenths=0',
    'while apertus_running "$apertus_pid"; do',
    `  if [ "$apertus_tenths" -ge ${timeout * 10} ]; then`,
    // `kill -9 -PGID` is the spelling dash, bash and busybox all accept (dash refuses `--`).
    '    kill -9 "-$apertus_pid" 2>/dev/null || kill -9 "$apertus_pid" 2>/dev/null',
    `    echo ${name}": killed after ${timeout} s" >&2`,
    '    break',
    '  fi',
    '  apertus_nap',
    'done',
    // The supervisor removes its own pid file; after a SIGKILL nobody did.
    `if [ "$(cat ${pid} 2>/dev/null)" = "$apertus_pid" ]; then rm -f ${pid}; fi`,
    `echo ${name}" stopped"`,
  ]);
}

/**
 * Tell whether the service's supervisor runs: prints `running PID` and exits 0, or prints
 * `stopped` and exits SUPERVISOR_NOT_RUNNING_EXIT.
 */
export function supervisorStatusCommand(options: { name: string; runDir: string }): string {
  const { pidFile } = supervisorFiles(options.name, { runDir: options.runDir, logDir: options.runDir });
  const pid = quoteArg(pidFile);
  return subshell([
    RUNNING_FUNCTION,
    `if [ -s ${pid} ] && apertus_running "$(cat ${pid})"; then echo "running $(cat ${pid})"; exit 0; fi`,
    'echo stopped',
    `exit ${SUPERVISOR_NOT_RUNNING_EXIT}`,
  ]);
}
