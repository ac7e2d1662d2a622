import os from 'node:os';
import path from 'node:path/posix';
import { ApertusError, isApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { ServiceSpec } from '../layout/types.js';
import { noProgress, type RunOptions } from '../progress.js';
import { startServices, stopServices } from '../runtimes/lifecycle.js';
import { checkReleaseServices } from '../runtimes/release-health.js';
import type { ServiceCheck } from '../runtimes/verify-services.js';
import { appendInstallRecord, readAuditTail } from '../target/audit-log.js';
import { type InstallTarget, openTarget } from '../target/connect.js';
import { DEFAULT_HOST_ROOT, type HostLayout, hostLayout } from '../target/layout.js';
import { lockHost } from '../target/lock.js';
import type { ServiceManager } from '../target/preflight.js';
import {
  assertPortsFree,
  type Release,
  readRelease,
  removeCurrent,
  switchCurrent,
} from '../target/releases.js';
import { readCurrentLink, readHostState, writeHostStateScript } from '../target/state.js';
import { reportFilePath } from './install-report.js';

/** Step ids reported through onProgress, in order; the CLI gives them titles. */
export const ROLLBACK_STEPS = [
  'connect',
  'lock',
  'stop',
  'activate',
  'verify.health',
  'verify.models',
  'restore',
  'report',
] as const;
export type RollbackStep = (typeof ROLLBACK_STEPS)[number];

export interface RollbackOptions extends RunOptions {
  target: InstallTarget;
  root?: string | undefined;
  /** A version present under releases/<name>/; state.json's previous release when not given. */
  to?: string | undefined;
  /** How long a started service may take to answer /health. */
  healthTimeoutMs?: number | undefined;
}

type ReleaseRef = { name: string; version: string; manifestDigest: string; release: string };

/** The rollback report: written under reports/, printed with --json. Field names are a contract. */
export interface RollbackReport {
  ok: boolean;
  path: string;
  startedAt: string;
  finishedAt: string;
  host: { transport: string; user: string; serviceManager: ServiceManager };
  /** The release that was current before. */
  from: ReleaseRef | null;
  /** The release asked for. */
  to: ReleaseRef;
  checks: ServiceCheck[];
  /** Why the target's services could not be started at all, when that is what failed. */
  activateError: string | null;
  /** When the target failed: the release put back, and whether it answers again. */
  restored: { to: string | null; healthy: boolean } | null;
  /** The release `current` points at afterwards. */
  current: string | null;
  services: Array<{ name: string; port: number }>;
}

/**
 * Switches a host back to an earlier release under the host lock: stops the current
 * services, points `current` at the target, starts its services (release.json lists them)
 * and checks they answer with their models listed. When the target does not come up, the
 * release that was current is put back and started again. Writes a report, updates
 * state.json (on success) and appends a ROLLBACK record to the install audit log.
 */
export async function rollbackRelease(options: RollbackOptions): Promise<RollbackReport> {
  const onProgress = options.onProgress ?? noProgress;
  const { signal } = options;
  const startedAt = new Date();
  const emit = (step: RollbackStep, status: 'start' | 'ok' | 'fail' | 'skip', detail?: string) =>
    onProgress({ step, status, detail });
  const layout = hostLayout(options.root ?? DEFAULT_HOST_ROOT);

  emit('connect', 'start');
  const transport = await openTarget(options.target, { signal, onProgress });
  emit('connect', 'ok', transport.description);
  try {
    emit('lock', 'start');
    // A root that does not exist holds nothing to roll back to: say so without creating it.
    const rootExists = await transport.exec(shellQuote(['test', '-d', layout.root]), {
      reject: false,
      signal,
    });
    if (rootExists.exitCode !== 0) {
      await chooseTarget(transport, layout, options.to, signal).catch((error: unknown) => {
        emit('lock', 'fail', isApertusError(error) ? error.code : undefined);
        throw error;
      });
    }
    const unlock = await lockHost(
      transport,
      layout,
      `apertus rollback${options.to ? ` to ${options.to}` : ''} by ${rollbackHolder()} since ${startedAt.toISOString()}`,
    ).catch((error: unknown) => {
      emit('lock', 'fail', 'another install or rollback holds the lock');
      throw error;
    });
    try {
      const chosen = await chooseTarget(transport, layout, options.to, signal).catch((error: unknown) => {
        emit('lock', 'fail', isApertusError(error) ? error.code : undefined);
        throw error;
      });
      // Under the lock and before any change: a damaged audit log stops the rollback here.
      const auditTail = await readAuditTail(transport, layout, signal);
      emit('lock', 'ok', `${chosen.from ? chosen.from.linkTarget : 'nothing'} -> ${chosen.to.linkTarget}`);
      const report = await applyRollback(transport, layout, chosen, options, startedAt, emit, signal);
      const audit = await appendInstallRecord(
        transport,
        layout,
        auditTail,
        {
          bundle: chosen.to.record,
          ok: report.ok,
          reportPath: report.path,
          reportText: rollbackReportText(report),
          current: report.current,
          method: 'ROLLBACK',
        },
        signal,
      );
      emit('report', 'ok', `${report.path}; audit record ${audit.seq} in ${layout.auditLog}`);
      if (!report.ok) {
        const failures = [
          ...(report.activateError ? [`activate: ${report.activateError}`] : []),
          ...report.checks
            .filter((c) => c.status === 'fail')
            .map((c) => `${c.id} (${c.service}): ${c.detail}`),
        ];
        const restored = report.restored?.to
          ? `Restored ${report.restored.to}${report.restored.healthy ? ', which answers again' : ', which does NOT answer'}.`
          : 'No release was running before; none is current now.';
        throw new ApertusError(
          'rollback-verification-failed',
          `${chosen.to.linkTarget} did not come up on ${transport.description}: ${failures.join('; ')}. ${restored}`,
          {
            kind: 'operation',
            hint: `Read the service logs under ${layout.logs} on the host, and the report ${report.path}.`,
            details: { report },
          },
        );
      }
      return report;
    } finally {
      await unlock();
    }
  } finally {
    await transport.close();
  }
}

type Located = Release & { linkTarget: string };

interface Chosen {
  from: Located | null;
  to: Located;
}

async function chooseTarget(
  transport: Transport,
  layout: HostLayout,
  to: string | undefined,
  signal?: AbortSignal,
): Promise<Chosen> {
  const state = await readHostState(transport, layout, signal);
  const link = await readCurrentLink(transport, layout, signal);
  const current = link ? await readRelease(transport, layout, link) : null;
  const from = current && link ? { ...current, linkTarget: link } : null;
  const name = current?.record.name ?? state.current?.name;
  if (!name) {
    throw new ApertusError(
      'nothing-installed',
      `Nothing is installed under ${layout.root} on ${transport.description}.`,
      {
        kind: 'operation',
        hint: 'Install a bundle with `apertus install`; `apertus status` shows what a host has.',
      },
    );
  }
  const present = await releaseVersions(transport, layout, name, signal);
  const others = present.filter((v) => layout.releaseLinkTarget(name, v) !== link);
  const choices =
    others.length > 0
      ? `Releases of ${name} on the host besides the current one: ${others.join(', ')}.`
      : `The host has no other release of ${name}.`;

  let linkTarget: string;
  if (to !== undefined) {
    linkTarget = layout.releaseLinkTarget(name, to);
    if (path.basename(linkTarget) !== to || !present.includes(to)) {
      throw new ApertusError(
        'rollback-target-missing',
        `${name} ${to} is not on ${transport.description} (no ${layout.release(name, to)}).`,
        {
          hint: `${choices} Pass one of them to --to, or install ${name} ${to} with \`apertus install\`.`,
        },
      );
    }
    if (linkTarget === link) {
      throw new ApertusError(
        'rollback-target-current',
        `${name} ${to} is already the current release on ${transport.description}.`,
        {
          hint: `${choices} Pass another version to --to; \`apertus status\` shows the host.`,
        },
      );
    }
  } else {
    if (!state.previous || state.previous === link) {
      throw new ApertusError(
        'rollback-no-previous',
        `${transport.description} records no previous release to go back to.`,
        {
          kind: 'operation',
          hint:
            others.length > 0
              ? `${choices} Pass one with --to VERSION.`
              : `${choices} Nothing to roll back to.`,
        },
      );
    }
    linkTarget = state.previous;
  }
  const release = await readRelease(transport, layout, linkTarget);
  if (!release) {
    throw new ApertusError(
      'rollback-target-missing',
      `${linkTarget} on ${transport.description} is gone or incomplete (no readable release.json).`,
      {
        kind: 'operation',
        hint: `${choices} Pass one with --to VERSION, or install the release again with \`apertus install\`.`,
      },
    );
  }
  return { from, to: { ...release, linkTarget } };
}

async function releaseVersions(
  transport: Transport,
  layout: HostLayout,
  name: string,
  signal?: AbortSignal,
): Promise<string[]> {
  const dir = path.join(layout.releases, name);
  // Complete releases only: staging leftovers start with a dot and have no release.json.
  const result = await transport.exec(
    `cd ${shellQuote([dir])} 2>/dev/null && for d in *; do [ -f "$d/release.json" ] && printf '%s\\n' "$d"; done; true`,
    { reject: false, signal },
  );
  return result.stdout.split('\n').filter((v) => v !== '');
}

async function applyRollback(
  transport: Transport,
  layout: HostLayout,
  chosen: Chosen,
  options: RollbackOptions,
  startedAt: Date,
  emit: (step: RollbackStep, status: 'start' | 'ok' | 'fail' | 'skip', detail?: string) => void,
  signal?: AbortSignal,
): Promise<RollbackReport> {
  const { from, to } = chosen;
  const manager: ServiceManager =
    (await transport.exec('[ -d /run/systemd/system ]', { reject: false })).exitCode === 0
      ? 'systemd'
      : 'supervisor';
  const user = (await transport.exec('id -un', { reject: false })).stdout.trim() || 'unknown';
  const healthTimeoutMs = options.healthTimeoutMs ?? 60_000;

  emit('stop', 'start');
  await stopServices(transport, layout, from ? from.services : to.services);
  emit('stop', 'ok', from ? `stopped ${names(from.services)}` : 'nothing was running');

  emit('activate', 'start');
  let activateError: string | null = null;
  try {
    await assertPortsFree(transport, to.services);
    await switchCurrent(transport, layout, to.linkTarget);
    await startServices(transport, layout, to.dir, to.services, manager);
    emit('activate', 'ok', `current -> ${to.linkTarget}`);
  } catch (error) {
    activateError = isApertusError(error) ? `${error.code}: ${error.message}` : String(error);
    emit('activate', 'fail', activateError);
  }

  const checks =
    activateError === null ? await checkReleaseServices(transport, to.services, healthTimeoutMs, signal) : [];
  for (const id of ['verify.health', 'verify.models'] as const) {
    const mine = checks.filter((c) => c.id === id);
    const failed = mine.find((c) => c.status === 'fail');
    if (mine.length === 0)
      emit(id, 'skip', activateError ? 'not run: activation failed' : 'no such services');
    else
      emit(
        id,
        failed ? 'fail' : 'ok',
        failed
          ? `${failed.service}: ${failed.detail}`
          : mine.map((c) => `${c.service}: ${c.detail}`).join('; '),
      );
  }
  const ok = activateError === null && checks.every((c) => c.status === 'ok');

  let restored: RollbackReport['restored'] = null;
  if (ok) emit('restore', 'skip', 'not needed');
  else {
    emit('restore', 'start');
    restored = await restoreFrom(transport, layout, chosen, manager, healthTimeoutMs, signal);
    emit(
      'restore',
      restored.healthy ? 'ok' : 'fail',
      restored.to
        ? `restored ${restored.to}${restored.healthy ? ', serving' : ', NOT healthy'}`
        : 'nothing was current before: none is now',
    );
  }

  emit('report', 'start');
  const finishedAt = new Date();
  const reportPath = reportFilePath(layout, 'rollback', finishedAt, to.record);
  const ref = (r: Located): ReleaseRef => ({
    name: r.record.name,
    version: r.record.version,
    manifestDigest: r.record.manifestDigest,
    release: r.linkTarget,
  });
  const report: RollbackReport = {
    ok,
    path: reportPath,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    host: { transport: transport.description, user, serviceManager: manager },
    from: from ? ref(from) : null,
    to: ref(to),
    checks,
    activateError,
    restored,
    current: ok ? to.linkTarget : (restored?.to ?? null),
    services: to.services.map((s) => ({ name: s.name, port: s.port })),
  };
  const q = (value: string) => shellQuote([value]);
  const lines = [
    'set -eu',
    `mkdir -p ${q(layout.reports)}`,
    `printf '%s' ${q(rollbackReportText(report))} > ${q(reportPath)}`,
  ];
  if (ok) {
    lines.push(
      ...writeHostStateScript(layout, {
        current: { ...ref(to), report: reportPath },
        previous: from ? from.linkTarget : null,
        updatedAt: report.finishedAt,
      }),
    );
  }
  await transport.exec('sh -s', { stdin: `${lines.join('\n')}\n`, signal });
  return report;
}

/** Puts back what ran before: the release that was current, started and answering; or nothing. */
async function restoreFrom(
  transport: Transport,
  layout: HostLayout,
  chosen: Chosen,
  manager: ServiceManager,
  healthTimeoutMs: number,
  signal?: AbortSignal,
): Promise<{ to: string | null; healthy: boolean }> {
  const { from, to } = chosen;
  await stopServices(transport, layout, to.services);
  if (!from) {
    await removeCurrent(transport, layout);
    return { to: null, healthy: true };
  }
  await switchCurrent(transport, layout, from.linkTarget);
  try {
    await startServices(transport, layout, from.dir, from.services, manager);
  } catch {
    return { to: from.linkTarget, healthy: false };
  }
  const checks = await checkReleaseServices(transport, from.services, healthTimeoutMs, signal);
  return { to: from.linkTarget, healthy: checks.every((c) => c.status === 'ok') };
}

/** The report file's exact bytes (the audit record holds their hash). */
export function rollbackReportText(report: RollbackReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

function names(services: ServiceSpec[]): string {
  return services.length > 0 ? services.map((s) => s.name).join(', ') : 'no services';
}

/** Who runs the rollback, for the lock's note. */
function rollbackHolder(): string {
  return `${os.userInfo().username}@${os.hostname()}`;
}
