/**
 * The systemd units install writes for the demo and the apertus-8b-rag recipes, as
 * systemd itself judges them: `systemd-analyze security --offline` rates each unit file's
 * exposure (0 = confined, 10 = unprotected). Our own servers must stay at 5.0 or below;
 * container units run the engine, which needs root and its namespaces (their template says why).
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ContainerHost, renderContainerUnit } from '../../src/core/runtimes/container/engine.js';
import { containerRunSpec } from '../../src/core/runtimes/container/service.js';
import { gatewayReleaseCommand, gatewayRunOptions } from '../../src/core/runtimes/gateway/adapter.js';
import { llamacppReleaseCommand } from '../../src/core/runtimes/llamacpp/adapter.js';
import { ragReleaseCommand, ragRunOptions } from '../../src/core/runtimes/rag/adapter.js';
import type { ServiceSpec } from '../../src/core/runtimes/registry.js';
import { resolveServices } from '../../src/core/runtimes/resolve-services.js';
import { runtimeCommandUnit } from '../../src/core/runtimes/service-manager.js';
import { systemdUnitName } from '../../src/core/runtimes/systemd.js';
import { vllmRunSpec } from '../../src/core/runtimes/vllm/vllm.js';
import { loadRecipe } from '../../src/core/spec/load-recipe.js';
import { hostLayout } from '../../src/core/target/layout.js';
import { servedFiles } from '../helpers/served-files.js';

const ROOT = '/var/lib/apertus';
const layout = hostLayout(ROOT);
const podman: ContainerHost = {
  engine: 'podman',
  program: '/usr/bin/podman',
  version: 'podman version 4.3.1',
  gpu: 'cdi',
  cdiSpecs: ['/etc/cdi/nvidia.yaml'],
  systemd: true,
};

/** Each service's unit text as start() renders it under systemd. */
function unitOf(service: ServiceSpec, releaseDir: string): string {
  const where = { layout, releaseDir };
  switch (service.runtime) {
    case 'llamacpp':
      return runtimeCommandUnit(service.name, llamacppReleaseCommand(service, releaseDir), where).text;
    case 'rag':
      return runtimeCommandUnit(
        service.name,
        ragReleaseCommand(service, releaseDir, layout),
        where,
        ragRunOptions(service, layout),
      ).text;
    case 'gateway':
      return runtimeCommandUnit(
        service.name,
        gatewayReleaseCommand(service, releaseDir, layout),
        where,
        gatewayRunOptions(layout),
      ).text;
    case 'vllm':
      return renderContainerUnit(vllmRunSpec(service, releaseDir, ROOT), podman);
    case 'container':
      return renderContainerUnit(containerRunSpec(service, releaseDir, ROOT), podman);
  }
}

async function recipeUnits(recipe: string): Promise<Map<string, { runtime: string; text: string }>> {
  const loaded = await loadRecipe(recipe);
  const services = resolveServices(loaded.recipe, loaded.file, servedFiles(loaded.recipe));
  const releaseDir = layout.release(loaded.recipe.metadata.name, loaded.recipe.metadata.version);
  return new Map(services.map((s) => [s.name, { runtime: s.runtime, text: unitOf(s, releaseDir) }]));
}

const settings = (text: string, key: string) =>
  text
    .split('\n')
    .filter((line) => line.startsWith(`${key}=`))
    .map((line) => line.slice(key.length + 1));

