/**
 * The Hugging Face cache laid out next to a release's model directories
 * (operations/hf-cache-plan.ts): which sources get one, and that a hostile provenance
 * never names a path outside the release.
 */
import { describe, expect, it } from 'vitest';
import { hfCacheMaterialisation, hfCacheRepo } from '../../src/core/operations/hf-cache-plan.js';
import type { Materialisation } from '../../src/core/operations/install-plan.js';

const SHA = '0123456789abcdef0123456789abcdef01234567';
const RELEASE = '/var/lib/apertus/releases/b/1';

const model = (name: string, source: string) =>
  ({ name, kind: 'model', provenance: { source } }) as unknown as Parameters<
    typeof hfCacheMaterialisation
  >[0]['components'][number];
const link = (component: string, file: string, digest = `sha256:${file}`): Materialisation => ({
  type: 'link',
  digest,
  to: `${RELEASE}/${component}/${file}`,
  executable: false,
});

describe('the Hugging Face cache of a release', () => {
  it('names models--ORG--NAME and the commit of a pinned hf: source, and nothing else', () => {
    expect(hfCacheRepo(`hf://swiss-ai/Apertus-8B-Instruct-2509@${SHA}`)).toEqual({
      folder: 'models--swiss-ai--Apertus-8B-Instruct-2509',
      repo: 'swiss-ai/Apertus-8B-Instruct-2509',
      commit: SHA,
    });
    expect(hfCacheRepo(`hf:BAAI/bge-m3@${SHA}`)?.folder).toBe('models--BAAI--bge-m3');
    for (const hostile of [
      'hf://swiss-ai/Apertus@main',
      `hf://../etc@${SHA}`,
      `hf://org/..@${SHA}`,
      `hf://org/a..b@${SHA}`,
      `hf://org/a/b@${SHA}`,
      `hf://org/name@${SHA}/../../x`,
      `hf://org/name\n@${SHA}`,
      `file:model`,
      `oci:docker.io/vllm/vllm-openai@sha256:${'a'.repeat(64)}`,
    ]) {
      expect(hfCacheRepo(hostile), hostile).toBeUndefined();
    }
  });

  it('links each model file once more under snapshots/SHA and writes refs/main; one repo in two components once', () => {
    const steps = hfCacheMaterialisation(
      {
        components: [
          model('model', `hf://org/m@${SHA}`),
          model('same', `hf://org/m@${SHA}`),
          model('local', 'file:model'),
        ],
      },
      [
        link('model', 'config.json'),
        link('model', 'sub/tokenizer.json'),
        link('same', 'config.json'),
        link('local', 'config.json'),
        // A component whose name starts like another's is not mistaken for it.
        link('model-extra', 'x.json'),
        { type: 'extract', digest: 'sha256:t', into: `${RELEASE}/runtime` },
      ],
      RELEASE,
    );
    const repo = `${RELEASE}/hf-cache/models--org--m`;
    expect(steps).toEqual(
      [
        link('model', 'config.json'),
        link('model', 'sub/tokenizer.json'),
        { type: 'write', to: `${repo}/refs/main`, content: SHA },
      ].map((s) =>
        s.type === 'link' ? { ...s, to: s.to.replace(`${RELEASE}/model`, `${repo}/snapshots/${SHA}`) } : s,
      ),
    );
  });
});
