import path from 'node:path/posix';
import { ApertusError, isApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { ServiceSpec } from '../layout/types.js';
import { noProgress, type RunOptions } from '../progress.js';
import { startServices, stopServices } from '../runtimes/lifecycle.js';
import { checkReleaseServices } from '../runtimes/release-health.js';
import { settleCheckSteps } from '../runtimes/service-check.js';
import type { ServiceCheck } from '../runtimes/verify-services.js';
import type { InstallTarget } from '../target/connect.js';
import { DEFAULT_HOST_ROOT, parseHostRoot } from '../target/layout.js';
import type { LockHolder } from '../target/lock.js';
import { assertHostUsable, type ServiceManager } from '../target/preflight.js';
import {
  assertPortsFree,
  type LocatedRelease,
  putBack,
  readRelease,
  switchCurrent,
} from '../target/releases.js';
import { type HostSession, withHostSession } from '../target/session.js';
import type { HostState, ReleaseState } from '../target/state.js';

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
  /** The audit record that holds this report's hash. */
  record: { seq: number };
  startedAt: string;
  finishedAt: string;
  host: { transport: string; user: string; serviceManager: ServiceManager };
  /** A lock left by a command that died (its process gone), which this rollback took over. */
  tookOverLock: LockHolder | null;
  /** The release that was current before. */
  from: ReleaseRef | null;
  /** The release asked for. */
  to: ReleaseRef;
  checks: ServiceCheck[];
  /** Why the target's services could not be started at all, when that is what failed. */
  activateError: string | null;
  /** The rollback was stopped (Ctrl-C, SIGTERM) and put back what ran before. */
  interrupted: boolean;
  /** When the target failed: the release put back, and whether it answers again. */
  restored: { to: string | null; healthy: boolean } | null;
  /** The release `current` points at afterwards. */
  current: string | null;
  services: Array<{ name: string; port: number }>;
}

/**
 * Switches a host back to an earlier release in a host session: stops the current
 * services, records the switch in state.json, points `current` at the target, starts its
 * services (release.json lists them) and checks they answer with their models listed.
 * When the target does not come up, or the caller aborts, the release that was current is
 * put back and started again. Records a ROLLBACK in the audit log and writes a report.
 */
export async function rollbackRelease(options: RollbackOptions): Promise<RollbackReport> {
  const onProgress = options.onProgress ?? noProgress;
  const emit = (step: RollbackStep, status: 'start' | 'ok' | 'fail' | 'skip', detail?: string) =>
    onProgress({ step, status, detail });
  const root = parseHostRoot(options.root ?? DEFAULT_HOST_ROOT);
  const startedAt = new Date();
  return withHostSession(
    {
      target: options.target,
      root,
      command: `rollback${options.to ? ` to ${options.to}` : ''}`,
      lock: 'existing',
      probe: { system: false },
      signal: options.signal,
      onProgress: (event) => {
        // The session's lock and probe come before the first step of ours.
        if (event.step === 'connect' && event.status === 'ok') emit('lock', 'start');
        onProgress(event);
      },
    },
    async (session) => {
      const chosen = await chooseTarget(session, options.to).catch((error: unknown) => {
        emit('lock', 'fail', isApertusError(error) ? error.code : undefined);
        throw error;
      });
      emit('lock', 'ok', `${chosen.from ? chosen.from.linkTarget : 'nothing'} -> ${chosen.to.linkTarget}`);
      return applyRollback(session, chosen, options, startedAt, emit);
    },
  ).catch((error: unknown) => {
    // A root that does not exist holds nothing to roll back to; it stays absent.
    if (isApertusError(error) && error.code === 'host-root-missing')
      throw nothingInstalled(root, error.message);
    throw error;
  });
}

function nothingInstalled(root: string, where: string): ApertusError {
  return new ApertusError('nothing-installed', `Nothing is installed under ${root}: ${where}`, {
    kind: 'operation',
    hint: 'Install a bundle with `apertus install`; `apertus status` shows what a host has.',
  });
}

type Located = LocatedRelease;

interface Chosen {
  from: Located | null;
  to: Located;
}

