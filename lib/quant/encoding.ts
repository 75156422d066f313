/**
 * The registry of weight encodings: one record per way a 2-D weight is stored
 * in a shard file and read by the GPU (f32, f16, bf16, and the split-time
 * packings q8 and q4). Splitting, the GGUF source, the layer layout, the
 * embedding decode, the kernels and the CLI ask this table instead of
 * switching on names.
 *
 * A record holds:
 * - the block shape: `blockElems` elements per block along a row, stored in
 *   `blockBytes` bytes of the data tensor (plain floats: a block is one value);
 * - where the scales live (`scales`): nowhere (plain floats), in a separate
 *   `<name>.scales` F16 `[rows, nb]` tensor of `scaleBytes` per block, or
 *   inline inside each block;
 * - the CPU codec (`encode` at split time, `decode` for embedding rows and
 *   tests);
 * - its GGUF source mapping (`gguf`: the GGUF type repacked into it without
 *   dequantizing);
 * - its WGSL decode snippet (`wgsl`, from `kernels/_decode_<name>.wgsl`) and
 *   the GPU kernels that take it with their tuning (`gpu`).
 *
 * Adding an encoding: its codec (lib/quant/<name>.ts), its record below, its
 * `kernels/_decode_<name>.wgsl`, its GGUF mapping (the `gguf` field) and its
 * tests (tests/quant, tests/gpu/matmul_test.ts pick it up from
 * {@link ENCODINGS}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encoding } from "./encoding.ts";
 * const e = encoding("bf16");
 * assert.deepEqual(e.rowBytes(100), [200, 0]);
 * ```
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { fromFloat32, toFloat32 } from "./half.ts";
import { dequantizeQ8, quantizeQ8 } from "./q8.ts";
import { dequantizeQ4, quantizeQ4 } from "./q4.ts";
import { checkDims } from "./layout.ts";
import {
  GGML_ENCODING_NAMES,
  type GgmlEncodingName,
  ggmlRecord,
} from "./ggml_encodings.ts";
import f32Wgsl from "../../kernels/_decode_f32.wgsl" with { type: "text" };
import f16Wgsl from "../../kernels/_decode_f16.wgsl" with { type: "text" };
import bf16Wgsl from "../../kernels/_decode_bf16.wgsl" with { type: "text" };
import q8Wgsl from "../../kernels/_decode_q8.wgsl" with { type: "text" };
import q4Wgsl from "../../kernels/_decode_q4.wgsl" with { type: "text" };

/**
 * The name of a weight encoding, as written in shard metadata
 * (`strata.quant`, the manifest's `quantization`) and used by the kernels.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ENCODINGS, type EncodingName } from "./encoding.ts";
 * const n: EncodingName = "f16";
 * assert.ok(ENCODINGS.has(n));
 * ```
 */
export type EncodingName =
  | "f32"
  | "f16"
  | "bf16"
  | "q8"
  | "q4"
  | GgmlEncodingName;

/** Encodings chosen at split time (`--quantize`), stored with `strata.quant` metadata. */
export type PackedName = "q8" | "q4" | GgmlEncodingName;

/** Safetensors dtypes of plain float tensors. */
export type FloatDtype = "F32" | "F16" | "BF16";

/** Split-time quantization: `"none"` (source precision) or a packed encoding. */
export type Quantization = "none" | PackedName;

/** The stored bytes of a weight: its data tensor, and its scales tensor where it has one. */
export interface PackedWeight {
  /** Bytes of the data tensor, row-major `[rows, rowBytes[0]]`. */
  data: Uint8Array;
  /** f16 bits `[rows, nb]` (encodings with `scales: "tensor"`). */
  scales?: Uint16Array;
}

/**
 * The GPU kernels that take an encoding (see lib/gpu/ops/matmul.ts): bodies
 * in `kernels/<body>.wgsl` (`matvec_dense`/`matmul_dense` read the block
 * section's `load8`/`dec8`, `matvec_blocks`/`matmul_blocks` its
 * `block_dot`/`load_block`/`dec`), plus `matmul_generic` for any K through
 * the scalar section's `weight_at`.
 */
export interface EncodingKernels {
  /** K must be a multiple of this for the fast kernels; else `matmul_generic`. */
  readonly align: number;
  /** T = 1: kernel body (kernels/<body>.wgsl), rows per invocation, workgroup size. */
  readonly matvec: {
    readonly body: string;
    readonly rows: number;
    readonly wg: number;
  };
  /** T ≥ 2: kernel body, register tile (rows = tokens per invocation), workgroup size. */
  readonly matmul: {
    readonly body: string;
    readonly tile: number;
    readonly wg: number;
  };
}

