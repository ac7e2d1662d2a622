import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { bundle } from '../bundle/bundle.js';
import { connectDemoHost, createDemoHost, type DemoHost } from '../demo-host/demo-host.js';
import { ApertusError } from '../errors.js';
import { type InstallResult, install } from '../operations/install.js';
import type { InstallReport } from '../operations/install-report.js';
import { noProgress, type ProgressEvent, type RunOptions } from '../progress.js';
import { PROJECT_ROOT } from '../project-root.js';
import { generateKeyPair } from '../sign/keys.js';
import type { InstallTarget } from '../target/connect.js';
import { hostLayout } from '../target/layout.js';
import { stopCurrentRelease } from '../target/releases.js';
import { verifyBundle } from '../verify/verify-bundle.js';

/** The demo's own steps, in order; install's steps are reported as 'install.<id>'. */
export const DEMO_STEPS = ['keys', 'bundle', 'verify', 'host', 'install', 'reinstall', 'teardown'] as const;

export interface DemoOptions extends RunOptions {
  /** Where the bundle is written. */
  outDir: string;
  /** Leave the test host running after the demo. */
  keep?: boolean | undefined;
  recipePath?: string | undefined;
}

export interface DemoStep {
  id: string;
  status: 'ok' | 'fail' | 'skip';
  detail: string;
}

export interface DemoResult {
  ok: boolean;
  wallMs: number;
  steps: DemoStep[];
  bundle: { path: string; size: number; manifestDigest: string; signed: boolean; bundleMs: number };
  host: { mode: DemoHost['mode']; reason: string; address: string | null; root: string; kept: boolean };
  install: InstallReport;
  reinstall: { blobsUploaded: number; bytesUploaded: number; ok: boolean };
  /** How to reach or remove a kept host. */
  next: string[];
}

/**
 * The main job on the embedded default: bundle bundles/demo (signed with a fresh key),
 * verify it, create a local air-gapped host, install over SSH, verify the services,
 * install again (nothing to upload), and tear the host down unless `keep`.
 */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const started = Date.now();
  const onProgress = options.onProgress ?? noProgress;
  const steps: DemoStep[] = [];
  const record = (event: ProgressEvent) => {
    if (event.status === 'ok' || event.status === 'fail' || event.status === 'skip') {
      steps.push({ id: event.step, status: event.status, detail: event.detail ?? '' });
    }
    onProgress(event);
  };
  const { signal } = options;
  const work = await mkdtemp(path.join(os.tmpdir(), 'apertus-demo-'));
  let host: DemoHost | undefined;
  try {
    record({ step: 'keys', status: 'start' });
    const keys = await generateKeyPair(path.join(work, 'keys', 'demo'));
    record({ step: 'keys', status: 'ok', detail: `key id ${keys.keyId}` });

    record({ step: 'bundle', status: 'start' });
    const written = await bundle({
      recipePath: options.recipePath ?? path.join(PROJECT_ROOT, 'bundles', 'demo'),
      outDir: options.outDir,
      secretKeyPath: keys.secretKeyPath,
      signal,
      onProgress: (event) => onProgress({ ...event, step: 'bundle', status: 'info' }),
    });
    if (written.dryRun) throw new Error('unreachable: the demo never plans only');
    record({ step: 'bundle', status: 'ok', detail: `${written.path} (${written.size} bytes)` });

    record({ step: 'verify', status: 'start' });
    const verification = await verifyBundle(written.path, {
      publicKeyPath: keys.publicKeyPath,
      signal,
      onProgress: (event) => onProgress({ ...event, step: 'verify', status: 'info' }),
    });
    if (!verification.ok || !verification.signed) {
      record({ step: 'verify', status: 'fail' });
      throw new ApertusError('demo-verify-failed', 'The freshly written demo bundle failed verification.', {
        kind: 'operation',
        hint: 'This is a bug in apertus: please report it with the --json output.',
        details: { verification: verification.results },
      });
    }
    record({ step: 'verify', status: 'ok', detail: `${verification.results.length} items, signature ok` });

    record({ step: 'host', status: 'start' });
    host = await createDemoHost({ workDir: path.join(work, 'host'), signal, onProgress });
    record({ step: 'host', status: 'ok', detail: `${host.mode}: ${host.reason}` });

    const target: InstallTarget =
      host.mode === 'local'
        ? { kind: 'local' }
        : {
            kind: 'ssh',
            address: host.address as string,
            identityFile: host.identityFile,
            knownHostsFile: host.knownHostsFile,
          };
    const installOnce = (step: 'install' | 'reinstall') =>
      install({
        bundlePath: written.path,
        target,
        root: host?.root,
        trustKeyPath: keys.publicKeyPath,
        egressInterface: host?.egressInterface,
        signal,
        onProgress: (event) => record({ ...event, step: `${step}.${event.step}` }),
      }).then((result: InstallResult) => {
        if (result.dryRun) throw new Error('unreachable: the demo never plans only');
        return result;
      });

    record({ step: 'install', status: 'start' });
    const first = await installOnce('install');
    record({ step: 'install', status: 'ok', detail: `${first.transfer.bytesUploaded} bytes uploaded` });

    record({ step: 'reinstall', status: 'start' });
    const second = await installOnce('reinstall');
    record({ step: 'reinstall', status: 'ok', detail: `${second.transfer.bytesUploaded} bytes uploaded` });

    const next: string[] = [];
    if (options.keep) {
      record({ step: 'teardown', status: 'skip', detail: 'kept (--keep)' });
      // The demo's key and work files go with the host when `demo --down` removes it.
      next.push(...host.keptInstructions({ alsoRemove: work }));
    } else {
      record({ step: 'teardown', status: 'start' });
      await stopDemoServices(host);
      await host.teardown();
      record({ step: 'teardown', status: 'ok', detail: 'host removed' });
    }
    return {
      ok: steps.every((s) => s.status !== 'fail'),
      wallMs: Date.now() - started,
      steps,
      bundle: {
        path: written.path,
        size: written.size,
        manifestDigest: written.manifestDigest,
        signed: written.signed,
        bundleMs: written.ms,
      },
      host: {
        mode: host.mode,
        reason: host.reason,
        address: host.address ?? null,
        root: host.root,
        kept: Boolean(options.keep),
      },
      install: first,
      reinstall: {
        blobsUploaded: second.transfer.blobsUploaded,
        bytesUploaded: second.transfer.bytesUploaded,
        ok: second.ok,
      },
      next,
    };
  } finally {
    if (host && !options.keep) {
      // Services outlive a plain teardown where the host shares this machine's processes
      // (loopback sshd, local): stop them first, whatever went wrong before.
      await stopDemoServices(host).catch(() => undefined);
      await host.teardown();
    }
    if (!options.keep) await rm(work, { recursive: true, force: true });
  }
}

async function stopDemoServices(host: DemoHost): Promise<void> {
  const transport = await connectDemoHost(host);
  try {
    await stopCurrentRelease(transport, hostLayout(host.root));
  } finally {
    await transport.close();
  }
}