async function chooseTarget(session: HostSession, to: string | undefined): Promise<Chosen> {
  const { transport, layout, state, probe } = session;
  const link = probe.root.current;
  const current = link ? await readRelease(transport, layout, link) : null;
  const from = current && link ? { ...current, linkTarget: link } : null;
  const name = current?.record.name ?? state.current?.name;
  if (!name) throw nothingInstalled(layout.root, `no current release on ${transport.description}.`);
  const present = await releaseVersions(session, name);
  const others = present.filter((v) => layout.releaseLinkTarget(name, v) !== link);
  const choices =
    others.length > 0
      ? `Releases of ${name} on the host besides the current one: ${others.join(', ')}.`
      : `The host has no other release of ${name}.`;

  let linkTarget: string;
  if (to !== undefined) {
    if (!present.includes(to)) {
      throw new ApertusError(
        'rollback-target-missing',
        `${name} ${to} is not on ${transport.description} (no complete release under ${layout.releases}/${name}).`,
        { hint: `${choices} Pass one of them to --to, or install ${name} ${to} with \`apertus install\`.` },
      );
    }
    linkTarget = layout.releaseLinkTarget(name, to);
    if (linkTarget === link) {
      throw new ApertusError(
        'rollback-target-current',
        `${name} ${to} is already the current release on ${transport.description}.`,
        { hint: `${choices} Pass another version to --to; \`apertus status\` shows the host.` },
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

/** Versions of `name` on the host with a release.json: complete releases only. */
async function releaseVersions(session: HostSession, name: string): Promise<string[]> {
  const dir = path.join(session.layout.releases, name);
  const result = await session.transport.exec(
    `cd ${shellQuote([dir])} 2>/dev/null && for d in *; do [ -f "$d/release.json" ] && [ ! -L "$d" ] && printf '%s\\n' "$d"; done; true`,
    { reject: false, ...(session.signal ? { signal: session.signal } : {}) },
  );
  return result.stdout.split('\n').filter((v) => v !== '');
}

async function applyRollback(
  session: HostSession,
  chosen: Chosen,
  options: RollbackOptions,
  startedAt: Date,
  emit: (step: RollbackStep, status: 'start' | 'ok' | 'fail' | 'skip', detail?: string) => void,
): Promise<RollbackReport> {
  const { transport, layout, probe, state } = session;
  const { from, to } = chosen;
  const signal = options.signal;
  const { serviceManager: manager } = assertHostUsable(probe, layout, transport.description);
  const healthTimeoutMs = options.healthTimeoutMs ?? 60_000;
  const target = releaseState(to, state);

  // Written before anything stops: a kill from here on leaves state.json naming what to go back to.
  await session.writeState({
    ...state,
    current: { ...target, verified: false },
    previous: from ? from.linkTarget : state.previous,
    pending: {
      command: `rollback to ${to.record.version}`,
      release: to.linkTarget,
      previous: from?.linkTarget ?? null,
      since: new Date().toISOString(),
    },
    updatedAt: new Date().toISOString(),
  });

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

  let checks: ServiceCheck[] = [];
  if (activateError === null) {
    checks = await checkReleaseServices(transport, to.services, healthTimeoutMs, signal).catch(
      (error: unknown) => {
        if (!signal?.aborted) throw error;
        return [];
      },
    );
  }
  const interrupted = signal?.aborted === true;
  settleCheckSteps(['verify.health', 'verify.models'], checks, emit, () =>
    interrupted ? 'not run: interrupted' : activateError ? 'not run: activation failed' : 'no such services',
  );
  const ok = activateError === null && !interrupted && checks.every((c) => c.status === 'ok');

  let restored: RollbackReport['restored'] = null;
  if (ok) emit('restore', 'skip', 'not needed');
  else {
    emit('restore', 'start', interrupted ? 'interrupted: putting back what ran before' : undefined);
    await session.lock?.releaseBallast();
    restored = await putBack({
      transport,
      layout,
      leaving: { linkTarget: to.linkTarget, services: to.services },
      back: from,
      manager,
      healthTimeoutMs,
    });
    emit(
      'restore',
      restored.healthy ? 'ok' : 'fail',
      restored.to
        ? `restored ${restored.to}${restored.healthy ? ', serving' : ', NOT healthy'}`
        : 'nothing was current before: none is now',
    );
  }

  emit('report', 'start');
  const ref = (r: Located): ReleaseRef => ({
    name: r.record.name,
    version: r.record.version,
    manifestDigest: r.record.manifestDigest,
    release: r.linkTarget,
  });
  const current = ok ? to.linkTarget : (restored?.to ?? null);
  const recorded = await session.record({
    kind: 'rollback',
    method: 'ROLLBACK',
    endpoint: `${to.record.name}@${to.record.version}`,
    ok,
    subjectSha256: to.record.manifestDigest.replace(/^sha256:/, ''),
    current,
    state: (reportPath): HostState =>
      ok
        ? {
            ...state,
            current: { ...target, verified: true, report: reportPath },
            previous: from ? from.linkTarget : null,
            pending: null,
            updatedAt: new Date().toISOString(),
          }
        : { ...state, pending: null, updatedAt: new Date().toISOString() },
    report: ({ path: reportPath, seq }): RollbackReport => ({
      ok,
      path: reportPath,
      record: { seq },
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      host: { transport: transport.description, user: probe.user ?? 'unknown', serviceManager: manager },
      tookOverLock: session.lock?.tookOver ?? null,
      from: from ? ref(from) : null,
      to: ref(to),
      checks,
      activateError,
      interrupted,
      restored,
      current,
      services: to.services.map((s) => ({ name: s.name, port: s.port })),
    }),
  });
  const report = recorded.report;
  emit(
    'report',
    recorded.reportError ? 'fail' : 'ok',
    recorded.reportError ??
      `${recorded.reportPath}; audit record ${recorded.record.seq} in ${layout.auditLog}`,
  );
  if (!ok) {
    const failures = [
      ...(interrupted ? ['interrupted'] : []),
      ...(activateError ? [`activate: ${activateError}`] : []),
      ...checks.filter((c) => c.status === 'fail').map((c) => `${c.id} (${c.service}): ${c.detail}`),
    ];
    const back = restored?.to
      ? `Restored ${restored.to}${restored.healthy ? ', which answers again' : ', which does NOT answer'}.`
      : 'No release was running before; none is current now.';
    throw new ApertusError(
      interrupted ? 'rollback-interrupted' : 'rollback-verification-failed',
      `${to.linkTarget} did not come up on ${transport.description}: ${failures.join('; ')}. ${back}`,
      {
        kind: 'operation',
        hint: `Read the service logs under ${layout.logs} on the host, and the report ${recorded.reportPath}.`,
        details: { report },
      },
    );
  }
  return report;
}

/** state.json's entry for a release being made current: what state.json knew of it, else its release.json. */
function releaseState(release: Located, state: HostState): ReleaseState {
  const known = [state.current].find((r) => r?.release === release.linkTarget);
  return (
    known ?? {
      name: release.record.name,
      version: release.record.version,
      manifestDigest: release.record.manifestDigest,
      release: release.linkTarget,
      report: null,
      verified: true,
      signer: null,
    }
  );
}

function names(services: ServiceSpec[]): string {
  return services.length > 0 ? services.map((s) => s.name).join(', ') : 'no services';
}
