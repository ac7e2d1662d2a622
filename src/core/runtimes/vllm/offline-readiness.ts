/**
 * Offline readiness of one model a vLLM service serves: does the bundle carry every file
 * vLLM (and transformers, tokenizers, tiktoken) would otherwise fetch from the network at
 * start? Inside the air gap such a fetch is not slow but fatal, and it shows only on the
 * GPU host, after the media went across. So `bundle` refuses before it writes and
 * `check --bundle` reports the same verdict (src/core/operations/offline-gate.ts).
 *
 * Pure: it judges the model component's file list and the few small JSON (and .py) files
 * read by `readOfflineInputs` (offline-inputs.ts). Each rule names its source from
 * shared/reference/offline-pitfalls.md; a finding says which file is missing and the fix.
 */
import path from 'node:path/posix';
import type { OfflineFinding, OfflineVerdict } from '../offline-verdict.js';
import type { VllmServiceSpec } from './spec.js';

export type { OfflineFinding, OfflineVerdict } from '../offline-verdict.js';

/** The rules, as OfflineFinding.rule names them. */
export type OfflineRule =
  | 'chat-template'
  | 'generation-config'
  | 'tokenizer'
  | 'remote-code'
  | 'tiktoken'
  | 'drafter'
  | 'config';

/** What the judge reads of a model component: its paths and its small files, parsed. */
export interface OfflineInputs {
  component: string;
  /** Every path in the component, '/'-separated. */
  files: readonly string[];
  /** Names that say what the model is (source repo, served model id): 'Instruct' in them marks a chat model. */
  names: readonly string[];
  /** config.json parsed; undefined when absent or not readable (a delta left it out). */
  config?: unknown;
  /** tokenizer_config.json parsed, when present and readable. */
  tokenizerConfig?: unknown;
  /** Small files too large to be what they say (config.json, tokenizer_config.json): not read, so not judged. */
  oversized?: readonly string[];
  /** Text of the component's top-level .py files, by path, for the sibling imports of remote code. */
  python?: ReadonlyMap<string, string>;
}

/** The service fields the judge needs. */
export type OfflineService = Pick<
  VllmServiceSpec,
  'name' | 'embeddings' | 'extraArgs' | 'trustRemoteCode' | 'model'
>;

/** Where the served model directory is mounted in the container (vllm.ts VLLM_MODELS_DIR + component). */
export function containerModelDir(component: string): string {
  return path.join('/models', component);
}

/**
 * Files that hold a tokenizer vLLM can load without the Hub: fast (tokenizer.json),
 * SentencePiece, BPE (vocab.json + merges.txt), WordPiece, Mistral's tekken, tiktoken.
 */
const TOKENIZER_SETS: readonly (readonly string[])[] = [
  ['tokenizer.json'],
  ['tokenizer.model'],
  ['spiece.model'],
  ['sentencepiece.bpe.model'],
  ['vocab.json', 'merges.txt'],
  ['vocab.txt'],
  ['tekken.json'],
  ['tiktoken.model'],
];

const INSTRUCT_NAME = /instruct|[-_.]chat\b|[-_]it\b|[-_]sft\b/i;

/** Judge one vLLM service's model; the verdict is the worst finding. */
export function judgeOfflineReadiness(service: OfflineService, input: OfflineInputs): OfflineVerdict {
  const files = new Set(input.files);
  const args = flagValues(service.extraArgs);
  const findings: OfflineFinding[] = [
    ...(input.oversized ?? []).map(
      (file): OfflineFinding => ({
        rule: 'config',
        status: 'fail',
        detail: `${file} is larger than any model config (4 MiB): it cannot be judged for remote code or a chat template`,
        fix: `Bundle the ${file} the model repo publishes.`,
        source: 'huggingface/transformers#34855 (auto_map in config.json runs code)',
      }),
    ),
    ...tokenizerRule(files, input, args),
    ...(service.embeddings ? [] : chatTemplateRule(files, input, args)),
    ...(service.embeddings ? [] : generationConfigRule(files, args)),
    ...remoteCodeRule(service, files, input),
    ...tiktokenRule(files, input),
    ...drafterRule(service, files, args),
  ];
  const status = findings.some((f) => f.status === 'fail') ? 'fail' : findings.length > 0 ? 'warn' : 'ok';
  return { service: service.name, component: input.component, status, findings };
}

