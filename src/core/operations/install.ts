import type { CheckId } from '../check/check-result.js';
import { ApertusError, isApertusError } from '../errors.js';
import type { Transport } from '../host/transport.js';
import { openBundle } from '../layout/bundle-reader.js';
import { loadBundle } from '../layout/load-bundle.js';
import { blobPath } from '../layout/names.js';
import type { ServiceSpec, VerifySpec } from '../layout/types.js';
import { noProgress, type RunOptions } from '../progress.js';
import { planLaunches } from '../runtimes/launch-plan.js';
import { preflightServices, startOrder, startServices, stopServices } from '../runtimes/lifecycle.js';
import {
  type ServiceCheck,
  type CheckId as VerifyCheckId,
  verifyGoldenPrompts,
  verifyService,
  verifyServiceRecords,
  waitForHealth,
} from '../runtimes/verify-services.js';
import { appendInstallRecord, readAuditTail } from '../target/audit-log.js';
import { transferBlobs } from '../target/blob-store.js';
import { type InstallTarget, openTarget } from '../target/connect.js';
import { readTxPackets } from '../target/egress-counter.js';
import { loadImages } from '../target/images.js';
import { DEFAULT_HOST_ROOT, type HostLayout, hostLayout } from '../target/layout.js';
import { lockHost } from '../target/lock.js';
import { type HostFacts, type HostSummary, probeHost, summariseHost } from '../target/preflight.js';
import { assertPortsFree, readRelease, rollBack, switchCurrent } from '../target/releases.js';
import { stageRelease } from '../target/stage.js';
import {
  checkHostPython,
  createVenvs,
  type HostPythons,
  type WheelsVenv,
  wheelsVenvs,
} from '../target/venvs.js';
import { PASSING_STATUSES, verifyBundle } from '../verify/verify-bundle.js';
import { assertDeltaBaseOnHost } from './delta-base-gate.js';
import { gateOnHostCheck, type HostCheckOutcome } from './host-check-gate.js';
import { type InstallPlan, planInstall } from './install-plan.js';
import { type InstallReport, installReportText, writeInstallReport } from './install-report.js';

/** Step ids reported through onProgress, in order; the CLI gives them titles. */
export const INSTALL_STEPS = [
  'verify-bundle',
  'connect',
  'check',
  'preflight',
  'transfer',
  'stage',
  'images',
  'wheels',
  'activate',
  'verify.health',
  'verify.models',
  'verify.chat',
  'verify.embeddings',
  'verify.rag-canary',
  'verify.golden',
  'verify.audit',
  'verify.offline',
  'rollback',
  'report',
] as const;
export type InstallStep = (typeof INSTALL_STEPS)[number];

/** Why a verification step has no check to run, when the services started. */
const NOT_APPLICABLE: Record<VerifyCheckId, string> = {
  'verify.health': 'no services',
  'verify.models': 'no model services',
  'verify.chat': 'no model services',
  'verify.embeddings': 'the recipe verifies no embeddings',
  'verify.rag-canary': 'no rag service',
  'verify.golden': 'no golden prompts in the recipe, or an earlier check failed',
  'verify.audit': 'no rag service, or an earlier check failed',
  'verify.offline': 'egress not counted (--count-egress IFACE counts it)',
};

const VERIFY_STEPS = INSTALL_STEPS.filter((step): step is VerifyCheckId => step.startsWith('verify.'));

/** One line for a step's checks: the failure, or what each service showed. */
function summariseChecks(checks: ServiceCheck[], failed: ServiceCheck | undefined): string {
  if (failed) return `${failed.service}: ${failed.detail}`;
  return checks.length === 1
    ? (checks[0]?.detail ?? '')
    : checks.map((c) => `${c.service}: ${c.detail}`).join('; ');
}

export interface InstallOptions extends RunOptions {
  bundlePath: string;
  target: InstallTarget;
  /** Install root on the host; /var/lib/apertus by default. */
  root?: string | undefined;
  /** Minisign public key the bundle's signature must verify with. */
  publicKeyPath?: string | undefined;
  /** Compute and return the plan; change nothing on the host. */
  dryRun?: boolean | undefined;
  /** Failed preflight checks to accept anyway (`--skip-check`); the report records them. */
  skipChecks?: CheckId[] | undefined;
  /** How long a started service may take to answer /health. */
  healthTimeoutMs?: number | undefined;
  /**
   * An interface on the host that every route out leads to (a sink): the packets it sends
   * while services start and are verified are counted, and verification fails unless 0.
   */
  egressInterface?: string | undefined;
}

