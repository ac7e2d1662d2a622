/**
 * A PEFT LoRA adapter's rank, as vLLM reads it: `r` in its adapter_config.json (PEFT's
 * LoraConfig; `rank_pattern` may give some modules a higher rank). vLLM loads an adapter
 * directory only with that file, so a directory without it is refused when it is bundled.
 */
import { ApertusError } from '../../errors.js';
import type { ModelFilesView } from '../offline-verdict.js';

/** adapter_config.json is a few hundred bytes; a megabyte is not one. */
const MAX_ADAPTER_CONFIG_BYTES = 1 << 20;

/** The highest rank the adapter uses: `r`, or a larger one from `rank_pattern`. */
export async function readLoraRank(view: ModelFilesView, service: string): Promise<number> {
  const file = view.files.find((f) => f.path === 'adapter_config.json');
  const refuse = (why: string) =>
    new ApertusError(
      'adapter-config-invalid',
      `Service ${service} serves adapter ${view.name}, which ${why}.`,
      {
        hint: 'vLLM loads a PEFT LoRA directory: adapter_config.json (with its rank r) beside adapter_model.safetensors, as PEFT save_pretrained writes them.',
      },
    );
  if (file === undefined) throw refuse('has no adapter_config.json');
  if (file.read === undefined) throw refuse('has an adapter_config.json this bundle does not carry');
  if (file.size > MAX_ADAPTER_CONFIG_BYTES) throw refuse(`has an adapter_config.json of ${file.size} bytes`);
  let config: { r?: unknown; rank_pattern?: unknown };
  try {
    config = JSON.parse((await file.read(0, file.size)).toString('utf8')) as typeof config;
  } catch {
    throw refuse('has an adapter_config.json that is not JSON');
  }
  const isRank = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 1;
  if (!isRank(config.r)) throw refuse('has no rank (a positive integer r) in adapter_config.json');
  const patterns =
    typeof config.rank_pattern === 'object' && config.rank_pattern !== null
      ? Object.values(config.rank_pattern).filter(isRank)
      : [];
  return Math.max(config.r, ...patterns);
}