/** One weight encoding. */
export interface Encoding {
  /** Its name. */
  readonly name: EncodingName;
  /** One line for help texts. */
  readonly description: string;
  /** Elements per block along a row (1 for plain floats). */
  readonly blockElems: number;
  /** Bytes of the data tensor per block. */
  readonly blockBytes: number;
  /** Where the block scales live. */
  readonly scales: "none" | "tensor" | "inline";
  /** Bytes of the scales tensor per block (0 unless `scales` is "tensor"). */
  readonly scaleBytes: number;
  /** Safetensors dtype of the data tensor. */
  readonly storage: FloatDtype | "I8" | "U8";
  /** Plain floats: the safetensors dtype of the tensor; null for packings. */
  readonly float: FloatDtype | null;
  /** Split-time packing (`--quantize`, `strata.quant` metadata). */
  readonly packed: boolean;
  /** `AutoModel.fromPretrained({ compression })` alias of a packing. */
  readonly compression: "8bit" | "4bit" | null;
  /** The GGUF tensor type repacked into this encoding without dequantizing. */
  readonly gguf: {
    readonly type: string;
    /** GGUF tensor bytes of `rows` rows of `cols` → the stored bytes. */
    repack(bytes: Uint8Array, rows: number, cols: number): PackedWeight;
  } | null;
  /** Bytes of one row of `cols` elements: [data, scales]. */
  rowBytes(cols: number): [number, number];
  /** f32 `[rows, cols]` → the stored bytes (split time). */
  encode(w: Float32Array, rows: number, cols: number): PackedWeight;
  /** The stored bytes of `rows` rows → f32 `[rows, cols]` (embedding rows, tests). */
  decode(p: PackedWeight, rows: number, cols: number): Float32Array;
  /** WGSL decode snippet (kernels/_decode_<name>.wgsl), prepended to the kernel bodies. */
  readonly wgsl: string;
  /** The GPU kernels that take it. */
  readonly gpu: EncodingKernels;
}

function view16(a: Uint8Array): Uint16Array {
  if (a.byteOffset % 2 === 0) {
    return new Uint16Array(a.buffer, a.byteOffset, a.byteLength >> 1);
  }
  return new Uint16Array(a.slice().buffer);
}

function blockRowBytes(
  blockElems: number,
  blockBytes: number,
  scaleBytes: number,
): (cols: number) => [number, number] {
  return (cols) => {
    const nb = Math.ceil(cols / blockElems);
    return [nb * blockBytes, nb * scaleBytes];
  };
}

/**
 * Repacks GGUF blocks laid out as f16 scale then `qBytes` bytes (the `_0`
 * types) into data rows + an f16 scales tensor, without dequantizing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { repackScaleFirst } from "./encoding.ts";
 * const block = new Uint8Array(18); block[1] = 0x3c; block[2] = 7; // d = 1.0, byte 0 = 7
 * const r = repackScaleFirst(block, 1, 32, 16);
 * assert.deepEqual([r.scales![0], r.data[0], r.data.length], [0x3c00, 7, 16]);
 * ```
 */
export function repackScaleFirst(
  bytes: Uint8Array,
  rows: number,
  cols: number,
  qBytes: number,
): PackedWeight {
  const nb = cols / 32;
  const blockBytes = qBytes + 2;
  const data = new Uint8Array(rows * nb * qBytes);
  const scales = new Uint16Array(rows * nb);
  for (let b = 0; b < rows * nb; b++) {
    const src = b * blockBytes;
    scales[b] = bytes[src] | (bytes[src + 1] << 8);
    data.set(bytes.subarray(src + 2, src + blockBytes), b * qBytes);
  }
  return { data, scales };
}

function floatRecord(
  name: EncodingName,
  float: FloatDtype,
  bytes: number,
  wgsl: string,
  o: { align: number; matvec: string; matmul: string },
): Encoding {
  return {
    name,
    description: `${float} values`,
    blockElems: 1,
    blockBytes: bytes,
    scales: "none",
    scaleBytes: 0,
    storage: float,
    float,
    packed: false,
    compression: null,
    gguf: null,
    rowBytes: (cols) => [cols * bytes, 0],
    encode: (w, rows, cols) => {
      checkDims(rows, cols, w.length);
      return { data: fromFloat32(w, float) };
    },
    decode: (p, rows, cols) => {
      checkDims(rows, cols, p.data.byteLength / bytes);
      return toFloat32(p.data, float);
    },
    wgsl,
    gpu: {
      align: o.align,
      matvec: { body: o.matvec, rows: 8, wg: 16 },
      matmul: { body: o.matmul, tile: 8, wg: 16 },
    },
  };
}