/** `--flag value` and `--flag=value` of the recipe's extraArgs, last one wins; '' for a bare flag. */
function flagValues(extraArgs: readonly string[]): Map<string, string> {
  const values = new Map<string, string>();
  for (let i = 0; i < extraArgs.length; i++) {
    const arg = extraArgs[i] as string;
    if (!arg.startsWith('--')) continue;
    const eq = arg.indexOf('=');
    // vLLM takes --flag_name as --flag-name.
    const name = (eq === -1 ? arg : arg.slice(0, eq)).replace(/_/g, '-');
    if (eq !== -1) values.set(name, arg.slice(eq + 1));
    else {
      const next = extraArgs[i + 1];
      values.set(name, next !== undefined && !next.startsWith('--') ? next : '');
    }
  }
  return values;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/**
 * Tokenizer files. vLLM loads the tokenizer at start; without its files in the model
 * directory transformers asks the Hub, and a `--tokenizer` given as a repo id always does.
 * Sources: vllm-project/vllm PR 29706 (tokenizer by path), mistralai/mistral-common#248
 * (the Mistral tokenizer ignores HF_HUB_OFFLINE: bundle tekken.json).
 */
function tokenizerRule(
  files: Set<string>,
  input: OfflineInputs,
  args: Map<string, string>,
): OfflineFinding[] {
  if (args.has('--skip-tokenizer-init')) return [];
  const source = 'vllm-project/vllm PR 29706; mistralai/mistral-common#248';
  const tokenizer = args.get('--tokenizer');
  if (tokenizer !== undefined && tokenizer !== '') {
    if (!tokenizer.startsWith('/')) {
      return [
        {
          rule: 'tokenizer',
          status: 'fail',
          detail: `--tokenizer ${tokenizer} is a Hub repo id: vLLM looks it up on the Hub at start`,
          fix: `Bundle the tokenizer files in the model component and drop --tokenizer, or pass it as a path under ${containerModelDir(input.component)}/.`,
          source,
        },
      ];
    }
    return [];
  }
  if (TOKENIZER_SETS.some((set) => set.every((f) => files.has(f)))) return [];
  if ([...files].some((f) => !f.includes('/') && f.endsWith('.tiktoken'))) return [];
  return [
    {
      rule: 'tokenizer',
      status: 'fail',
      file: 'tokenizer.json',
      detail:
        'the model has no tokenizer files (tokenizer.json, tokenizer.model, vocab.json + merges.txt, vocab.txt, tekken.json or a .tiktoken vocabulary): vLLM would fetch them at start',
      fix: "Include the repo's tokenizer files in the model component (check its include/exclude patterns).",
      source,
    },
  ];
}

/**
 * The chat template. transformers has no default template since 4.44, so a model without
 * one refuses /v1/chat/completions; an instruct model is served for chat, so that fails.
 * Sources: huggingface/text-generation-inference#3247; vllm-project/vllm#39279.
 */
function chatTemplateRule(
  files: Set<string>,
  input: OfflineInputs,
  args: Map<string, string>,
): OfflineFinding[] {
  const source = 'huggingface/text-generation-inference#3247; vllm-project/vllm#39279';
  const given = args.get('--chat-template');
  if (given !== undefined && given !== '') {
    // A path must be a file of the mounted model; anything else vLLM takes as the template text.
    if (!given.startsWith('/')) return [];
    const mount = `${containerModelDir(input.component)}/`;
    const inside = given.startsWith(mount) ? path.normalize(given.slice(mount.length)) : undefined;
    if (inside !== undefined && !inside.startsWith('..') && files.has(inside)) return [];
    return [
      {
        rule: 'chat-template',
        status: 'fail',
        ...(inside !== undefined ? { file: inside } : {}),
        detail: `--chat-template ${given} is ${inside === undefined ? 'not under the mounted model directory' : 'not a file of the model component'}`,
        fix: `Put the template into the model component and pass its path under ${mount}.`,
        source,
      },
    ];
  }
  if (files.has('chat_template.jinja') || files.has('chat_template.json')) return [];
  const template = record(input.tokenizerConfig)?.chat_template;
  if (
    (typeof template === 'string' && template.trim() !== '') ||
    (Array.isArray(template) && template.length > 0)
  )
    return [];
  const instruct = input.names.some((n) => INSTRUCT_NAME.test(n));
  return [
    {
      rule: 'chat-template',
      status: instruct ? 'fail' : 'warn',
      file: 'chat_template.jinja',
      detail: `${instruct ? 'an instruct model' : 'the model'} without a chat template (no chat_template.jinja, no chat_template in tokenizer_config.json): vLLM refuses chat requests${instruct ? '' : '; /v1/completions still works'}`,
      fix: `Include chat_template.jinja (or a tokenizer_config.json with chat_template) in the model component, or pass --chat-template ${containerModelDir(input.component)}/FILE.jinja in extraArgs with FILE in the component.`,
      source,
    },
  ];
}

/**
 * generation_config.json. vLLM applies its sampling defaults (temperature, top_p, eos ids)
 * when it exists; without it the model samples differently than online, silently.
 * Sources: vllm-project/vllm PR 12622, #15281.
 */
function generationConfigRule(files: Set<string>, args: Map<string, string>): OfflineFinding[] {
  const flag = args.get('--generation-config');
  if (flag !== undefined && flag !== '' && flag !== 'auto') return [];
  if (files.has('generation_config.json')) return [];
  return [
    {
      rule: 'generation-config',
      status: 'warn',
      file: 'generation_config.json',
      detail:
        "no generation_config.json: the model's default sampling (eos ids, temperature, top_p) is not applied",
      fix: 'Include generation_config.json in the model component, or pin vLLM\'s own defaults with extraArgs ["--generation-config", "vllm"].',
      source: 'vllm-project/vllm PR 12622, #15281',
    },
  ];
}

/** `module.Class` -> 'module.py'; `org/repo--module.Class` names code in another repo. */
function autoMapModules(value: unknown): string[] {
  const refs = Array.isArray(value) ? value : [value];
  return refs.filter((r): r is string => typeof r === 'string' && r.includes('.'));
}

/**
 * Remote code: `auto_map` in config.json (or tokenizer_config.json) names Python modules
 * transformers imports with trust_remote_code, and those import siblings. Running code from
 * the model is a decision the recipe must state, and with it every module must be bundled
 * (Ray workers import them too). Sources: huggingface/transformers#34855, #46617;
 * vllm-project/vllm PR 871.
 */
function remoteCodeRule(service: OfflineService, files: Set<string>, input: OfflineInputs): OfflineFinding[] {
  const source = 'huggingface/transformers#34855, #46617; vllm-project/vllm PR 871';
  const refs = [
    ...Object.values(record(record(input.config)?.auto_map) ?? {}),
    ...Object.values(record(record(input.tokenizerConfig)?.auto_map) ?? {}),
  ].flatMap(autoMapModules);
  if (refs.length === 0) return [];
  if (service.trustRemoteCode === undefined) {
    return [
      {
        rule: 'remote-code',
        status: 'fail',
        detail: `config.json has auto_map (${refs.slice(0, 3).join(', ')}${refs.length > 3 ? ', …' : ''}): the model ships Python code, and the recipe does not say whether to run it`,
        fix: `Set trustRemoteCode: true on service ${service.name} to run the model's code (its .py files must be in the model component), or trustRemoteCode: false to serve it with vLLM's own implementation.`,
        source,
      },
    ];
  }
  if (!service.trustRemoteCode) return [];
  const findings: OfflineFinding[] = [];
  const needed = new Set<string>();
  for (const ref of refs) {
    const split = ref.indexOf('--');
    if (split !== -1) {
      findings.push({
        rule: 'remote-code',
        status: 'fail',
        detail: `auto_map names ${ref}: code from the repo ${ref.slice(0, split)}, which transformers downloads at start`,
        fix: `Copy ${ref.slice(split + 2).split('.')[0]}.py into the model and point auto_map at it, or serve the model without remote code (trustRemoteCode: false).`,
        source,
      });
      continue;
    }
    needed.add(`${ref.slice(0, ref.lastIndexOf('.')).replace(/\./g, '/')}.py`);
  }
  // Sibling imports (`from .utils import x`) of the bundled modules, one level.
  for (const module of [...needed]) {
    const text = input.python?.get(module);
    if (text === undefined) continue;
    for (const match of text.matchAll(/^\s*from\s+\.([\w.]+)\s+import\b/gm)) {
      needed.add(path.join(path.dirname(module), `${(match[1] as string).replace(/\./g, '/')}.py`));
    }
  }
  for (const module of [...needed].sort()) {
    if (files.has(module)) continue;
    findings.push({
      rule: 'remote-code',
      status: 'fail',
      file: module,
      detail: `trustRemoteCode is set and the model's code needs ${module}, which the model component lacks`,
      fix: `Include ${module} in the model component (every .py of the repo: check its include/exclude patterns).`,
      source,
    });
  }
  return findings;
}

/**
 * tiktoken vocabularies. gpt-oss (Harmony) loads o200k_base (and cl100k_base) through
 * tiktoken, which downloads them unless TIKTOKEN_ENCODINGS_BASE names a folder holding
 * them; the rendered service points it at the model directory. Tokenizers of class
 * TikToken* read their vocab_file. Sources: vllm-project/vllm#22525; openai/harmony#101.
 */
function tiktokenRule(files: Set<string>, input: OfflineInputs): OfflineFinding[] {
  const source = 'vllm-project/vllm#22525; openai/harmony#101';
  const findings: OfflineFinding[] = [];
  const modelType = record(input.config)?.model_type;
  if (modelType === 'gpt_oss') {
    for (const [file, status] of [
      ['o200k_base.tiktoken', 'fail'],
      ['cl100k_base.tiktoken', 'warn'],
    ] as const) {
      if (files.has(file)) continue;
      findings.push({
        rule: 'tiktoken',
        status,
        file,
        detail: `a gpt-oss model (Harmony format) without ${file}: tiktoken downloads it at start`,
        fix: `Put ${file} at the top of the model component (a file: component next to the model, or include it); the service sets TIKTOKEN_ENCODINGS_BASE to the model directory.`,
        source,
      });
    }
  }
  const tokenizer = record(input.tokenizerConfig);
  const tokenizerClass = tokenizer?.tokenizer_class;
  if (typeof tokenizerClass === 'string' && /tiktoken/i.test(tokenizerClass)) {
    const vocab = typeof tokenizer?.vocab_file === 'string' ? tokenizer.vocab_file : 'tiktoken.model';
    const hasVocab = files.has(vocab) || [...files].some((f) => !f.includes('/') && f.endsWith('.tiktoken'));
    if (!hasVocab) {
      findings.push({
        rule: 'tiktoken',
        status: 'fail',
        file: vocab,
        detail: `tokenizer_class ${tokenizerClass} reads its vocabulary from ${vocab}, which the model component lacks`,
        fix: `Include ${vocab} in the model component.`,
        source,
      });
    }
  }
  return findings;
}

/** The drafter model of --speculative-config (JSON `model`), --speculative-config.model or the older --speculative-model. */
function drafterModel(args: Map<string, string>): string | undefined {
  const direct = args.get('--speculative-model') ?? args.get('--speculative-config.model');
  if (direct !== undefined && direct !== '') return direct;
  const config = args.get('--speculative-config');
  if (config === undefined || config === '') return undefined;
  try {
    const model = record(JSON.parse(config))?.model;
    return typeof model === 'string' && model !== '' ? model : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Drafter models for speculative decoding are loaded like the main model: a repo id is a
 * Hub download at start. Only a drafter inside the served model component is mounted, so
 * it must be a path there, with its own config.json. Methods without a model (ngram) pass.
 * Source: noonghunna/club-3090 PR 322.
 */
function drafterRule(
  service: OfflineService,
  files: Set<string>,
  args: Map<string, string>,
): OfflineFinding[] {
  const drafter = drafterModel(args);
  if (drafter === undefined) return [];
  const mount = containerModelDir(service.model.component);
  const source = 'noonghunna/club-3090 PR 322';
  const fix = `Bundle the drafter inside the model component (say under drafter/) and name it by path: "model": "${mount}/drafter".`;
  if (!drafter.startsWith(`${mount}/`)) {
    return [
      {
        rule: 'drafter',
        status: 'fail',
        detail: `the speculative-decoding drafter ${drafter} is not in the bundle: ${drafter.startsWith('/') ? 'that path is not mounted in the container' : 'vLLM downloads a repo id at start'}`,
        fix,
        source,
      },
    ];
  }
  const inside = path.normalize(drafter.slice(mount.length + 1));
  const config = `${inside}/config.json`;
  if (inside.startsWith('..') || !files.has(config)) {
    return [
      {
        rule: 'drafter',
        status: 'fail',
        file: config,
        detail: `the speculative-decoding drafter ${drafter} has no ${config} in the model component`,
        fix,
        source,
      },
    ];
  }
  return [];
}