export type InstallResult =
  | { dryRun: true; plan: InstallPlan; host: HostSummary; check: HostCheckOutcome }
  | ({ dryRun: false } & InstallReport);

/**
 * Verify the bundle, connect, probe, plan, upload what the host lacks, stage the release
 * from the blob store, switch `current`, start and verify the services; roll back to the
 * previous release (or to nothing) when any check fails. Throws ApertusError on failure,
 * with the report as details once the host was touched.
 */
export async function install(options: InstallOptions): Promise<InstallResult> {
  const onProgress = options.onProgress ?? noProgress;
  const { signal } = options;
  const startedAt = new Date();
  const emit = (step: InstallStep, status: 'start' | 'ok' | 'fail' | 'skip' | 'info', detail?: string) =>
    onProgress({ step, status, detail });

  emit('verify-bundle', 'start');
  const verification = await verifyBundle(options.bundlePath, {
    publicKeyPath: options.publicKeyPath,
    signal,
    onProgress: (event) => onProgress({ ...event, step: 'verify-bundle' }),
  });
  const bad = verification.results.filter((r) => !PASSING_STATUSES.has(r.status));
  if (!verification.ok || bad.length > 0) {
    emit('verify-bundle', 'fail', bad.map((r) => `${r.subject}: ${r.status}`).join('; '));
    throw new ApertusError(
      'bundle-invalid',
      `The bundle failed verification; nothing was sent to the host:\n${bad.map((r) => `  ${r.subject}: ${r.status}${r.detail ? ` (${r.detail})` : ''}`).join('\n')}`,
      {
        kind: 'operation',
        hint: 'Copy the bundle (or the bad part) again from its source medium, then run `apertus verify` on it.',
        details: { verification: verification.results },
      },
    );
  }
  emit(
    'verify-bundle',
    'ok',
    verification.signed ? 'checksums and signature ok' : 'checksums ok (not signed)',
  );

  const reader = await openBundle(options.bundlePath);
  let transport: Transport | undefined;
  try {
    const bundle = await loadBundle(reader);

    emit('connect', 'start');
    transport = await openTarget(options.target, { signal, onProgress });
    emit('connect', 'ok', transport.description);

    const layout = hostLayout(options.root ?? DEFAULT_HOST_ROOT);
    emit('check', 'start');
    const hostCheck = await gateOnHostCheck(transport, {
      bundlePath: options.bundlePath,
      root: layout.root,
      skip: options.skipChecks ?? [],
      signal,
    }).catch((error: unknown) => {
      emit('check', 'fail');
      throw error;
    });
    const warnings = hostCheck.results.filter((r) => r.status === 'warn').length;
    emit(
      'check',
      'ok',
      `${hostCheck.results.length} checks, ${warnings} warnings${hostCheck.skipped.length ? `, skipped ${hostCheck.skipped.map((s) => s.id).join(', ')}` : ''}`,
    );

    emit('preflight', 'start');
    const facts = await probeHost(transport, layout);
    const plan = planInstall(
      {
        config: bundle.config,
        manifestDigest: bundle.manifestDigest,
        components: bundle.components,
        blobs: bundle.blobs,
      },
      facts,
      layout,
    );
    try {
      assertDeltaBaseOnHost(plan, bundle.config, bundle.omitted, transport.description);
    } catch (error) {
      emit('preflight', 'fail', 'the host lacks the release this delta was cut against');
      throw error;
    }
    if (plan.diskNeededBytes > plan.diskAvailableBytes) {
      emit('preflight', 'fail', 'not enough disk');
      throw new ApertusError(
        'host-disk-full',
        `${transport.description} has ${plan.diskAvailableBytes} bytes free under ${layout.root}; the install needs ${plan.diskNeededBytes}.`,
        {
          kind: 'operation',
          hint: `Free space on the filesystem of ${layout.root}, or pass --root on a larger one.`,
        },
      );
    }
    if (options.egressInterface !== undefined) {
      // A wrong interface name fails here, before anything is sent, not after the upload.
      await readTxPackets(transport, options.egressInterface, signal).catch((error: unknown) => {
        emit('preflight', 'fail', `no interface ${options.egressInterface} to count egress on`);
        throw error;
      });
    }
    await preflightServices(transport, layout, bundle.config.services, signal).catch((error: unknown) => {
      emit('preflight', 'fail', isApertusError(error) ? error.code : String(error));
      throw error;
    });
    const venvs = wheelsVenvs(bundle.config, plan.release.dir);
    const pythons = await checkHostPython(transport, venvs, signal).catch((error: unknown) => {
      emit('preflight', 'fail', 'no python3 of the version the wheels need');
      throw error;
    });
    emit(
      'preflight',
      'ok',
      `${facts.os}/${facts.arch}, ${facts.serviceManager}, hashes with ${facts.hashTool}`,
    );
    if (options.dryRun) return { dryRun: true, plan, host: summariseHost(facts), check: hostCheck };

    const services = await planLaunches(bundle.config.services, {
      bundlePath: options.bundlePath,
      reader,
      components: bundle.components,
      gpu: hostCheck.gpu,
      signal,
    });
    const unlock = await lockHost(
      transport,
      layout,
      `apertus install of ${bundle.config.name} ${bundle.config.version} since ${startedAt.toISOString()}`,
    );
    try {
      return await applyInstall({
        transport,
        layout,
        facts,
        plan,
        services,
        verifySpec: bundle.config.verify,
        hostCheck,
        wheels: { venvs, pythons },
      });
    } finally {
      await unlock();
    }
  } finally {
    await transport?.close();
    await reader.close();
  }

  async function applyInstall(ctx: {
    transport: Transport;
    layout: HostLayout;
    facts: HostFacts;
    plan: InstallPlan;
    services: ServiceSpec[];
    verifySpec: VerifySpec;
    hostCheck: HostCheckOutcome;
    wheels: { venvs: WheelsVenv[]; pythons: HostPythons };
  }): Promise<InstallResult> {
    const { transport, layout, facts, plan, services, verifySpec, hostCheck } = ctx;
    // Under the host lock and before any change: a damaged audit log stops the install here.
    const auditTail = await readAuditTail(transport, layout, signal);
    emit('transfer', 'start', `${plan.uploads.length} of ${plan.blobs.total} blobs`);
    const transfer = await transferBlobs({
      transport,
      layout,
      hashTool: facts.hashTool,
      uploads: plan.uploads,
      openBlob: (digest, start) => reader.createReadStream(blobPath(digest), { start }),
      signal,
      onProgress,
    });
    emit(
      'transfer',
      'ok',
      `${transfer.blobs} blobs, ${transfer.bytes} bytes uploaded; ${plan.blobs.present} already on the host`,
    );

    emit('stage', 'start');
    const staged = await stageRelease(transport, layout, plan, services, signal);
    emit(
      'stage',
      'ok',
      staged.created ? `${plan.release.dir}` : `${plan.release.dir} (kept, already complete)`,
    );

    if (plan.images.length > 0) {
      emit('images', 'start', `${plan.images.length} images`);
      const loaded = await loadImages(transport, layout, plan, signal);
      emit('images', 'ok', loaded.join(', '));
    } else emit('images', 'skip', 'no image components');

    if (ctx.wheels.venvs.length > 0) {
      emit('wheels', 'start', `${ctx.wheels.venvs.length} venvs`);
      const made = await createVenvs(transport, ctx.wheels.venvs, ctx.wheels.pythons, signal).catch(
        (error: unknown) => {
          emit('wheels', 'fail');
          throw error;
        },
      );
      emit('wheels', 'ok', made.map((v) => `${v.venvDir}${v.created ? '' : ' (kept)'}`).join(', '));
    } else emit('wheels', 'skip', 'no wheels components');

    const previous = plan.release.previous
      ? await readRelease(transport, layout, plan.release.previous)
      : null;
    const checks: ServiceCheck[] = [];
    let rolledBack: InstallReport['rollback'] = null;

    const egress = options.egressInterface;
    const egressBefore = egress ? await readTxPackets(transport, egress, signal) : null;
    emit('activate', 'start');
    const healthTimeoutMs = options.healthTimeoutMs ?? 60_000;
    let startError: string | null = null;
    try {
      await stopServices(transport, layout, previous ? previous.services : services);
      await assertPortsFree(transport, services);
      await switchCurrent(transport, layout, plan.release.linkTarget);
      await startServices(transport, layout, plan.release.dir, services, facts.serviceManager);
      emit('activate', 'ok', `current -> ${plan.release.linkTarget}`);
    } catch (error) {
      // A service that cannot even be started is a failed verification: roll back the same way.
      startError = isApertusError(error) ? `${error.code}: ${error.message}` : String(error);
      emit('activate', 'fail', startError);
    }

    if (startError === null) {
      for (const service of startOrder(services)) {
        const health = await waitForHealth(transport, service, healthTimeoutMs, signal);
        checks.push(health);
        if (health.status === 'ok')
          checks.push(...(await verifyService(transport, service, verifySpec, signal)));
      }
      if (checks.every((c) => c.status === 'ok')) {
        checks.push(...(await verifyGoldenPrompts(transport, services, verifySpec.golden ?? [], signal)));
        checks.push(...(await verifyServiceRecords(transport, layout.root, services, signal)));
      }
    }
    let offline: InstallReport['offline'] = null;
    if (egress && egressBefore !== null) {
      const started = Date.now();
      const packets = (await readTxPackets(transport, egress, signal)) - egressBefore;
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
    for (const id of VERIFY_STEPS) {
      const mine = checks.filter((c) => c.id === id);
      const failed = mine.find((c) => c.status === 'fail');
      if (mine.length === 0)
        emit(id, 'skip', startError === null ? NOT_APPLICABLE[id] : 'not run: activation failed');
      else emit(id, failed ? 'fail' : 'ok', summariseChecks(mine, failed));
    }
    const ok = startError === null && checks.every((c) => c.status === 'ok');

    if (!ok) {
      emit('rollback', 'start');
      rolledBack = await rollBack({
        transport,
        layout,
        failed: {
          dir: plan.release.dir,
          linkTarget: plan.release.linkTarget,
          services,
          created: staged.created,
        },
        previous:
          previous && plan.release.previous ? { ...previous, linkTarget: plan.release.previous } : null,
        manager: facts.serviceManager,
        waitHealthy: (service) => waitForHealth(transport, service, healthTimeoutMs, signal),
      });
      emit(
        'rollback',
        'ok',
        rolledBack.to
          ? `restored ${rolledBack.to}${rolledBack.healthy ? ', serving' : ', NOT healthy'}`
          : 'no previous release: removed the new one',
      );
    }

    if (ok) emit('rollback', 'skip', 'not needed');
    emit('report', 'start');
    const report = await writeInstallReport(transport, layout, {
      ok,
      startedAt,
      plan,
      facts,
      transport: transport.description,
      transfer,
      checks,
      preflight: hostCheck,
      activateError: startError,
      offline,
      rollback: rolledBack,
      services,
    });
    const audit = await appendInstallRecord(
      transport,
      layout,
      auditTail,
      {
        bundle: plan.bundle,
        ok,
        reportPath: report.path,
        reportText: installReportText(report),
        current: ok ? plan.release.linkTarget : (rolledBack?.to ?? null),
      },
      signal,
    );
    emit('report', 'ok', `${report.path}; audit record ${audit.seq} in ${layout.auditLog}`);
    if (!ok) {
      const failures = [
        ...(startError ? [`activate: ${startError}`] : []),
        ...checks.filter((c) => c.status === 'fail').map((c) => `${c.id} (${c.service}): ${c.detail}`),
      ];
      throw new ApertusError(
        'install-verification-failed',
        `The services of ${plan.bundle.name} ${plan.bundle.version} failed verification on ${transport.description}: ${failures.join('; ')}. ${rolledBack?.to ? `Rolled back to ${rolledBack.to}.` : 'The new release was removed.'}`,
        {
          kind: 'operation',
          hint: `Read the service log under ${layout.logs} on the host, and the report ${report.path}.`,
          details: { report },
        },
      );
    }
    return { dryRun: false, ...report };
  }
}