describe('systemd units of the shipped recipes', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'apertus-units-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('demo: both servers start at boot as the apertus user; rag requires and follows llm', async () => {
    const units = await recipeUnits('bundles/demo');
    const llm = units.get('llm')?.text ?? '';
    const rag = units.get('rag')?.text ?? '';
    for (const text of [llm, rag]) {
      expect(settings(text, 'WantedBy')).toEqual(['multi-user.target']);
      expect(settings(text, 'User')).toEqual(['apertus']);
      expect(settings(text, 'ProtectSystem')).toEqual(['strict']);
      expect(settings(text, 'CapabilityBoundingSet')).toEqual(['']);
      expect(settings(text, 'SystemCallFilter')).toContain('@system-service');
      expect(text).not.toContain('{{');
    }
    expect(settings(rag, 'Requires')).toEqual(['apertus-llm.service']);
    expect(settings(rag, 'After')).toEqual(['network.target apertus-llm.service']);
    expect(settings(llm, 'Requires')).toEqual([]);
    // Each writes only its data directory; the RAG service reads the host key as a credential.
    expect(settings(rag, 'ReadWritePaths')).toEqual([`${ROOT}/data/rag`]);
    expect(settings(llm, 'ReadWritePaths')).toEqual([`${ROOT}/data/llm`]);
    expect(settings(rag, 'LoadCredential')).toEqual([`host.key:${ROOT}/keys/host.key`]);
    expect(settings(rag, 'ExecStart')[0]).toContain('--checkpoint-key %d/host.key');
    expect(settings(llm, 'LoadCredential')).toEqual([]);
  });

  it('on systemd older than 247 (no credentials) the RAG service reads the host key as root', async () => {
    const loaded = await loadRecipe('bundles/demo');
    const rag = resolveServices(loaded.recipe, loaded.file, servedFiles(loaded.recipe)).find(
      (s) => s.name === 'rag',
    );
    if (rag?.runtime !== 'rag') throw new Error('no rag service');
    const releaseDir = layout.release('demo', '0.1.0');
    const argv = ragReleaseCommand(rag, releaseDir, layout);
    const old = runtimeCommandUnit(
      'rag',
      argv,
      { layout, releaseDir },
      { ...ragRunOptions(rag, layout), systemdVersion: 239 },
    ).text;
    expect(settings(old, 'User')).toEqual([]);
    expect(settings(old, 'LoadCredential')).toEqual([]);
    expect(settings(old, 'ExecStart')[0]).toContain(`--checkpoint-key ${ROOT}/keys/host.key`);
    expect(settings(old, 'ProtectSystem')).toEqual(['strict']);
  });

  it('apertus-8b-rag: rag requires and follows both vLLM services and Qdrant; the gateway writes only its data', async () => {
    const units = await recipeUnits('bundles/apertus-8b-rag');
    expect([...units.keys()]).toEqual(['llm', 'embed', 'qdrant', 'rag', 'gateway']);
    expect(settings(units.get('gateway')?.text ?? '', 'ReadWritePaths')).toEqual([`${ROOT}/data/gateway`]);
    const rag = units.get('rag')?.text ?? '';
    const deps = ['apertus-llm.service', 'apertus-embed.service', 'apertus-qdrant.service'];
    expect(settings(rag, 'Requires')).toEqual([deps.join(' ')]);
    expect(settings(rag, 'After')).toEqual([['network.target', ...deps].join(' ')]);
    for (const [, unit] of units) expect(settings(unit.text, 'WantedBy')).toEqual(['multi-user.target']);
  });

  it.skipIf(!hasSystemdAnalyze())(
    'systemd-analyze security --offline: our servers at 5.0 or less, every unit scored',
    async () => {
      const scores: Record<string, number> = {};
      for (const recipe of ['bundles/demo', 'bundles/apertus-8b-rag']) {
        const name = path.basename(recipe);
        for (const [service, unit] of await recipeUnits(recipe)) {
          const file = path.join(dir, name, systemdUnitName(service));
          await mkdir(path.dirname(file), { recursive: true });
          await writeFile(file, unit.text);
          const ours = ['llamacpp', 'rag', 'gateway'].includes(unit.runtime);
          const result = await execa(
            'systemd-analyze',
            ['security', '--offline=true', '--no-pager', ...(ours ? ['--threshold=50'] : []), file],
            { reject: false },
          );
          const exposure = /Overall exposure level for \S+: (\d+\.\d)/.exec(result.stdout)?.[1];
          expect(exposure, result.stdout + result.stderr).toBeDefined();
          scores[`${name}/${service} (${unit.runtime})`] = Number(exposure);
          if (ours) {
            expect(result.exitCode, result.stdout).toBe(0);
            expect(Number(exposure)).toBeLessThanOrEqual(5.0);
          }
        }
      }
      // The scores per unit, for the record (the container units run the engine as root).
      console.info(`systemd-analyze security exposure: ${JSON.stringify(scores)}`);
      expect(Object.keys(scores)).toHaveLength(7);
    },
  );
});

function hasSystemdAnalyze(): boolean {
  return existsSync('/usr/bin/systemd-analyze');
}
