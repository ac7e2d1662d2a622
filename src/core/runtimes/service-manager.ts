/**
 * Running a service under the host's service manager: a systemd unit where systemd is
 * PID 1, else apertus's own supervisor (supervisor.ts). Shared by every kind: our Node
 * servers run as commands of the runtime component, containers as units that run the
 * engine in the foreground.
 */
import path from 'node:path/posix';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { HostLayout } from '../target/layout.js';
import type { StartContext } from './adapter.js';
import { runtimePaths } from './runtime-files.js';
import { startUnderSupervisor, stopUnderSupervisor } from './supervisor.js';
import { renderSystemdUnit, systemdUnitName } from './systemd.js';

const SYSTEMD_UNIT_DIR = '/etc/systemd/system';

/** Shell commands, joined with &&, that write a service's unit and (re)start it. */
export function installUnitCommands(service: string, unitText: string): string[] {
  const unit = systemdUnitName(service);
  return [
    `printf '%s' ${shellQuote([unitText])} > ${shellQuote([path.join(SYSTEMD_UNIT_DIR, unit)])}`,
    'systemctl daemon-reload',
    shellQuote(['systemctl', 'restart', unit]),
  ];
}

/** Starts a command of the release's runtime component (argv, program first) as the service `name`. */
export async function startRuntimeCommand(
  transport: Transport,
  name: string,
  argv: string[],
  context: StartContext,
): Promise<void> {
  const { releaseDir, layout } = context;
  if (context.manager === 'systemd') {
    const text = renderSystemdUnit({ service: name, argv, workingDirectory: releaseDir });
    await transport.exec(installUnitCommands(name, text).join(' && '));
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

/** Shell lines that stop the service under whichever manager ran it last; stopping what is not running is not an error. */
export function managedStopScript(name: string, layout: HostLayout): string {
  return [
    `if [ -d /run/systemd/system ]; then systemctl stop ${shellQuote([systemdUnitName(name)])} 2>/dev/null || true; fi`,
    stopUnderSupervisor({ name, runDir: layout.run }),
  ].join('\n');
}
