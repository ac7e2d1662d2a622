/**
 * The gateway as a runtime kind: the recipe entry turned into the routes, start order and
 * argv the host runs, install's per-host choices (address, plain HTTP) applied and recorded,
 * `status` warned about plain HTTP, the operator's TLS files checked before they travel, and
 * the RAG service told to believe only the gateway's caller header.
 */
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isApertusError } from '../../src/core/errors.js';
import { gatewayReleaseCommand, gatewayRuntime } from '../../src/core/runtimes/gateway/adapter.js';
import type { GatewayServiceSpec } from '../../src/core/runtimes/gateway/spec.js';
import { readTlsPair } from '../../src/core/runtimes/gateway/tls-files.js';
import { planLaunches } from '../../src/core/runtimes/launch-plan.js';
import { startOrder } from '../../src/core/runtimes/lifecycle.js';
import { ragReleaseCommand } from '../../src/core/runtimes/rag/adapter.js';
import { servicePorts, serviceWarnings } from '../../src/core/runtimes/registry.js';
import { resolveServices } from '../../src/core/runtimes/resolve-services.js';
import { loadRecipe } from '../../src/core/spec/load-recipe.js';
import { hostLayout } from '../../src/core/target/layout.js';
import { createCa, issueCertificate } from '../../src/core/tls/openssl-ca.js';
import { servedFiles } from '../helpers/served-files.js';

const GATEWAY = [
  '  - name: gateway',
  '    runtime: gateway',
  '    port: 18099',
  '    expose:',
  '      port: 8443',
  '    rate: 2',
  'verify:',
].join('\n');

