/**
 * The part of an install that changes what the host runs: state.json written before the
 * switch, the old services stopped, `current` switched, the new services started and
 * verified; on a failure or an abort (Ctrl-C, SIGTERM), the previous release put back with
 * steps of their own; then the signed record, state.json and the report.
 */
import { ApertusError, isApertusError } from '../errors.js';
import { evalChecks } from '../eval/eval-checks.js';
import { type EvalRun, runEval } from '../eval/run-eval.js';
import { formatGB } from '../gpu/units.js';
import type { ServiceSpec } from '../layout/types.js';
import { startOrder, startServices, stopServices } from '../runtimes/lifecycle.js';
import { settleCheckSteps } from '../runtimes/service-check.js';
import {
  type ServiceCheck,
  type CheckId as VerifyCheckId,
  verifyGoldenPrompts,
  verifyService,
  verifyServiceRecords,
  waitForHealth,
} from '../runtimes/verify-services.js';
import type { TransferResult } from '../target/blob-store.js';
import { diskFree } from '../target/disk.js';
import { readTxPackets } from '../target/egress-counter.js';
import { BALLAST_BYTES } from '../target/lock.js';
import type { HostTools } from '../target/preflight.js';
import { assertPortsFree, putBack, readRelease, switchCurrent } from '../target/releases.js';
import type { HostSession } from '../target/session.js';
import type { HostState, ReleaseState } from '../target/state.js';
import type { checkHostPython, wheelsVenvs } from '../target/venvs.js';
import type { HostCheckOutcome } from './host-check-gate.js';
import type { HostInstallOptions, InstallResult, InstallStep } from './install.js';
import type { InstallPlan } from './install-plan.js';
import { buildInstallReport, type InstallReport, type ReportInput } from './install-report.js';
import type { TrustDecision } from './install-trust.js';
import type { PreparedBundle } from './prepare-bundle.js';

/** Why a verification step has no check to run, when the services started. */
const NOT_APPLICABLE: Record<VerifyCheckId, string> = {
  'verify.health': 'no services',
  'verify.models': 'no model services',
  'verify.chat': 'no model services',
  'verify.embeddings': 'the recipe verifies no embeddings',
  'verify.rag-canary': 'no rag service',
  'verify.golden': 'no golden prompts in the recipe, or an earlier check failed',
  'verify.eval': 'no evaluation sets in the bundle, or an earlier check failed',
  'verify.audit': 'no rag service, or an earlier check failed',
  'verify.offline': 'egress not counted (--count-egress IFACE counts it)',
};

/** The verification steps, in the order install reports them (install.ts INSTALL_STEPS holds them). */
export const VERIFY_STEPS = [
  'verify.health',
  'verify.models',
  'verify.chat',
  'verify.embeddings',
  'verify.rag-canary',
  'verify.golden',
  'verify.eval',
  'verify.audit',
  'verify.offline',
] as const satisfies readonly VerifyCheckId[];

export type Emit = (
  step: InstallStep,
  status: 'start' | 'ok' | 'fail' | 'skip' | 'info',
  detail?: string,
) => void;

export interface ApplyContext {
  session: HostSession;
  prepared: PreparedBundle;
  plan: InstallPlan;
  services: ServiceSpec[];
  hostCheck: HostCheckOutcome;
  tools: HostTools;
  trust: TrustDecision;
  /** state.json as it stands now (after a TRUST-ADD, with its anchor). */
  state: HostState;
  startedAt: Date;
  options: HostInstallOptions;
  emit: Emit;
  wheels: { venvs: ReturnType<typeof wheelsVenvs>; pythons: Awaited<ReturnType<typeof checkHostPython>> };
}

/**
 * From here the host changes what it runs. An abort (Ctrl-C, SIGTERM) no longer stops
 * the command where it stands: it ends verification, then the host is put back with
 * steps of their own, recorded, and the lock released before the caller sees the abort.
 */
