import type { CheckId } from '../check/check-result.js';
import { ApertusError, isApertusError } from '../errors.js';
import { formatGB } from '../gpu/units.js';
import { blobPath } from '../layout/names.js';
import type { ServiceSpec } from '../layout/types.js';
import { noProgress, type RunOptions } from '../progress.js';
import { planLaunches } from '../runtimes/launch-plan.js';
import { preflightServices, startOrder, startServices, stopServices } from '../runtimes/lifecycle.js';
import { settleCheckSteps } from '../runtimes/service-check.js';
import {
  type ServiceCheck,
  type CheckId as VerifyCheckId,
  verifyGoldenPrompts,
  verifyService,
  verifyServiceRecords,
  waitForHealth,
} from '../runtimes/verify-services.js';
import { readPublicKey } from '../sign/keys.js';
import { type TransferResult, transferBlobs } from '../target/blob-store.js';
import type { InstallTarget } from '../target/connect.js';
import { diskFree, isNoSpace, noSpaceError } from '../target/disk.js';
import { readTxPackets } from '../target/egress-counter.js';
import { loadImages } from '../target/images.js';
import { DEFAULT_HOST_ROOT, parseHostRoot } from '../target/layout.js';
import { BALLAST_BYTES } from '../target/lock.js';
import { assertHostUsable, type HostTools } from '../target/preflight.js';
import { assertPortsFree, putBack, readRelease, switchCurrent } from '../target/releases.js';
import { type HostSession, sha256Hex, withHostSession } from '../target/session.js';
import { stageRelease } from '../target/stage.js';
import type { HostState, ReleaseState } from '../target/state.js';
import { addTrustedKeyScript, trustedKeys } from '../target/trust-store.js';
import { checkHostPython, createVenvs, wheelsVenvs } from '../target/venvs.js';
import { assertDeltaBaseOnHost } from './delta-base-gate.js';
import { gateOnHostCheck, type HostCheckOutcome } from './host-check-gate.js';
import { type InstallPlan, planInstall } from './install-plan.js';
import { buildInstallReport, type InstallReport, type ReportInput } from './install-report.js';
import { decideTrust, type TrustDecision } from './install-trust.js';
import { type PreparedBundle, prepareBundle } from './prepare-bundle.js';

