import path from 'node:path/posix';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { ServiceSpec } from '../layout/types.js';
import { renderLlamacppCommand } from '../services/llamacpp.js';
import { startUnderSupervisor, stopUnderSupervisor } from '../services/supervisor.js';
import { renderSystemdUnit, systemdUnitName } from '../services/systemd.js';
import type { HostLayout } from './host-layout.js';
import type { ServiceManager } from './preflight.js';
import { RELEASE_FILE, type ReleaseRecord } from './stage.js';

/** A release found on the host: where it is and what it runs. */
export interface Release {
  dir: string;
  record: ReleaseRecord;
  services: ServiceSpec[];
}

const SYSTEMD_UNIT_DIR = '/etc/systemd/system';

export async function readRelease(
  transport: Transport,
  layout: HostLayout,
  linkTarget: string,
): Promise<Release | null> {
  const dir = path.join(layout.root, linkTarget);
  const result = await transport.exec(shellQuote(['cat', path.join(dir, RELEASE_FILE)]), { reject: false });
  if (result.exitCode !== 0) return null;
  try {
    const record = JSON.parse(result.stdout) as ReleaseRecord;
    return { dir, record, services: record.services ?? [] };
  } catch {
    return null;
  }
}

/** Points `current` at a release by renaming a new link over it: readers see old or new, never none. */
export async function switchCurrent(
  transport: Transport,
  layout: HostLayout,
  linkTarget: string,
): Promise<void> {
  const next = `${layout.current}.next`;
  await transport.exec(
    [
      shellQuote(['rm', '-f', next]),
      shellQuote(['ln', '-s', linkTarget, next]),
      // mv -T renames onto the link itself instead of moving into the directory it points at.
      shellQuote(['mv', '-T', '-f', next, layout.current]),
    ].join(' && '),
  );
}

export async function removeCurrent(transport: Transport, layout: HostLayout): Promise<void> {
  await transport.exec(shellQuote(['rm', '-f', layout.current]));
}

/** Removes a release this install created; blobs stay in the store for the next try. */
export async function removeRelease(
  transport: Transport,
  layout: HostLayout,
  dir: string,
  created: boolean,
): Promise<void> {
  await removeCurrent(transport, layout);
  if (created) await transport.exec(shellQuote(['rm', '-rf', dir]));
}

function servicePaths(releaseDir: string, service: ServiceSpec) {
  const runtime = path.join(releaseDir, 'runtime');
  return {
    node: path.join(runtime, 'bin', 'node'),
    server: path.join(runtime, 'server.mjs'),
    supervisor: path.join(runtime, 'supervisor.mjs'),
    modelPath: path.join(releaseDir, service.model.component, service.model.path),
  };
}

export async function startServices(
  transport: Transport,
  layout: HostLayout,
  releaseDir: string,
  services: ServiceSpec[],
  manager: ServiceManager,
): Promise<void> {
  for (const service of services) {
    const paths = servicePaths(releaseDir, service);
    const argv = renderLlamacppCommand(service, paths);
    if (manager === 'systemd') {
      const unit = systemdUnitName(service.name);
      const text = renderSystemdUnit({ service: service.name, argv, workingDirectory: releaseDir });
      await transport.exec(
        [
          `printf '%s' ${shellQuote([text])} > ${shellQuote([path.join(SYSTEMD_UNIT_DIR, unit)])}`,
          'systemctl daemon-reload',
          shellQuote(['systemctl', 'restart', unit]),
        ].join(' && '),
      );
    } else {
      await transport.exec(
        startUnderSupervisor({
          name: service.name,
          node: paths.node,
          supervisor: paths.supervisor,
          argv,
          runDir: layout.run,
          logDir: layout.logs,
        }),
      );
    }
  }
}

export async function stopServices(
  transport: Transport,
  layout: HostLayout,
  services: ServiceSpec[],
): Promise<void> {
  for (const service of services) {
    await transport.exec(
      [
        // Whichever manager ran it last: stopping what is not running is not an error.
        `if [ -d /run/systemd/system ]; then systemctl stop ${shellQuote([systemdUnitName(service.name)])} 2>/dev/null || true; fi`,
        stopUnderSupervisor({ name: service.name, runDir: layout.run }),
      ].join('\n'),
    );
  }
}