describe('the gateway in recipes and on hosts', () => {
  let work: string;
  const recipeWith = async (edit: (text: string) => string) => {
    const dir = await mkdtemp(path.join(work, 'recipe-'));
    await cp('bundles/demo', dir, { recursive: true });
    const file = path.join(dir, 'apertus.yaml');
    await writeFile(file, edit(await readFile(file, 'utf8')));
    return dir;
  };
  const resolveDemo = async (gateway = GATEWAY) => {
    const loaded = await loadRecipe(await recipeWith((t) => t.replace(/^verify:$/m, gateway)));
    return resolveServices(loaded.recipe, loaded.file, servedFiles(loaded.recipe));
  };

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-gateway-runtime-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('routes to every model and RAG service of the recipe, starts last, and runs with TLS by default', async () => {
    const services = await resolveDemo();
    const gateway = services.find((s) => s.name === 'gateway');
    expect(gateway).toEqual({
      name: 'gateway',
      runtime: 'gateway',
      port: 18099,
      expose: { address: '0.0.0.0', port: 8443 },
      upstreams: [
        { service: 'llm', model: 'apertus-demo-tiny', url: 'http://127.0.0.1:18080', embeddings: true },
      ],
      rags: [{ service: 'rag', collection: 'rag', url: 'http://127.0.0.1:18090' }],
      dependsOn: ['llm', 'rag'],
      rate: 2,
    });
    expect(startOrder([...services].reverse()).map((s) => s.name)).toEqual(['llm', 'rag', 'gateway']);
    if (gateway?.runtime !== 'gateway') throw new Error('no gateway');
    expect(servicePorts(gateway)).toEqual([18099, 8443]);
    const argv = gatewayReleaseCommand(gateway, '/srv/a/releases/demo/0.1.0', hostLayout('/srv/a'));
    expect(argv.slice(1).join(' ')).toBe(
      [
        '/srv/a/releases/demo/0.1.0/runtime/gateway/server.mjs --listen 0.0.0.0:8443 --metrics-port 18099',
        '--keys /srv/a/data/gateway/api-keys.json --access-log /srv/a/data/gateway/access.log',
        '--checkpoint-key /srv/a/keys/host.key --gateway-token-file /srv/a/data/gateway/gateway.token',
        '--tls-cert /srv/a/data/gateway/tls/cert.pem --tls-key /srv/a/data/gateway/tls/key.pem',
        '--upstream apertus-demo-tiny=http://127.0.0.1:18080 --rag rag=http://127.0.0.1:18090 --rate 2',
      ].join(' '),
    );
    expect(serviceWarnings(gateway)).toEqual([]);
  });

  it('takes this host’s address and --insecure-http at install, records them, and status warns', async () => {
    const services = await resolveDemo();
    const planned = planLaunches(services, {
      gpu: undefined,
      workloads: [],
      imageConfigs: new Map(),
      exposure: { address: 'fe80::1', insecureHttp: true },
    });
    const gateway = planned.find((s) => s.name === 'gateway') as GatewayServiceSpec;
    expect(gateway.expose).toEqual({ address: 'fe80::1', port: 8443 });
    expect(gateway.insecureHttp).toBe(true);
    const argv = gatewayReleaseCommand(gateway, '/r', hostLayout('/srv/a'));
    expect(argv).toEqual(expect.arrayContaining(['--listen', '[fe80::1]:8443', '--insecure-http']));
    expect(argv).not.toContain('--tls-cert');
    expect(serviceWarnings(gateway)).toEqual([
      expect.stringMatching(/^gateway gateway serves plain HTTP on \[fe80::1\]:8443 \(--insecure-http\)/),
    ]);
    expect(gatewayRuntime.summary(gateway)).toBe('http://[fe80::1]:8443 in front of llm, rag');
    // The other services are untouched: they stay on loopback.
    expect(planned.filter((s) => s.name !== 'gateway')).toEqual(services.filter((s) => s.name !== 'gateway'));
  });

  it('gives the RAG service the gateway token only when the host has one', () => {
    const rag = {
      name: 'rag',
      runtime: 'rag' as const,
      port: 18090,
      runtimeUrl: 'http://127.0.0.1:18080',
      embeddingModel: 'm',
      dimension: 64,
      chatModel: 'm',
    };
    const layout = hostLayout('/srv/a');
    expect(ragReleaseCommand(rag, '/r', layout)).not.toContain('--gateway-token-file');
    const argv = ragReleaseCommand(rag, '/r', layout, '/srv/a/data/gateway/gateway.token');
    expect(argv.slice(-2)).toEqual(['--gateway-token-file', '/srv/a/data/gateway/gateway.token']);
  });

  it.each([
    [
      'a route to no service',
      GATEWAY.replace('    rate: 2', '    routes: [llm, nope]'),
      /no other service named "nope"/,
    ],
    [
      'the exposed port equal to the metrics port',
      GATEWAY.replace('port: 8443', 'port: 18099'),
      /must differ/,
    ],
    [
      'an address that is no IP',
      GATEWAY.replace('    expose:\n', '    expose:\n      address: gpu1.lab\n'),
      /IPv4 or IPv6/,
    ],
  ])('refuses %s', async (_what, gateway, message) => {
    expect(gateway).not.toBe(GATEWAY);
    const error = await resolveDemo(gateway).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isApertusError(error)).toBe(true);
    expect(String((error as Error).message)).toMatch(message);
  });

  it('checks the TLS files before they travel: a certificate and the key it was issued for', async () => {
    const ca = path.join(work, 'ca');
    await mkdir(ca);
    await createCa({ dir: ca, name: 'test CA', days: 2 });
    const one = await issueCertificate({
      caDir: ca,
      names: ['10.0.0.5'],
      out: path.join(work, 'one'),
      days: 2,
    });
    const two = await issueCertificate({
      caDir: ca,
      names: ['10.0.0.6'],
      out: path.join(work, 'two'),
      days: 2,
    });
    const pair = await readTlsPair(one.cert, one.key);
    expect(pair.cert).toMatch(/^-----BEGIN CERTIFICATE-----/);
    const refused = async (cert: string, key: string) =>
      readTlsPair(cert, key).then(
        () => null,
        (e: unknown) => e as Error & { code?: string },
      );
    expect(await refused(one.cert, two.key)).toMatchObject({
      code: 'usage',
      message: expect.stringMatching(/does not belong to the certificate/),
    });
    expect(await refused(one.key, one.key)).toMatchObject({
      message: expect.stringMatching(/no PEM certificate/),
    });
    expect(await refused(one.cert, path.join(work, 'missing.key'))).toMatchObject({
      message: expect.stringMatching(/^No file at .*missing\.key \(--tls-key\)\.$/),
    });
  });
});
