/**
 * Compute capability: from nvidia-smi's `compute_cap` where the driver has it, else from
 * the product name (R470 and older drivers reject `compute_cap`, runtime-facts 4.3), and
 * what each weight dtype needs of it (runtime-facts 3.4).
 */

/**
 * runtime-facts 4.2 (NVIDIA's CUDA GPU tables). Order matters: a longer name that contains
 * a shorter one (A100 / A10, L40 / L4) comes first, and the patterns are word-bounded.
 */
const NAME_TABLE: ReadonlyArray<readonly [RegExp, string]> = [
  [/\bV100\b/i, '7.0'],
  [/\bT4\b/i, '7.5'],
  [/\bA100\b/i, '8.0'],
  [/\bA30\b/i, '8.0'],
  [/\bA10G?\b/i, '8.6'],
  [/\bA40\b/i, '8.6'],
  [/\bRTX A6000\b/i, '8.6'],
  [/\bL40S?\b/i, '8.9'],
  [/\bL4\b/i, '8.9'],
  [/\bRTX 4090\b/i, '8.9'],
  [/\bRTX 6000 Ada\b/i, '8.9'],
  [/\bGH200\b/i, '9.0'],
  [/\bH100\b/i, '9.0'],
  [/\bH200\b/i, '9.0'],
  [/\bGB200\b/i, '10.0'],
  [/\bB200\b/i, '10.0'],
  [/\bGB300\b/i, '10.3'],
  [/\bB300\b/i, '10.3'],
  [/\bRTX 5090\b/i, '12.0'],
  [/\bRTX PRO 6000 Blackwell\b/i, '12.0'],
];

/** The compute capability of a GPU by its product name, or undefined for a name not in the table. */
export function computeCapabilityFromName(name: string): string | undefined {
  return NAME_TABLE.find(([pattern]) => pattern.test(name))?.[1];
}

/** 'X.Y' as a number comparable with `>=` (8.9 < 9.0 < 10.0 < 10.3 < 12.0). */
export function capabilityNumber(capability: string): number {
  const [major = '0', minor = '0'] = capability.split('.');
  return Number(major) * 10 + Number(minor);
}

/** Weight formats as served, which decide the compute capability a GPU must have. */
export type ServedDtype = 'bfloat16' | 'float16' | 'float32' | 'fp8' | 'int8' | 'int4';

export interface CapabilityVerdict {
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  hint?: string;
}

/**
 * vLLM's floor: "compute capability 7.5 or higher" since v0.21 docs; V100 (7.0) is
 * treated as unsupported for vLLM >= 0.10.2 images (runtime-facts 3.4, derived).
 */
export const VLLM_MIN_CAPABILITY = '7.5';

/** Whether a GPU of `capability` can serve weights of `dtype` with vLLM (runtime-facts 3.4). */
export function judgeCapability(capability: string, dtype: ServedDtype): CapabilityVerdict {
  const cc = capabilityNumber(capability);
  if (cc < capabilityNumber(VLLM_MIN_CAPABILITY)) {
    return {
      status: 'fail',
      detail: `compute capability ${capability} is below vLLM's minimum of ${VLLM_MIN_CAPABILITY}`,
      hint: 'Use a GPU of compute capability 7.5 or newer (T4, A10, A100, L4, H100), or the llamacpp CPU runtime with a GGUF model.',
    };
  }
  if (dtype === 'bfloat16' && cc < 80) {
    return {
      status: 'fail',
      detail: `bf16 weights need compute capability 8.0; this GPU has ${capability}`,
      hint: 'Serve with --dtype half (fp16); quality of a bf16-trained model in fp16 is unverified. Or use an Ampere or newer GPU.',
    };
  }
  if (dtype === 'fp8' && cc < 89) {
    return {
      status: 'warn',
      detail: `FP8 W8A8 needs compute capability 8.9; on ${capability} vLLM runs the FP8 model weight-only (W8A16, FP8 Marlin), slower`,
      hint: 'Use the bf16 model on this GPU if it fits, or an Ada/Hopper/Blackwell GPU for FP8 compute.',
    };
  }
  return { status: 'ok', detail: `compute capability ${capability} serves ${dtype}` };
}