/** Step ids reported through onProgress, in order; the CLI gives them titles. */
export const INSTALL_STEPS = [
  'verify-bundle',
  'connect',
  'trust',
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

export interface InstallOptions extends RunOptions {
  bundlePath: string;
  target: InstallTarget;
  /** Install root on the host; /var/lib/apertus by default. */
  root?: string | undefined;
  /** The first signing key a host with none trusts (a minisign .pub file); recorded. */
  trustKeyPath?: string | undefined;
  /** Install on a host that trusts no key without a signature check (labs); recorded and warned about. */
  allowUnsigned?: boolean | undefined;
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

export interface InstallDryRun {
  dryRun: true;
  plan: InstallPlan;
  host: {
    transport: string;
    user: string;
    arch: string;
    hashTool: string;
    serviceManager: string;
    blobsPresent: number;
    partialUploads: number;
  };
  check: HostCheckOutcome;
  /** How the host would judge the bundle's signature. */
  trust: Pick<TrustDecision, 'mode' | 'signer' | 'trusted'> & { add: string | null };
}

export type InstallResult = InstallDryRun | ({ dryRun: false } & InstallReport);

/**
 * Verify the bundle, then in one host session: judge its signature against the host's
 * trust store, check the host, plan, upload what the host lacks, stage the release from
 * the blob store, record the switch in state.json, switch `current`, start and verify
 * the services; roll back to the previous release (or to nothing) when any check fails
 * or the caller aborts. Throws ApertusError on failure, with the report as details once
 * the host was changed.
 */
export async function install(options: InstallOptions): Promise<InstallResult> {
  const onProgress = options.onProgress ?? noProgress;
  const emit = (step: InstallStep, status: 'start' | 'ok' | 'fail' | 'skip' | 'info', detail?: string) =>
    onProgress({ step, status, detail });
  const root = parseHostRoot(options.root ?? DEFAULT_HOST_ROOT);
  // Read before anything else: a wrong path fails in a second, not after the verification.
  const trustKey = options.trustKeyPath === undefined ? undefined : await readPublicKey(options.trustKeyPath);
  if (trustKey && options.allowUnsigned) {
    throw new ApertusError('usage', '--trust-key and --allow-unsigned exclude each other.', {
      hint: 'Name the key the bundle is signed with (--trust-key), or install unsigned on a lab host (--allow-unsigned).',
    });
  }

  emit('verify-bundle', 'start');
  const prepared = await prepareBundle(options.bundlePath, {
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress,
    step: 'verify-bundle',
  }).catch((error: unknown) => {
    emit('verify-bundle', 'fail', isApertusError(error) ? error.code : undefined);
    throw error;
  });
  emit(
    'verify-bundle',
    'ok',
    prepared.signature.text === null
      ? 'checksums ok; not signed'
      : `checksums ok; signed by key ${prepared.signature.keyId} (the host judges it against the keys it trusts)`,
  );
  const { config } = prepared.bundle;
  try {
    return await withHostSession(
      {
        target: options.target,
        root,
        command: `install ${config.name} ${config.version}`,
        lock: options.dryRun ? false : 'create',
        probe: { system: true },
        signal: options.signal,
        onProgress,
      },
      (session) => installInSession(session, prepared, { ...options, trustKey }, emit),
    );
  } finally {
    await prepared.close();
  }
}

type Emit = (step: InstallStep, status: 'start' | 'ok' | 'fail' | 'skip' | 'info', detail?: string) => void;

async function installInSession(
  session: HostSession,
  prepared: PreparedBundle,
  options: InstallOptions & { trustKey: Awaited<ReturnType<typeof readPublicKey>> | undefined },
  emit: Emit,
): Promise<InstallResult> {
  const { transport, layout, probe } = session;
  const { signal } = options;
  const startedAt = new Date();
  const { bundle } = prepared;
  const host = transport.description;
  const failStep = (step: InstallStep, detail?: string) => (error: unknown) => {
    emit(step, 'fail', detail ?? (isApertusError(error) ? error.code : undefined));
    throw error;
  };
  const within = <T>(step: InstallStep, run: () => T, detail?: string): T => {
    try {
      return run();
    } catch (error) {
      return failStep(step, detail)(error);
    }
  };

  emit('trust', 'start');
  const trust = within('trust', () =>
    decideTrust(prepared.signature, trustedKeys(probe, layout, host), options, {
      host,
      bundle: `${bundle.config.name} ${bundle.config.version}`,
    }),
  );
  emit(
    'trust',
    'ok',
    trust.signer
      ? `signed by trusted key ${trust.signer.keyId}${trust.add ? ' (added to the host trust store)' : ''}`
      : 'NOT signature-checked: --allow-unsigned on a host that trusts no key',
  );

  emit('check', 'start');
  const hostCheck = within('check', () =>
    gateOnHostCheck({
      probe,
      probedAt: session.probedAt,
      subject: prepared.subject,
      skip: options.skipChecks ?? [],
      host,
    }),
  );
  const warnings = hostCheck.results.filter((r) => r.status === 'warn').length;
  emit(
    'check',
    'ok',
    `${hostCheck.results.length} checks, ${warnings} warnings${hostCheck.skipped.length ? `, skipped ${hostCheck.skipped.map((s) => s.id).join(', ')}` : ''}`,
  );

  emit('preflight', 'start');
  const tools = within('preflight', () => assertHostUsable(probe, layout, host));
  const plan = planInstall(
    {
      config: bundle.config,
      manifestDigest: bundle.manifestDigest,
      components: bundle.components,
      blobs: bundle.blobs,
    },
    probe,
    layout,
  );
  within(
    'preflight',
    () => assertDeltaBaseOnHost(plan, bundle.config, bundle.omitted, host),
    'the host lacks the release this delta was cut against',
  );
  if (plan.diskNeededBytes > plan.diskAvailableBytes) {
    emit('preflight', 'fail', 'not enough disk');
    throw await noSpaceError(transport, layout.root, 'the install', plan.diskNeededBytes);
  }
  if (options.egressInterface !== undefined) {
    // A wrong interface name fails here, before anything is sent, not after the upload.
    await readTxPackets(transport, options.egressInterface, signal).catch(
      failStep('preflight', `no interface ${options.egressInterface} to count egress on`),
    );
  }
  await preflightServices(transport, layout, bundle.config.services, signal).catch(failStep('preflight'));
  const venvs = wheelsVenvs(bundle.config, plan.release.dir);
  const pythons = await checkHostPython(transport, venvs, signal).catch(
    failStep('preflight', 'no python3 of the version the wheels need'),
  );
  emit(
    'preflight',
    'ok',
    `${probe.kernel ?? 'unknown'}/${probe.arch ?? 'unknown'}, ${tools.serviceManager}, hashes with ${tools.hashTool}`,
  );
  if (options.dryRun) {
    return {
      dryRun: true,
      plan,
      host: {
        transport: host,
        user: probe.user ?? 'unknown',
        arch: probe.arch ?? 'unknown',
        hashTool: tools.hashTool,
        serviceManager: tools.serviceManager,
        blobsPresent: probe.root.blobs.size,
        partialUploads: probe.root.partial.size,
      },
      check: hostCheck,
      trust: {
        mode: trust.mode,
        signer: trust.signer,
        trusted: trust.trusted,
        add: trust.add?.keyId ?? null,
      },
    };
  }

  // The first key of a new host is its own audited act, before anything of the bundle travels.
  let state = session.state;
  if (trust.add) {
    const key = trust.add;
    await transport.exec(addTrustedKeyScript(layout, key));
    const added: HostState = { ...state, trust: { mode: 'keys', since: new Date().toISOString() } };
    const recorded = await session.record({
      kind: 'trust',
      method: 'TRUST-ADD',
      endpoint: key.keyId,
      ok: true,
      subjectSha256: sha256Hex(key.key),
      current: probe.root.current,
      state: () => added,
      report: ({ path, seq }) => ({
        ok: true,
        path,
        record: { seq },
        action: 'add',
        keyId: key.keyId,
        by: `install --trust-key of ${bundle.config.name} ${bundle.config.version}`,
        at: new Date().toISOString(),
        trusted: trust.trusted,
      }),
    });
    state = { ...added, audit: { seq: recorded.record.seq, hash: recorded.record.hash } };
  }

  const services = planLaunches(bundle.config.services, {
    gpu: hostCheck.gpu,
    workloads: prepared.subject.workloads,
    imageConfigs: prepared.imageConfigs,
  });
  // The host key signs the RAG service's checkpoints: it exists before any service starts.
  await session.hostKey();
  return applyInstall({
    session,
    prepared,
    plan,
    services,
    hostCheck,
    tools,
    trust,
    state,
    startedAt,
    options,
    emit,
    wheels: { venvs, pythons },
  });
}

interface ApplyContext {
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
  options: InstallOptions;
  emit: Emit;
  wheels: { venvs: ReturnType<typeof wheelsVenvs>; pythons: Awaited<ReturnType<typeof checkHostPython>> };
}

async function applyInstall(ctx: ApplyContext): Promise<InstallResult> {
  const { session, prepared, plan, services, tools, emit, options } = ctx;
  const { transport, layout } = session;
  const { signal } = options;
  const host = transport.description;
  const reader = prepared.reader;
  const onProgress = options.onProgress ?? noProgress;

  emit('transfer', 'start', `${plan.uploads.length} of ${plan.blobs.total} blobs`);
  const replaced: ReportInput['replaced'] = plan.wrongSize.map((b) => ({
    digest: b.digest,
    reason: `${b.found} bytes on the host, ${b.size} in the bundle`,
  }));
  const upload = (uploads: InstallPlan['uploads']) =>
    transferBlobs({
      transport,
      layout,
      hashTool: tools.hashTool,
      uploads,
      openBlob: (digest, start) => reader.createReadStream(blobPath(digest), { start }),
      signal,
      onProgress,
    }).catch(async (error: unknown) => {
      emit('transfer', 'fail', isApertusError(error) ? error.code : undefined);
      if (isApertusError(error) && isNoSpace(error.message))
        throw await noSpaceError(transport, layout.root, 'uploading the blobs', plan.uploadBytes);
      throw error;
    });
  let transfer: TransferResult = await upload(plan.uploads);
  emit(
    'transfer',
    'ok',
    `${transfer.blobs} blobs, ${transfer.bytes} bytes uploaded; ${plan.blobs.present} already on the host${replaced.length ? `; ${replaced.length} replaced` : ''}`,
  );

  emit('stage', 'start');
  const uploaded = new Set(plan.uploads.map((u) => u.digest));
  const check = [...prepared.bundle.blobs.keys()].filter(
    (digest) => !uploaded.has(digest) && !prepared.bundle.omitted.has(digest),
  );
  const stageOnce = (verify: readonly string[]) =>
    stageRelease(transport, layout, plan, services, {
      hashTool: tools.hashTool,
      check: verify,
      signal,
    }).catch((error: unknown) => {
      emit('stage', 'fail', isApertusError(error) ? error.code : undefined);
      throw error;
    });
  let staged = await stageOnce(check);
  if (staged.corrupt.length > 0) {
    // Damaged in the store since it was verified: upload it anew, then stage with what was sent.
    for (const blob of staged.corrupt)
      replaced.push({
        digest: blob.digest,
        reason: `its content hashes to ${blob.actual || '(unreadable)'}`,
      });
    const again = staged.corrupt.map((b) => ({
      digest: b.digest,
      size: prepared.bundle.blobs.get(b.digest) ?? 0,
      resumeFrom: 0,
    }));
    const more = await upload(again);
    transfer = {
      blobs: transfer.blobs + more.blobs,
      bytes: transfer.bytes + more.bytes,
      ms: transfer.ms + more.ms,
    };
    const rechecked = new Set(staged.corrupt.map((b) => b.digest));
    staged = await stageOnce(check.filter((d) => !rechecked.has(d)));
    if (staged.corrupt.length > 0) {
      emit('stage', 'fail', 'blobs damaged again after upload');
      throw new ApertusError(
        'blob-corrupt-on-host',
        `Blobs ${staged.corrupt.map((b) => b.digest).join(', ')} are damaged in the store of ${host} again right after they were sent.`,
        {
          kind: 'operation',
          hint: 'Another process changes the blob store, or the disk is failing: check the host (dmesg, the owners of the files under blobs/), then install again.',
        },
      );
    }
  }
  emit(
    'stage',
    'ok',
    staged.created
      ? `${plan.release.dir}${check.length ? `; ${check.length} stored blobs re-hashed` : ''}`
      : `${plan.release.dir} (kept, already complete)`,
  );

  if (plan.images.length > 0) {
    emit('images', 'start', `${plan.images.length} images`);
    const loaded = await loadImages(transport, layout, plan, signal).catch((error: unknown) => {
      emit('images', 'fail');
      throw error;
    });
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

  return activateAndVerify(ctx, { transfer, replaced, created: staged.created });
}

/**
 * From here the host changes what it runs. An abort (Ctrl-C, SIGTERM) no longer stops
 * the command where it stands: it ends verification, then the host is put back with
 * steps of their own, recorded, and the lock released before the caller sees the abort.
 */
async function activateAndVerify(
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
          checks.push(...(await verifyService(transport, service, verifySpec, signal)));
      }
      if (checks.every((c) => c.status === 'ok')) {
        checks.push(...(await verifyGoldenPrompts(transport, services, verifySpec.golden ?? [], signal)));
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