const DENSE = { align: 8, matvec: "matvec_dense", matmul: "matmul_dense" };
const F32 = floatRecord("f32", "F32", 4, f32Wgsl, DENSE);
const F16 = floatRecord("f16", "F16", 2, f16Wgsl, DENSE);
const BF16 = floatRecord("bf16", "BF16", 2, bf16Wgsl, DENSE);

/** A block-scaled packing: blocks of 32 along a row, one f16 scale each in a `.scales` tensor. */
function blockRecord(o: {
  name: PackedName;
  description: string;
  blockBytes: number;
  storage: "I8" | "U8";
  compression: "8bit" | "4bit";
  gguf: string;
  encode: (w: Float32Array, rows: number, cols: number) => PackedWeight;
  decode: Encoding["decode"];
  wgsl: string;
  matvecRows: number;
}): Encoding {
  return {
    name: o.name,
    description: o.description,
    blockElems: 32,
    blockBytes: o.blockBytes,
    scales: "tensor",
    scaleBytes: 2,
    storage: o.storage,
    float: null,
    packed: true,
    compression: o.compression,
    gguf: {
      type: o.gguf,
      repack: (b, rows, cols) => repackScaleFirst(b, rows, cols, o.blockBytes),
    },
    rowBytes: blockRowBytes(32, o.blockBytes, 2),
    encode: o.encode,
    decode: o.decode,
    wgsl: o.wgsl,
    gpu: {
      align: 32,
      matvec: { body: "matvec_blocks", rows: o.matvecRows, wg: 8 },
      matmul: { body: "matmul_blocks", tile: 4, wg: 16 },
    },
  };
}

const Q8 = blockRecord({
  name: "q8",
  description: "int8, blocks of 32 + an f16 scale (8.5 bits per weight)",
  blockBytes: 32,
  storage: "I8",
  compression: "8bit",
  gguf: "Q8_0",
  encode: (w, rows, cols) => {
    const q = quantizeQ8(w, rows, cols);
    return { data: new Uint8Array(q.data.buffer), scales: q.scales };
  },
  decode: (p, rows, cols) =>
    dequantizeQ8(
      {
        data: new Int8Array(
          p.data.buffer,
          p.data.byteOffset,
          p.data.byteLength,
        ),
        scales: p.scales ?? new Uint16Array(0),
      },
      rows,
      cols,
    ),
  wgsl: q8Wgsl,
  matvecRows: 8,
});

const Q4 = blockRecord({
  name: "q4",
  description: "4-bit, blocks of 32 + an f16 scale (4.5 bits per weight)",
  blockBytes: 16,
  storage: "U8",
  compression: "4bit",
  gguf: "Q4_0",
  encode: (w, rows, cols) => quantizeQ4(w, rows, cols),
  decode: (p, rows, cols) =>
    dequantizeQ4(
      { data: p.data, scales: p.scales ?? new Uint16Array(0) },
      rows,
      cols,
    ),
  wgsl: q4Wgsl,
  matvecRows: 16,
});

/**
 * The GGUF block types kept as in the file (lib/quant/ggml_encodings.ts):
 * scales inline in each block, stored as U8 rows, packed (`strata.quant`
 * types; `--quantize q4k` etc. encode to them).
 */
const GGML: Encoding[] = (
  Object.keys(GGML_ENCODING_NAMES) as (keyof typeof GGML_ENCODING_NAMES)[]
).map((t) => {
  const r = ggmlRecord(t);
  return {
    ...r,
    scales: "inline",
    scaleBytes: 0,
    storage: "U8",
    float: null,
    packed: true,
    compression: null,
  };
});

/**
 * Every encoding by name, in the order help texts and benchmarks list them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ENCODINGS } from "./encoding.ts";
 * assert.deepEqual([...ENCODINGS.keys()].slice(0, 5), ["f32", "f16", "bf16", "q8", "q4"]);
 * assert.ok(ENCODINGS.has("q4k") && ENCODINGS.has("q6k"));
 * ```
 */
export const ENCODINGS: ReadonlyMap<EncodingName, Encoding> = new Map(
  [F32, F16, BF16, Q8, Q4, ...GGML].map((e) => [e.name, Object.freeze(e)]),
);

/**
 * The packing of the token embedding with `--quantize-embedding`: 8-bit, so
 * the row gather on the CPU stays close to the source values.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EMBEDDING_PACKING, encoding } from "./encoding.ts";
 * assert.equal(encoding(EMBEDDING_PACKING).compression, "8bit");
 * ```
 */
export const EMBEDDING_PACKING: PackedName = "q8";

/**
 * The record of `name`.
 *
 * @throws {UsageError} for an unknown name.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encoding } from "./encoding.ts";
 * assert.equal(encoding("f32").blockBytes, 4);
 * assert.throws(() => encoding("q3"));
 * ```
 */
