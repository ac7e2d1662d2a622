import type { FleetHost } from '../../core/operations/fleet-hosts.js';
import type { ProgressEvent } from '../../core/progress.js';
import { runInterruptible } from '../interrupt.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../output/json-output.js';
import { ReportedFailure } from '../reported-failure.js';

/**
 * A day-two command on every host of an inventory, 5 at a time: a progress line per host
 * step on stderr (none with --json), then one report (each host's text under its name, or
 * JSON), and exit 1 when any host failed. `hint` is what to do after an interrupt.
 */
export async function runOnFleet<T extends { ok: boolean }>(
  io: CliIO,
  fleet: readonly FleetHost[],
  options: { json?: boolean | undefined; hint: string; format: (result: T) => string },
  run: (host: FleetHost, signal: AbortSignal, onProgress?: (event: ProgressEvent) => void) => Promise<T>,
): Promise<void> {
  const [{ onEveryHost }, { fleetProgressLines, formatFleetOutcomes }] = await Promise.all([
    import('../../core/operations/fleet-hosts.js'),
    import('../output/fleet-lines.js'),
  ]);
  const lines = options.json ? undefined : fleetProgressLines(io);
  const report = await runInterruptible(io, options.hint, (signal) =>
    onEveryHost(
      fleet,
      5,
      (host) => run(host, signal, lines && ((event) => lines.host(host.name, event))),
      signal,
    ),
  );
  if (options.json) writeJson(io, report);
  else io.stdout.write(formatFleetOutcomes(report, options.format));
  if (!report.ok) throw new ReportedFailure();
}