export async function activateAndVerify(
  ctx: ApplyContext,
  done: { transfer: TransferResult; replaced: ReportInput['replaced']; created: boolean },
): Promise<InstallResult> {
  const { session, plan, services, tools, emit, options } = ctx;
  const { transport, layout } = session;
  const verifySpec = ctx.prepared.bundle.config.verify;
  const signal = options.signal;
  const healthTimeoutMs = options.healthTimeoutMs ?? 60_000;
  const host = transport.description;

  // What rollback returns to: the link's release, unless an earlier run was killed after
  // switching to one it never verified; then the last verified one state.json names.
  const before = ctx.state;
  const linked = plan.release.previous;
  const previousLink =
    linked !== null && before.current?.release === linked && before.current.verified === false
      ? before.previous
      : linked;
  const previous = previousLink ? await readRelease(transport, layout, previousLink) : null;
  const newRelease: ReleaseState = {
    name: plan.bundle.name,
    version: plan.bundle.version,
    manifestDigest: plan.bundle.manifestDigest,
    release: plan.release.linkTarget,
    report: null,
    verified: false,
    signer: ctx.trust.signer,
  };
  const trustState =
    ctx.trust.mode === 'unsigned'
      ? { mode: 'unsigned' as const, since: ctx.startedAt.toISOString() }
      : before.trust;
  // Written before the switch: a kill from here on leaves a host whose status names the
  // unverified release and whose rollback returns to the previous one.
  const pendingState: HostState = {
    ...before,
    current: newRelease,
    previous: previousLink === newRelease.release ? before.previous : previousLink,
    updatedAt: new Date().toISOString(),
    pending: {
      command: `install ${plan.bundle.name} ${plan.bundle.version}`,
      release: newRelease.release,
      previous: previousLink,
      since: new Date().toISOString(),
    },
    trust: trustState,
  };
  await session.writeState(pendingState);

  const egress = options.egressInterface;
  const egressBefore = egress ? await readTxPackets(transport, egress) : null;
  const checks: ServiceCheck[] = [];
  let evaluation: EvalRun | null = null;
  let startError: string | null = null;
  emit('activate', 'start');
  try {
    await stopServices(transport, layout, previous ? previous.services : services);
    await assertPortsFree(transport, services);
    await switchCurrent(transport, layout, plan.release.linkTarget);
    signal?.throwIfAborted();
    await startServices(transport, layout, plan.release.dir, services, tools.serviceManager);
    emit('activate', 'ok', `current -> ${plan.release.linkTarget}`);
  } catch (error) {
    // A service that cannot even be started is a failed verification: roll back the same way.
    startError = describeFailure(error, signal);
    emit('activate', 'fail', startError);
  }

  if (startError === null) {
    try {
      for (const service of startOrder(services)) {
        const health = await waitForHealth(transport, service, healthTimeoutMs, signal);
        checks.push(health);
        if (health.status === 'ok')
          checks.push(...(await verifyService(transport, service, verifySpec, signal, layout)));
      }
      if (checks.every((c) => c.status === 'ok')) {
        checks.push(...(await verifyGoldenPrompts(transport, services, verifySpec.golden ?? [], signal)));
        if (verifySpec.eval && checks.every((c) => c.status === 'ok')) {
          // The recipe's thresholds gate the release as any failed check does: below them, it is rolled back.
          evaluation = await runEval({
            transport,
            services,
            spec: verifySpec.eval,
            release: {
              linkTarget: plan.release.linkTarget,
              name: plan.bundle.name,
              version: plan.bundle.version,
            },
            signal,
          });
          checks.push(...evalChecks(evaluation));
        }
        checks.push(...(await verifyServiceRecords(transport, layout.root, services, signal)));
      }
    } catch (error) {
      if (!signal?.aborted) throw error;
    }
  }
  const interrupted = signal?.aborted === true;
  let offline: InstallReport['offline'] = null;
  if (egress && egressBefore !== null && !interrupted) {
    const started = Date.now();
    const packets = (await readTxPackets(transport, egress)) - egressBefore;
    offline = { interface: egress, packets };
    checks.push({
      id: 'verify.offline',
      service: '*',
      status: packets === 0 ? 'ok' : 'fail',
      detail:
        packets === 0
          ? `0 packets out through ${egress} while services started and were verified`
          : `${packets} packets out through ${egress}: something tried to reach the network`,
      ms: Date.now() - started,
      metrics: { packets },
    });
  }
  settleCheckSteps(VERIFY_STEPS, checks, emit, (id) =>
    interrupted
      ? 'not run: interrupted'
      : startError === null
        ? NOT_APPLICABLE[id]
        : 'not run: activation failed',
  );
  const ok = startError === null && !interrupted && checks.every((c) => c.status === 'ok');

  // A disk that filled up is the likeliest cause of a failure nobody else explains: say so.
  const full = ok || interrupted ? undefined : await fullDisk(transport, layout.root);
  let rolledBack: InstallReport['rollback'] = null;
  let rollbackError: string | null = null;
  if (ok) emit('rollback', 'skip', 'not needed');
  else {
    emit('rollback', 'start', interrupted ? 'interrupted: putting the host back' : undefined);
    // A full disk is the likeliest reason services could not start: give them the ballast's room.
    await session.lock?.releaseBallast();
    rolledBack = await putBack({
      transport,
      layout,
      leaving: {
        linkTarget: plan.release.linkTarget,
        services,
        removeDir: done.created ? plan.release.dir : undefined,
      },
      back: previous && previousLink ? { ...previous, linkTarget: previousLink } : null,
      manager: tools.serviceManager,
      healthTimeoutMs,
    }).catch((error: unknown): { to: string | null; healthy: boolean } => {
      rollbackError = describeFailure(error, undefined);
      return { to: previousLink, healthy: false };
    });
    emit(
      'rollback',
      rolledBack.healthy ? 'ok' : 'fail',
      rollbackError ??
        (rolledBack.to
          ? `restored ${rolledBack.to}${rolledBack.healthy ? ', serving' : ', NOT healthy'}`
          : 'no previous release: removed the new one'),
    );
  }

  emit('report', 'start');
  const finalState = (reportPath: string): HostState =>
    ok
      ? {
          ...pendingState,
          current: { ...newRelease, verified: true, report: reportPath },
          pending: null,
          updatedAt: new Date().toISOString(),
        }
      : {
          ...pendingState,
          ...restoredState(before, rolledBack?.to ?? null, previous),
          pending: null,
          updatedAt: new Date().toISOString(),
        };
  const input: ReportInput = {
    ok,
    startedAt: ctx.startedAt,
    plan,
    host: {
      transport: host,
      os: session.probe.kernel ?? 'unknown',
      arch: session.probe.arch ?? 'unknown',
      user: session.probe.user ?? 'unknown',
      tools,
    },
    signer: ctx.trust.signer,
    trust: { mode: ctx.trust.mode, added: ctx.trust.add?.keyId ?? null, trusted: ctx.trust.trusted },
    tookOverLock: session.lock?.tookOver ?? null,
    transfer: done.transfer,
    replaced: done.replaced,
    checks,
    preflight: ctx.hostCheck,
    activateError: startError,
    interrupted,
    offline,
    rollback: rolledBack,
    services,
    eval: evaluation,
  };
  const recorded = await session.record({
    kind: 'install',
    method: 'INSTALL',
    endpoint: `${plan.bundle.name}@${plan.bundle.version}`,
    ok,
    subjectSha256: plan.bundle.manifestDigest.replace(/^sha256:/, ''),
    current: ok ? plan.release.linkTarget : (rolledBack?.to ?? null),
    extra: [
      ctx.trust.signer
        ? `signer:${ctx.trust.signer.keyId} ${ctx.trust.signer.trustedComment}`
        : 'signer:none',
    ],
    state: finalState,
    report: (where) => buildInstallReport(input, where),
  });
  const report = recorded.report;
  emit(
    'report',
    recorded.reportError ? 'fail' : 'ok',
    recorded.reportError ??
      `${recorded.reportPath}; audit record ${recorded.record.seq} in ${layout.auditLog}`,
  );
  if (recorded.reportError !== null) {
    throw new ApertusError(
      'install-report-unwritten',
      `${ok ? `${plan.bundle.name} ${plan.bundle.version} is installed and verified` : 'The install failed and the host was put back'} on ${host}, and audit record ${recorded.record.seq} and state.json say so, but the report could not be written: ${recorded.reportError}`,
      {
        kind: 'operation',
        hint: `Fix what stops writes to ${layout.reports} (it holds the report's hash in the audit record); the report is in this error's details.`,
        details: { report },
      },
    );
  }
  if (!ok) {
    const failures = [
      ...(interrupted ? ['interrupted'] : []),
      ...(startError ? [`activate: ${startError}`] : []),
      ...(rollbackError ? [`rollback: ${rollbackError}`] : []),
      ...(full ? [full] : []),
      ...checks.filter((c) => c.status === 'fail').map((c) => `${c.id} (${c.service}): ${c.detail}`),
    ];
    throw new ApertusError(
      interrupted ? 'install-interrupted' : 'install-verification-failed',
      `${interrupted ? 'The install was interrupted' : `The services of ${plan.bundle.name} ${plan.bundle.version} failed verification`} on ${host}: ${failures.join('; ')}. ${rolledBack?.to ? `Rolled back to ${rolledBack.to}${rolledBack.healthy ? '' : ', which does NOT answer'}.` : 'The new release was removed.'}`,
      {
        kind: 'operation',
        hint: `Read the service log under ${layout.logs} on the host, and the report ${recorded.reportPath}.`,
        details: { report },
      },
    );
  }
  return { dryRun: false, ...report };
}

