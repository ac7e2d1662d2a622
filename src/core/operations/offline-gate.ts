/**
 * Offline readiness as `bundle` and `check --bundle` act on it: every service's adapter
 * judges the models it serves (runtimes/*\/offline-readiness), `bundle` refuses to write a
 * bundle with a failing model (naming each missing file and its fix) and keeps the
 * warnings in its result, and `check` reports one result per served model.
 *
 * The model file lists come from one place each: `writePlanModelViews` for a bundle being
 * written (the files fetched for it), `bundleComponentViews` (bundle/component-files.ts)
 * for a written one.
 */
import { stat } from 'node:fs/promises';
import type { ComponentView } from '../bundle/component-files.js';
import type { BundleWritePlan } from '../bundle/write-bundle.js';
import type { CheckResult } from '../check/check-result.js';
import { ApertusError } from '../errors.js';
import type { ServiceSpec } from '../layout/types.js';
import type { ModelFilesView, OfflineVerdict } from '../runtimes/offline-verdict.js';
import { adapterOf } from '../runtimes/registry.js';
import { fileRange } from '../sources/file/local-files.js';

/** Each service's verdicts on the models it serves; `names` gives a component's source and ids. */
export async function judgeOffline(
  services: readonly ServiceSpec[],
  components: ReadonlyMap<string, ModelFilesView>,
  names: (component: string) => readonly string[],
): Promise<OfflineVerdict[]> {
  const verdicts: OfflineVerdict[] = [];
  for (const service of services) {
    verdicts.push(...((await adapterOf(service).offlineReadiness?.(service, components, names)) ?? []));
  }
  return verdicts;
}

/**
 * The model and adapter components of a bundle about to be written, as views of the fetched files
 * (each layer's local source under its title). This is the one place bundle-time model
 * file lists come from.
 */
export async function writePlanModelViews(plan: BundleWritePlan): Promise<Map<string, ModelFilesView>> {
  const views = new Map<string, ModelFilesView>();
  for (const component of plan.components) {
    if (component.kind !== 'model' && component.kind !== 'adapter') continue;
    const files: ModelFilesView['files'][number][] = [];
    for (const layer of component.layers) {
      if (layer.type !== 'file') continue;
      const { size } = await stat(layer.source);
      files.push({ path: layer.title, size, read: fileRange(layer.source) });
    }
    views.set(component.name, { name: component.name, files });
  }
  return views;
}

/** Judge a bundle about to be written; throws naming every failing file and its fix. */
export async function assertBundleOfflineReady(plan: BundleWritePlan): Promise<OfflineVerdict[]> {
  const sources = new Map(plan.components.map((c) => [c.name, c.provenance.source]));
  const verdicts = await judgeOffline(plan.services, await writePlanModelViews(plan), (name) => [
    name,
    sources.get(name) ?? '',
  ]);
  const failures = verdicts.flatMap((v) =>
    v.findings
      .filter((f) => f.status === 'fail')
      .map((f) => ({ ...f, service: v.service, component: v.component })),
  );
  if (failures.length > 0) {
    const lines = failures.map(
      (f) => `service ${f.service}, model ${f.component}: ${f.file ? `missing ${f.file}: ` : ''}${f.detail}`,
    );
    throw new ApertusError(
      'bundle-not-offline-ready',
      `The bundle would not start offline:\n  ${lines.join('\n  ')}`,
      {
        hint: [...new Set(failures.map((f) => f.fix))].join('\n'),
        details: { offline: verdicts },
      },
    );
  }
  return verdicts;
}

/** Judge a written bundle's services (check --bundle). */
export function judgeBundleOffline(
  services: readonly ServiceSpec[],
  components: readonly ComponentView[],
  provenance: ReadonlyMap<string, string>,
): Promise<OfflineVerdict[]> {
  return judgeOffline(services, new Map(components.map((c) => [c.name, c])), (name) => [
    name,
    provenance.get(name) ?? '',
  ]);
}

/** One check result per served model: fail or warn with every finding, ok when none. */
export function offlineCheckResults(verdicts: readonly OfflineVerdict[]): CheckResult[] {
  return verdicts.map((v) => {
    const subject = `${v.service}/${v.component}`;
    if (v.status === 'ok') {
      return {
        id: 'offline-readiness',
        status: 'ok',
        subject,
        detail: 'the bundle carries every file vLLM reads at start',
      };
    }
    return {
      id: 'offline-readiness',
      status: v.status,
      subject,
      detail: v.findings.map((f) => `${f.status}: ${f.file ? `${f.file}: ` : ''}${f.detail}`).join('; '),
      hint: [...new Set(v.findings.map((f) => f.fix))].join(' '),
    };
  });
}
