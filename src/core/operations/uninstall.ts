/**
 * `apertus uninstall`: in a host session, stop and disable the current release's services
 * (and remove their units), remove the release and the `current` link, and clear state.json's
 * pointers; the blob store stays, so installing again sends nothing it holds. `purge` also
 * removes every other release, the image archives and the whole blob store. The audit log,
 * the reports, the trust store, the host key and service data (the RAG collection) stay:
 * they are the host's history and its users' documents. Records an UNINSTALL.
 */
import { ApertusError, isApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { ServiceSpec } from '../layout/types.js';
import { noProgress, type RunOptions } from '../progress.js';
import { stopServices } from '../runtimes/lifecycle.js';
import { removeUnitsScript } from '../runtimes/service-manager.js';
import type { InstallTarget } from '../target/connect.js';
import { DEFAULT_HOST_ROOT, parseHostRoot } from '../target/layout.js';
import { parseProcNetTcp } from '../target/probe.js';
import { listReleases, readRelease } from '../target/releases.js';
import { listImageArchives, removeFromRoot } from '../target/removal.js';
import { sha256Hex, withHostSession } from '../target/session.js';
import { type HostState, RELEASE_LINK } from '../target/state.js';

export const UNINSTALL_STEPS = ['connect', 'stop', 'remove', 'report'] as const;
export type UninstallStep = (typeof UNINSTALL_STEPS)[number];

export interface UninstallOptions extends RunOptions {
  target: InstallTarget;
  root?: string | undefined;
  /** Also remove every other release, the image archives and the blob store. */
  purge?: boolean | undefined;
}

/** The uninstall report: written under reports/, printed with --json. Field names are a contract. */
export interface UninstallReport {
  ok: boolean;
  purge: boolean;
  /** False when there was nothing to stop or remove (then nothing is recorded). */
  changed: boolean;
  path: string | null;
  record: { seq: number } | null;
  host: { transport: string; user: string };
  /** The release that was current; null when none was. */
  release: { name: string; version: string; manifestDigest: string; release: string } | null;
  /** Services stopped and disabled. */
  stopped: Array<{ name: string; port: number }>;
  /** Ports of those services still listening afterwards (then `ok` is false). */
  stillListening: number[];
  removed: { releases: string[]; blobs: number; bytes: number; images: number };
  /** What stays under the root, by design. */
  kept: string[];
}

export async function uninstallHost(options: UninstallOptions): Promise<UninstallReport> {
  const onProgress = options.onProgress ?? noProgress;
  const emit = (step: UninstallStep, status: 'start' | 'ok' | 'fail' | 'skip', detail?: string) =>
    onProgress({ step, status, detail });
  const root = parseHostRoot(options.root ?? DEFAULT_HOST_ROOT);
  const purge = options.purge === true;
  return withHostSession(
    {
      target: options.target,
      root,
      command: purge ? 'uninstall --purge' : 'uninstall',
      lock: 'existing',
      probe: { system: false },
      signal: options.signal,
      onProgress,
    },
    async (session) => {
      const { transport, layout, probe, state } = session;
      const host = { transport: transport.description, user: probe.user ?? 'unknown' };
      const link = probe.root.current;
      const current = link ? await readRelease(transport, layout, link) : null;
      // An interrupted command may have started the release it was switching to.
      const pending =
        state.pending && state.pending.release !== link
          ? await readRelease(transport, layout, state.pending.release).catch(() => null)
          : null;
      const services = uniqueServices([...(current?.services ?? []), ...(pending?.services ?? [])]);

      const listed = purge ? await listReleases(transport, layout) : [];
      const releases = purge ? listed.map((r) => r.release) : link ? [link] : [];
      const images = purge ? await listImageArchives(transport, layout) : [];
      const blobs = purge ? probe.root.blobs : new Map<string, number>();
      const bytes = [...blobs.values()].reduce((sum, b) => sum + b, 0);
      const changed =
        link !== null || services.length > 0 || releases.length > 0 || images.length > 0 || blobs.size > 0;
      const kept = [
        layout.auditLog,
        layout.reports,
        layout.state,
        layout.trust,
        layout.keys,
        layout.data,
        ...(purge ? [] : [`${layout.blobDir} (${probe.root.blobs.size} blobs; --purge removes them)`]),
      ];
      if (!changed) {
        emit('stop', 'skip', 'nothing is installed');
        emit('remove', 'skip', 'nothing to remove');
        emit('report', 'skip', 'nothing changed, nothing recorded');
        return {
          ok: true,
          purge,
          changed: false,
          path: null,
          record: null,
          host,
          release: null,
          stopped: [],
          stillListening: [],
          removed: { releases: [], blobs: 0, bytes: 0, images: 0 },
          kept,
        };
      }

      // Written first: a kill from here on leaves state.json saying what was being removed.
      if (link !== null && RELEASE_LINK.test(link)) {
        await session.writeState({
          ...state,
          pending: {
            command: `uninstall${purge ? ' --purge' : ''}`,
            release: link,
            previous: null,
            since: new Date().toISOString(),
          },
          updatedAt: new Date().toISOString(),
        });
      }

      emit('stop', 'start');
      await stopServices(transport, layout, services);
      await transport.exec(removeUnitsScript(services.map((s) => s.name)));
      const stillListening = await listeningPorts(transport, services);
      emit(
        'stop',
        stillListening.length > 0 ? 'fail' : 'ok',
        services.length === 0
          ? 'no services'
          : `${services.map((s) => s.name).join(', ')} stopped and disabled${stillListening.length > 0 ? `; ports ${stillListening.join(', ')} still listen` : ''}`,
      );

      emit('remove', 'start');
      try {
        // `current` first: from here on no release is current, whatever else fails.
        if (link !== null) await transport.exec(shellQuote(['rm', '-f', layout.current]));
        await removeFromRoot(transport, layout, {
          releases,
          images,
          blobs: [],
          wholeStore: purge,
        });
      } catch (error) {
        emit('remove', 'fail', isApertusError(error) ? error.code : undefined);
        throw error;
      }
      emit(
        'remove',
        'ok',
        `${releases.length > 0 ? releases.join(', ') : 'no release'}${purge ? `, ${blobs.size} blobs, ${images.length} image archives` : '; blobs kept'}`,
      );

      emit('report', 'start');
      const ok = stillListening.length === 0;
      const release = current
        ? {
            name: current.record.name,
            version: current.record.version,
            manifestDigest: current.record.manifestDigest,
            release: link as string,
          }
        : null;
      const removed = { releases, blobs: blobs.size, bytes, images: images.length };
      const recorded = await session.record({
        kind: 'uninstall',
        method: 'UNINSTALL',
        endpoint: release ? `${release.name}@${release.version}` : 'none',
        ok,
        subjectSha256: release
          ? release.manifestDigest.replace(/^sha256:/, '')
          : sha256Hex(JSON.stringify(removed)),
        current: null,
        extra: [purge ? 'purge' : 'blobs-kept'],
        state: (): HostState => ({
          ...state,
          current: null,
          previous: null,
          pending: null,
          updatedAt: new Date().toISOString(),
        }),
        report: ({ path, seq }): UninstallReport => ({
          ok,
          purge,
          changed: true,
          path,
          record: { seq },
          host,
          release,
          stopped: services.map((s) => ({ name: s.name, port: s.port })),
          stillListening,
          removed,
          kept,
        }),
      });
      emit(
        'report',
        recorded.reportError ? 'fail' : 'ok',
        recorded.reportError ?? `${recorded.reportPath}; audit record ${recorded.record.seq}`,
      );
      if (!ok) {
        throw new ApertusError(
          'uninstall-ports-in-use',
          `After stopping its services, port ${stillListening.join(', ')} still listens on ${transport.description}.`,
          {
            kind: 'operation',
            hint: `Find the process with ss -ltnp 'sport = :${stillListening[0]}' on the host and stop it; the release itself is removed (report ${recorded.reportPath}).`,
            details: { report: recorded.report },
          },
        );
      }
      return recorded.report;
    },
  ).catch((error: unknown) => {
    if (isApertusError(error) && error.code === 'host-root-missing')
      throw new ApertusError('nothing-installed', `Nothing is installed under ${root}: ${error.message}`, {
        kind: 'operation',
        hint: 'There is nothing to uninstall; check --root, or `apertus status` to see what a host has.',
      });
    throw error;
  });
}

function uniqueServices(services: ServiceSpec[]): ServiceSpec[] {
  const seen = new Set<string>();
  return services.filter((s) => !seen.has(s.name) && seen.add(s.name));
}

/** Of the services' ports, those a process still listens on; none where /proc/net/tcp is unreadable. */
async function listeningPorts(transport: Transport, services: ServiceSpec[]): Promise<number[]> {
  if (services.length === 0) return [];
  const result = await transport.exec('cat /proc/net/tcp /proc/net/tcp6 2>/dev/null', { reject: false });
  const listening = new Set(parseProcNetTcp(result.stdout));
  return services.map((s) => s.port).filter((port) => listening.has(port));
}