/** "No space left on /var (ext4): has 12 kB" when the root's filesystem has less than the lock's ballast left. */
async function fullDisk(transport: HostSession['transport'], root: string): Promise<string | undefined> {
  const free = await diskFree(transport, root).catch(() => undefined);
  if (free === undefined || free.availableBytes >= BALLAST_BYTES) return undefined;
  return `No space left on ${free.mount} (${free.filesystem}): has ${formatGB(free.availableBytes)}`;
}

function describeFailure(error: unknown, signal: AbortSignal | undefined): string {
  if (signal?.aborted) return 'interrupted';
  return isApertusError(error) ? `${error.code}: ${error.message}` : String(error);
}

/** state.json's current and previous after a failed install put `restoredTo` back (or nothing). */
function restoredState(
  before: HostState,
  restoredTo: string | null,
  release: { record: { name: string; version: string; manifestDigest: string } } | null,
): Pick<HostState, 'current' | 'previous'> {
  if (restoredTo === null || release === null) return { current: null, previous: null };
  if (before.current?.release === restoredTo)
    return { current: { ...before.current, verified: true }, previous: before.previous };
  // An earlier run was killed after its switch: state.json named that unverified release,
  // and the one restored now is the last verified one, which it names as previous.
  return {
    current: {
      name: release.record.name,
      version: release.record.version,
      manifestDigest: release.record.manifestDigest,
      release: restoredTo,
      report: null,
      verified: true,
      signer: null,
    },
    previous: null,
  };
}
