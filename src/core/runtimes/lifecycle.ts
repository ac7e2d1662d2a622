/**
 * Starting and stopping the services of a release on a host: containers through the
 * host's engine, everything else under systemd where it is PID 1, else under apertus's
 * own supervisor.
 */
import path from 'node:path/posix';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { ServiceSpec } from '../layout/types.js';
import type { HostLayout } from '../target/layout.js';
import type { ServiceManager } from '../target/preflight.js';
import type { ContainerHost } from './container/engine.js';
import { containerStopScript, isContainerService, startContainerService } from './container/service.js';
import { renderServiceCommand, runtimePaths, startOrder } from './service-command.js';
import { startUnderSupervisor, stopUnderSupervisor } from './supervisor.js';
import { renderSystemdUnit, systemdUnitName } from './systemd.js';

const SYSTEMD_UNIT_DIR = '/etc/systemd/system';

export async function startServices(
  transport: Transport,
  layout: HostLayout,
  releaseDir: string,
  services: ServiceSpec[],
  manager: ServiceManager,
): Promise<void> {
  let containerHost: ContainerHost | undefined;
  for (const service of startOrder(services)) {
    if (isContainerService(service)) {
      // One probe for the release's containers: which engine, GPU access.
      containerHost = await startContainerService(transport, {
        service,
        releaseDir,
        root: layout.root,
        manager,
        ...(containerHost ? { host: containerHost } : {}),
      });
      continue;
    }
    const argv = renderServiceCommand(service, releaseDir, layout.root);
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
      const runtime = runtimePaths(releaseDir);
      await transport.exec(
        startUnderSupervisor({
          name: service.name,
          node: runtime.node,
          supervisor: runtime.supervisor,
          argv,
          runDir: layout.run,
          logDir: layout.logs,
        }),
      );
    }
  }
}

/** Stops services, each before the ones it calls (the RAG service before its model servers). */
export async function stopServices(
  transport: Transport,
  layout: HostLayout,
  services: ServiceSpec[],
): Promise<void> {
  for (const service of startOrder(services).reverse()) {
    await transport.exec(
      [
        // Whichever manager ran it last: stopping what is not running is not an error.
        `if [ -d /run/systemd/system ]; then systemctl stop ${shellQuote([systemdUnitName(service.name)])} 2>/dev/null || true; fi`,
        stopUnderSupervisor({ name: service.name, runDir: layout.run }),
        ...(isContainerService(service) ? [containerStopScript(service.name)] : []),
      ].join('\n'),
    );
  }
}