export function encoding(name: string): Encoding {
  const e = ENCODINGS.get(name as EncodingName);
  if (!e) {
    throw new UsageError(
      `unknown weight encoding ${JSON.stringify(name)} (known: ${
        [...ENCODINGS.keys()].join(", ")
      })`,
    );
  }
  return e;
}

/**
 * Whether `name` is a split-time packing (a valid `strata.quant` type).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isPacked } from "./encoding.ts";
 * assert.equal(isPacked("bf16"), false);
 * assert.equal(isPacked("none"), false);
 * ```
 */
export function isPacked(name: unknown): name is PackedName {
  return ENCODINGS.get(name as EncodingName)?.packed === true;
}

/**
 * The packed encodings (what `--quantize` accepts besides "none").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PACKED } from "./encoding.ts";
 * assert.ok(PACKED.every((e) => e.packed && e.scales !== "none"));
 * ```
 */
export const PACKED: readonly Encoding[] = [...ENCODINGS.values()].filter((
  e,
) => e.packed);

/**
 * Checks a split-time quantization ("none" or a packed encoding's name).
 *
 * @throws {UsageError} naming `what` and the accepted values.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseQuantization } from "./encoding.ts";
 * assert.equal(parseQuantization(undefined), "none");
 * assert.throws(() => parseQuantization("q3", "--quantize"));
 * ```
 */
export function parseQuantization(
  v: string | undefined,
  what = "quantize",
): Quantization {
  const q = v ?? "none";
  if (q !== "none" && !isPacked(q)) {
    throw new UsageError(
      `${what} must be ${quantizationChoices(", ", " or ")} (got ${q})`,
    );
  }
  return q;
}

/**
 * "none" and the packed names joined for help texts: `none|...` by default.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quantizationChoices } from "./encoding.ts";
 * assert.ok(quantizationChoices().startsWith("none|"));
 * ```
 */
export function quantizationChoices(sep = "|", last = sep): string {
  const names = ["none", ...PACKED.map((e) => e.name)];
  return names.slice(0, -1).join(sep) + last + names[names.length - 1];
}

/**
 * The encoding of a plain float tensor of safetensors dtype `dtype`, or null.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { floatEncoding } from "./encoding.ts";
 * assert.equal(floatEncoding("BF16")?.name, "bf16");
 * assert.equal(floatEncoding("I8"), null);
 * ```
 */
export function floatEncoding(dtype: string): Encoding | null {
  for (const e of ENCODINGS.values()) if (e.float === dtype) return e;
  return null;
}

/**
 * The encoding a GGUF tensor type repacks into without dequantizing, or null.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ggufEncoding } from "./encoding.ts";
 * assert.equal(ggufEncoding("Q5_1")?.name, "q5_1");
 * assert.equal(ggufEncoding("IQ2_XS"), null);
 * ```
 */
export function ggufEncoding(type: string): Encoding | null {
  for (const e of ENCODINGS.values()) if (e.gguf?.type === type) return e;
  return null;
}

/**
 * Safetensors dtypes and shapes of the data and scales tensors of a
 * `[rows, cols]` weight stored as `e` (the scales entry is null without a
 * scales tensor).
 *
 * @throws {UsageError} when rows or cols is not a positive integer.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encoding, storedShapes } from "./encoding.ts";
 * const s = storedShapes(encoding("f16"), 2, 3);
 * assert.deepEqual(s, { data: { dtype: "F16", shape: [2, 3] }, scales: null });
 * ```
 */
export function storedShapes(e: Encoding, rows: number, cols: number): {
  data: { dtype: Encoding["storage"]; shape: [number, number] };
  scales: { dtype: "F16"; shape: [number, number] } | null;
} {
  checkDims(rows, cols);
  const [rb, sb] = e.rowBytes(cols);
  const width = e.storage === "F32"
    ? rb / 4
    : e.storage === "F16" || e.storage === "BF16"
    ? rb / 2
    : rb;
  return {
    data: { dtype: e.storage, shape: [rows, width] },
    scales: e.scales === "tensor"
      ? { dtype: "F16", shape: [rows, sb / 2] }
      : null,
  };
}

/**
 * Decodes one stored row (data bytes and raw scale bytes, as read from a
 * shard file) into `out` (`cols` floats).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeRow, encoding } from "./encoding.ts";
 * const out = new Float32Array(2);
 * decodeRow(encoding("f16"), new Uint8Array([0, 0x3c, 0, 0xc0]), undefined, out);
 * assert.deepEqual([...out], [1, -2]);
 * ```
 */
export function decodeRow(
  e: Encoding,
  data: Uint8Array,
  scales: Uint8Array | undefined,
  out: Float32Array,
): void {
  out.set(
    e.decode(
      { data, scales: scales ? view16(scales) : undefined },
      1,
      out.length,
    ),
  );
}
