/**
 * The offline-readiness judge of a vLLM service's model (runtimes/vllm/offline-readiness.ts),
 * fed through readOfflineInputs from real files on disk: each pitfall of
 * shared/reference/offline-pitfalls.md fails or warns, names the file, and its fix works.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directoryView } from '../../src/core/bundle/component-files.js';
import { offlineCheckResults } from '../../src/core/operations/offline-gate.js';
import { readOfflineInputs } from '../../src/core/runtimes/vllm/offline-inputs.js';
import {
  judgeOfflineReadiness,
  type OfflineService,
  type OfflineVerdict,
} from '../../src/core/runtimes/vllm/offline-readiness.js';
import { listLocalFiles } from '../../src/core/sources/file/local-files.js';

let work: string;
let n = 0;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'apertus-offline-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const json = (value: unknown) => `${JSON.stringify(value)}\n`;
const COMPLETE: Record<string, string> = {
  'config.json': json({ architectures: ['ApertusForCausalLM'], model_type: 'apertus' }),
  'generation_config.json': json({ eos_token_id: [2, 68, 72] }),
  'tokenizer.json': json({ version: '1.0' }),
  'tokenizer_config.json': json({ eos_token: '</s>' }),
  'chat_template.jinja': '{{ messages }}\n',
  'model.safetensors': 'weights',
};

const SERVICE: OfflineService = {
  name: 'llm',
  embeddings: false,
  extraArgs: [],
  model: { component: 'model', path: '', id: 'swiss-ai/Apertus-8B-Instruct-2509' },
};

/** Judge a model directory holding `files` (null deletes one of COMPLETE). */
async function judge(
  files: Record<string, string | null>,
  service: Partial<OfflineService> = {},
  names = ['hf:swiss-ai/Apertus-8B-Instruct-2509@0123'],
): Promise<OfflineVerdict> {
  const dir = path.join(work, `m${n++}`);
  for (const [name, content] of Object.entries({ ...COMPLETE, ...files })) {
    if (content === null) continue;
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
  const view = { ...directoryView('model', dir, await listLocalFiles(dir)) };
  return judgeOfflineReadiness({ ...SERVICE, ...service }, await readOfflineInputs(view, names));
}

const rules = (v: OfflineVerdict) => v.findings.map((f) => `${f.rule}:${f.status}:${f.file ?? ''}`);

describe('offline readiness of a vLLM model', () => {
  it('passes a complete instruct model, and its check result says so', async () => {
    const verdict = await judge({});
    expect(verdict).toEqual({ service: 'llm', component: 'model', status: 'ok', findings: [] });
    expect(offlineCheckResults([verdict])).toEqual([
      expect.objectContaining({ id: 'offline-readiness', status: 'ok', subject: 'llm/model' }),
    ]);
  });

  it('fails an instruct model without a chat template; tokenizer_config.json or --chat-template supply one', async () => {
    const missing = await judge({ 'chat_template.jinja': null });
    expect(missing.status).toBe('fail');
    expect(rules(missing)).toEqual(['chat-template:fail:chat_template.jinja']);
    expect(missing.findings[0]?.source).toContain('vllm-project/vllm#39279');
    expect(missing.findings[0]?.fix).toContain('--chat-template /models/model/');
    const [result] = offlineCheckResults([missing]);
    expect(result).toMatchObject({ status: 'fail', subject: 'llm/model' });
    expect(result?.detail).toContain('chat_template.jinja');

    const inConfig = await judge({
      'chat_template.jinja': null,
      'tokenizer_config.json': json({ chat_template: '{{ messages }}' }),
    });
    expect(inConfig.status).toBe('ok');
    const flag = await judge(
      { 'chat_template.jinja': null },
      { extraArgs: ['--chat-template', '/models/model/t.jinja'] },
    );
    expect(rules(flag)).toEqual(['chat-template:fail:t.jinja']);
    const bundledFlag = await judge(
      { 'chat_template.jinja': null, 'templates/t.jinja': '{{ messages }}' },
      { extraArgs: ['--chat-template', '/models/model/templates/t.jinja'] },
    );
    expect(bundledFlag.status).toBe('ok');
    const unmounted = await judge(
      { 'chat_template.jinja': null },
      { extraArgs: ['--chat-template=/etc/t.jinja'] },
    );
    expect(rules(unmounted)).toEqual(['chat-template:fail:']);
    // A base model (no Instruct in its names) only warns: /v1/completions still works.
    const base = await judge(
      { 'chat_template.jinja': null },
      { model: { ...SERVICE.model, id: 'apertus' } },
      ['hf:swiss-ai/Apertus-8B-2509@0123'],
    );
    expect(rules(base)).toEqual(['chat-template:warn:chat_template.jinja']);
    // An embeddings instance serves no chat.
    expect((await judge({ 'chat_template.jinja': null }, { embeddings: true })).status).toBe('ok');
    // An empty template is none.
    const empty = await judge({
      'chat_template.jinja': null,
      'tokenizer_config.json': json({ chat_template: ' ' }),
    });
    expect(empty.status).toBe('fail');
  });

  it('warns without generation_config.json unless --generation-config vllm is explicit', async () => {
    expect(rules(await judge({ 'generation_config.json': null }))).toEqual([
      'generation-config:warn:generation_config.json',
    ]);
    expect(
      (await judge({ 'generation_config.json': null }, { extraArgs: ['--generation-config=vllm'] })).status,
    ).toBe('ok');
    // `auto` is the default: it reads the missing file.
    expect(
      (await judge({ 'generation_config.json': null }, { extraArgs: ['--generation-config', 'auto'] }))
        .status,
    ).toBe('warn');
  });

  it('fails without tokenizer files, and on --tokenizer given as a Hub id', async () => {
    expect(rules(await judge({ 'tokenizer.json': null }))).toEqual(['tokenizer:fail:tokenizer.json']);
    expect((await judge({ 'tokenizer.json': null, 'vocab.json': '{}', 'merges.txt': '' })).status).toBe('ok');
    expect((await judge({ 'tokenizer.json': null, 'tekken.json': '{}' })).status).toBe('ok');
    const hubId = await judge({}, { extraArgs: ['--tokenizer', 'swiss-ai/Apertus-8B-Instruct-2509'] });
    expect(rules(hubId)).toEqual(['tokenizer:fail:']);
    expect(hubId.findings[0]?.source).toContain('PR 29706');
    expect((await judge({ 'tokenizer.json': null }, { extraArgs: ['--skip-tokenizer-init'] })).status).toBe(
      'ok',
    );
  });

  it('auto_map needs trustRemoteCode said explicitly, and with true every module and sibling import bundled', async () => {
    const config = json({
      architectures: ['ApertusForCausalLM'],
      auto_map: {
        AutoConfig: 'configuration_apertus.ApertusConfig',
        AutoModelForCausalLM: 'modeling_apertus.ApertusForCausalLM',
      },
    });
    const unsaid = await judge({ 'config.json': config });
    expect(rules(unsaid)).toEqual(['remote-code:fail:']);
    expect(unsaid.findings[0]?.fix).toContain('trustRemoteCode: true');
    expect(unsaid.findings[0]?.source).toContain('huggingface/transformers#34855');
    // Explicitly off: vLLM's own implementation, no modules needed.
    expect((await judge({ 'config.json': config }, { trustRemoteCode: false })).status).toBe('ok');

    const trusted = await judge(
      {
        'config.json': config,
        'configuration_apertus.py': 'class ApertusConfig: pass\n',
        'modeling_apertus.py': 'from .xielu import XIELU\nfrom .configuration_apertus import ApertusConfig\n',
      },
      { trustRemoteCode: true },
    );
    expect(rules(trusted)).toEqual(['remote-code:fail:xielu.py']);
    const complete = await judge(
      {
        'config.json': config,
        'configuration_apertus.py': 'class ApertusConfig: pass\n',
        'modeling_apertus.py': 'from .xielu import XIELU\n',
        'xielu.py': 'XIELU = 1\n',
      },
      { trustRemoteCode: true },
    );
    expect(complete.status).toBe('ok');
    // Code from another repo is a download at start.
    const crossRepo = await judge(
      { 'config.json': json({ auto_map: { AutoModel: 'other/repo--modeling_x.X' } }) },
      { trustRemoteCode: true },
    );
    expect(rules(crossRepo)).toEqual(['remote-code:fail:']);
    expect(crossRepo.findings[0]?.detail).toContain('other/repo');
    // A tokenizer's auto_map counts too.
    const tokenizer = await judge({
      'tokenizer_config.json': json({ auto_map: { AutoTokenizer: ['tokenization_x.XTokenizer', null] } }),
    });
    expect(rules(tokenizer)).toEqual(['remote-code:fail:']);
  });

  it('gpt-oss needs the tiktoken vocabularies; a TikToken tokenizer its vocab file', async () => {
    const gptOss = json({ architectures: ['GptOssForCausalLM'], model_type: 'gpt_oss' });
    expect(rules(await judge({ 'config.json': gptOss }))).toEqual([
      'tiktoken:fail:o200k_base.tiktoken',
      'tiktoken:warn:cl100k_base.tiktoken',
    ]);
    expect(
      (await judge({ 'config.json': gptOss, 'o200k_base.tiktoken': 'x', 'cl100k_base.tiktoken': 'x' }))
        .status,
    ).toBe('ok');
    const kimi = await judge({
      'tokenizer.json': null,
      'tokenizer_config.json': json({ tokenizer_class: 'TikTokenTokenizer', vocab_file: 'tiktoken.model' }),
    });
    expect(rules(kimi)).toEqual(['tokenizer:fail:tokenizer.json', 'tiktoken:fail:tiktoken.model']);
  });

  it('a speculative drafter must be bundled inside the model component, by path', async () => {
    const hub = await judge(
      {},
      { extraArgs: ['--speculative-config', json({ model: 'org/drafter', num_speculative_tokens: 3 })] },
    );
    expect(rules(hub)).toEqual(['drafter:fail:']);
    expect(hub.findings[0]?.detail).toContain('downloads a repo id');
    const absent = await judge({}, { extraArgs: ['--speculative-model=/models/model/drafter'] });
    expect(rules(absent)).toEqual(['drafter:fail:drafter/config.json']);
    const outside = await judge({}, { extraArgs: ['--speculative-model', '/models/model/../other'] });
    expect(outside.status).toBe('fail');
    const bundled = await judge(
      { 'drafter/config.json': '{}' },
      { extraArgs: ['--speculative_config', json({ model: '/models/model/drafter' })] },
    );
    expect(bundled.status).toBe('ok');
    expect((await judge({}, { extraArgs: ['--speculative-config', json({ method: 'ngram' })] })).status).toBe(
      'ok',
    );
  });

  it('reads no file larger than a config, and fails it rather than pass what it could not read', async () => {
    // auto_map hidden behind padding must not slip through as "no auto_map".
    const big = `{"auto_map":{"AutoModel":"m.M"},"pad":"${'x'.repeat(5 << 20)}"}`;
    const verdict = await judge({ 'config.json': big });
    expect(rules(verdict)).toEqual(['config:fail:']);
    expect(verdict.findings[0]?.detail).toContain('config.json');
  });
});
