/**
 * `apertus prune`: in a host session, remove the releases prune-plan.ts does not keep,
 * then the blobs and image archives no kept release references; record a PRUNE in the
 * audit log. `dryRun` takes no lock and changes nothing: it returns the plan.
 */
import { ApertusError, isApertusError } from '../errors.js';
import { noProgress, type RunOptions } from '../progress.js';
import type { InstallTarget } from '../target/connect.js';
import { DEFAULT_HOST_ROOT, parseHostRoot } from '../target/layout.js';
import { listReleases } from '../target/releases.js';
import { listImageArchives, removeFromRoot } from '../target/removal.js';
import { sha256Hex, withHostSession } from '../target/session.js';
import { type PrunePlan, planPrune } from './prune-plan.js';

export const PRUNE_STEPS = ['connect', 'plan', 'remove', 'report'] as const;
export type PruneStep = (typeof PRUNE_STEPS)[number];

/** Releases kept besides the current and previous ones when --keep is not given. */
export const DEFAULT_PRUNE_KEEP = 2;

export interface PruneOptions extends RunOptions {
  target: InstallTarget;
  root?: string | undefined;
  keep?: number | undefined;
  dryRun?: boolean | undefined;
}

/** The prune report: written under reports/ (not for a dry run), printed with --json. Field names are a contract. */
export interface PruneReport {
  ok: boolean;
  dryRun: boolean;
  /** The report's path on the host; null for a dry run. */
  path: string | null;
  record: { seq: number } | null;
  host: { transport: string; user: string };
  current: string | null;
  previous: string | null;
  plan: PrunePlan;
  /** What was removed; all zero for a dry run. */
  removed: { releases: number; blobs: number; bytes: number; images: number };
}

export async function pruneHost(options: PruneOptions): Promise<PruneReport> {
  const onProgress = options.onProgress ?? noProgress;
  const emit = (step: PruneStep, status: 'start' | 'ok' | 'fail' | 'skip', detail?: string) =>
    onProgress({ step, status, detail });
  const root = parseHostRoot(options.root ?? DEFAULT_HOST_ROOT);
  const keep = options.keep ?? DEFAULT_PRUNE_KEEP;
  if (!Number.isSafeInteger(keep) || keep < 0) {
    throw new ApertusError('usage', `--keep ${keep} is not a whole number of releases.`, {
      hint: 'Pass --keep N with N = 0, 1, 2, ...: the current and previous releases are kept whatever N is.',
    });
  }
  const dryRun = options.dryRun === true;
  return withHostSession(
    {
      target: options.target,
      root,
      command: `prune --keep ${keep}`,
      lock: dryRun ? false : 'existing',
      probe: { system: false },
      signal: options.signal,
      onProgress,
    },
    async (session) => {
      const { transport, layout, probe, state, signal } = session;
      emit('plan', 'start');
      if (session.stateProblem) {
        emit('plan', 'fail', 'state.json unreadable');
        throw new ApertusError('host-state-invalid', session.stateProblem, {
          kind: 'operation',
          hint: 'Prune decides what to keep from state.json; repair it first (`apertus status` says what is wrong).',
        });
      }
      const listed = await listReleases(transport, layout, signal);
      const current = probe.root.current;
      const plan = planPrune({
        releases: listed.map((r) => ({
          release: r.release,
          stagedAt: r.record?.stagedAt ?? null,
          blobs: r.record?.blobs ?? null,
        })),
        current,
        previous: state.previous,
        pending: state.pending
          ? [state.pending.release, ...(state.pending.previous ? [state.pending.previous] : [])]
          : [],
        keep,
        store: probe.root.blobs,
        images: await listImageArchives(transport, layout, signal),
      });
      const removing = plan.releases.filter((r) => r.action === 'remove');
      emit(
        'plan',
        'ok',
        `${removing.length} of ${plan.releases.length} releases, ${plan.blobs.remove.length} blobs (${plan.blobs.removeBytes} bytes), ${plan.images.remove.length} image archives to remove`,
      );
      const host = { transport: transport.description, user: probe.user ?? 'unknown' };
      if (dryRun) {
        emit('remove', 'skip', 'dry run');
        emit('report', 'skip', 'dry run');
        return {
          ok: true,
          dryRun: true,
          path: null,
          record: null,
          host,
          current,
          previous: state.previous,
          plan,
          removed: { releases: 0, blobs: 0, bytes: 0, images: 0 },
        };
      }
      emit('remove', 'start');
      await removeFromRoot(transport, layout, {
        releases: removing.map((r) => r.release),
        images: plan.images.remove,
        blobs: plan.blobs.remove.map((b) => b.digest),
      }).catch((error: unknown) => {
        emit('remove', 'fail', isApertusError(error) ? error.code : undefined);
        throw error;
      });
      const removed = {
        releases: removing.length,
        blobs: plan.blobs.remove.length,
        bytes: plan.blobs.removeBytes,
        images: plan.images.remove.length,
      };
      emit(
        'remove',
        'ok',
        `${removed.releases} releases, ${removed.blobs} blobs, ${removed.images} image archives`,
      );
      emit('report', 'start');
      const recorded = await session.record({
        kind: 'prune',
        method: 'PRUNE',
        endpoint: `keep ${keep}`,
        ok: true,
        subjectSha256: sha256Hex(JSON.stringify(plan)),
        current,
        // Unchanged but for the audit anchor, which moves to this record.
        state: () => state,
        report: ({ path, seq }): PruneReport => ({
          ok: true,
          dryRun: false,
          path,
          record: { seq },
          host,
          current,
          previous: state.previous,
          plan,
          removed,
        }),
      });
      emit(
        'report',
        recorded.reportError ? 'fail' : 'ok',
        recorded.reportError ?? `${recorded.reportPath}; audit record ${recorded.record.seq}`,
      );
      return recorded.report;
    },
  ).catch((error: unknown) => {
    if (isApertusError(error) && error.code === 'host-root-missing')
      throw new ApertusError('nothing-installed', `Nothing is installed under ${root}: ${error.message}`, {
        kind: 'operation',
        hint: 'There is nothing to prune; `apertus status` shows what a host has.',
      });
    throw error;
  });
}
