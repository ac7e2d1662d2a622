/**
 * A minimal GGUF v3 writer: enough of the format (metadata key/values and plain f32/f16
 * tensors) to produce models llama.cpp loads. Output depends only on the input, so the
 * same metadata and tensors always give the same bytes.
 *
 * Format reference: ggml's docs/gguf.md (little-endian; strings are u64 length + UTF-8;
 * tensor data starts at the first multiple of `general.alignment` after the header).
 */

const GGUF_MAGIC = 'GGUF';
const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** gguf_type values from ggml's gguf.h. */
const VALUE_TYPE = {
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
} as const;

/** ggml_type values from ggml.h; only the unquantised types are needed here. */
const TENSOR_TYPE = { f32: 0, f16: 1 } as const;

export type GgufTensorType = keyof typeof TENSOR_TYPE;

export type GgufValue =
  | { type: 'uint32'; value: number }
  | { type: 'int32'; value: number }
  | { type: 'float32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'uint64'; value: bigint }
  | { type: 'array'; itemType: 'string'; value: readonly string[] }
  | { type: 'array'; itemType: 'float32'; value: readonly number[] }
  | { type: 'array'; itemType: 'int32'; value: readonly number[] };

export interface GgufTensor {
  name: string;
  /** ggml order: dims[0] is the contiguous (row) dimension. */
  dims: readonly number[];
  type: GgufTensorType;
  /** Values in row-major ggml order; converted to `type` when written. */
  values: Float32Array;
}

export interface GgufFile {
  /** Written in this order; keys must be unique. */
  metadata: ReadonlyArray<readonly [string, GgufValue]>;
  tensors: readonly GgufTensor[];
  alignment?: number;
}

/** Appends little-endian values to a growing list of chunks. */
class ByteSink {
  private readonly chunks: Buffer[] = [];
  length = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  u32(value: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value);
    this.push(b);
  }

  i32(value: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(value);
    this.push(b);
  }

  u64(value: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(value));
    this.push(b);
  }

  f32(value: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(value);
    this.push(b);
  }

  string(value: string): void {
    const bytes = Buffer.from(value, 'utf8');
    this.u64(bytes.length);
    this.push(bytes);
  }

  padTo(alignment: number): void {
    const rest = this.length % alignment;
    if (rest !== 0) this.push(Buffer.alloc(alignment - rest));
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}

function writeValue(sink: ByteSink, value: GgufValue): void {
  sink.u32(VALUE_TYPE[value.type]);
  switch (value.type) {
    case 'uint32':
      sink.u32(value.value);
      return;
    case 'int32':
      sink.i32(value.value);
      return;
    case 'float32':
      sink.f32(value.value);
      return;
    case 'bool':
      sink.push(Buffer.from([value.value ? 1 : 0]));
      return;
    case 'string':
      sink.string(value.value);
      return;
    case 'uint64':
      sink.u64(value.value);
      return;
    case 'array':
      sink.u32(VALUE_TYPE[value.itemType]);
      sink.u64(value.value.length);
      for (const item of value.value) {
        if (value.itemType === 'string') sink.string(item as string);
        else if (value.itemType === 'float32') sink.f32(item as number);
        else sink.i32(item as number);
      }
      return;
  }
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE 754 binary32 to binary16, round to nearest even (Node 20 has no Float16Array). */
export function float32ToFloat16Bits(value: number): number {
  f32Scratch[0] = value;
  const bits = u32Scratch[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;

  if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - halfExponent;
    let half = mantissa >>> shift;
    const remainder = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (remainder > halfway || (remainder === halfway && (half & 1) === 1)) half += 1;
    return sign | half;
  }
  let half = (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  if (remainder > 0x1000 || (remainder === 0x1000 && (half & 1) === 1)) half += 1;
  // A carry out of the mantissa bumps the exponent, up to infinity, as rounding should.
  return sign | half;
}

function encodeTensorData(tensor: GgufTensor): Buffer {
  const count = tensor.dims.reduce((a, b) => a * b, 1);
  if (count !== tensor.values.length) {
    throw new Error(`tensor ${tensor.name}: dims give ${count} values, got ${tensor.values.length}`);
  }
  if (tensor.type === 'f32') {
    const out = Buffer.alloc(count * 4);
    for (let i = 0; i < count; i++) out.writeFloatLE(tensor.values[i]!, i * 4);
    return out;
  }
  const out = Buffer.alloc(count * 2);
  for (let i = 0; i < count; i++) out.writeUInt16LE(float32ToFloat16Bits(tensor.values[i]!), i * 2);
  return out;
}

/** Serialise a GGUF v3 file. */
export function writeGguf(file: GgufFile): Buffer {
  const alignment = file.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const keys = new Set<string>();
  for (const [key] of file.metadata) {
    if (keys.has(key)) throw new Error(`duplicate GGUF metadata key ${key}`);
    keys.add(key);
  }
  const metadata: Array<readonly [string, GgufValue]> = [...file.metadata];
  if (alignment !== GGUF_DEFAULT_ALIGNMENT && !keys.has('general.alignment')) {
    metadata.push(['general.alignment', { type: 'uint32', value: alignment }]);
  }

  const header = new ByteSink();
  header.push(Buffer.from(GGUF_MAGIC, 'ascii'));
  header.u32(GGUF_VERSION);
  header.u64(file.tensors.length);
  header.u64(metadata.length);
  for (const [key, value] of metadata) {
    header.string(key);
    writeValue(header, value);
  }

  const data = new ByteSink();
  for (const tensor of file.tensors) {
    data.padTo(alignment);
    header.string(tensor.name);
    header.u32(tensor.dims.length);
    for (const dim of tensor.dims) header.u64(dim);
    header.u32(TENSOR_TYPE[tensor.type]);
    header.u64(data.length);
    data.push(encodeTensorData(tensor));
  }
  header.padTo(alignment);
  data.padTo(alignment);
  return Buffer.concat([header.toBuffer(), data.toBuffer()]);
}
