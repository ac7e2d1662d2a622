/**
 * The header of a .safetensors file: an 8-byte little-endian length, then that many bytes
 * of JSON naming every tensor's dtype, shape and byte range. Summing the ranges gives the
 * exact weight bytes without reading the weights.
 */
import { ApertusError } from '../errors.js';
import type { RangeReader } from './byte-range.js';

export interface SafetensorsTensor {
  name: string;
  dtype: string;
  parameters: number;
  bytes: number;
}

export interface SafetensorsHeader {
  headerBytes: number;
  tensors: SafetensorsTensor[];
  tensorBytes: number;
  parameters: number;
}

/** Real headers are well under a few MB; the format itself caps them at 100 MB. */
const MAX_HEADER_BYTES = 100_000_000;

export async function readSafetensorsHeader(read: RangeReader, what: string): Promise<SafetensorsHeader> {
  const fail = (why: string): never => {
    throw new ApertusError('safetensors-invalid', `${what} is not a readable safetensors file: ${why}.`, {
      kind: 'operation',
      hint: 'Check that the file is complete; copy it again from its source if it was truncated.',
    });
  };
  const prefix = await read(0, 8);
  if (prefix.length < 8) fail('it is shorter than its 8-byte header length');
  const length = Number(prefix.readBigUInt64LE(0));
  if (length <= 0 || length > MAX_HEADER_BYTES) fail(`its header length ${length} is out of range`);
  const json = await read(8, length);
  if (json.length < length) fail('the file ends inside its header');
  let parsed: unknown;
  try {
    parsed = JSON.parse(json.toString('utf8'));
  } catch (error) {
    fail(`its header is not JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    fail('its header is not a JSON object');
  const tensors: SafetensorsTensor[] = [];
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const offsets = entry.data_offsets;
    if (
      typeof entry.dtype !== 'string' ||
      !Array.isArray(entry.shape) ||
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      typeof offsets[0] !== 'number' ||
      typeof offsets[1] !== 'number'
    ) {
      fail(`tensor ${name} lacks dtype, shape or data_offsets`);
    }
    const shape = entry.shape as unknown[];
    const parameters = shape.reduce<number>(
      (product, dim) => product * (typeof dim === 'number' ? dim : 0),
      1,
    );
    const [start, end] = offsets as [number, number];
    tensors.push({ name, dtype: entry.dtype as string, parameters, bytes: end - start });
  }
  return {
    headerBytes: 8 + length,
    tensors,
    tensorBytes: tensors.reduce((sum, t) => sum + t.bytes, 0),
    parameters: tensors.reduce((sum, t) => sum + t.parameters, 0),
  };
}

/** Float dtypes that vLLM casts to the model's dtype on load; others (F8, I8, packed ints) stay as stored. */
export function isCastFloat(dtype: string): boolean {
  return dtype === 'F64' || dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
}
