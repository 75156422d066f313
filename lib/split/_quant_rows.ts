/**
 * One chunk of rows of a float weight turned into its quantized packing: the
 * single call the split makes per chunk (in a worker, or on the main thread
 * when workers are unavailable). The float bytes are decoded into a reused
 * f32 scratch buffer, then quantized by lib/quant.
 *
 * @module
 */
import { f16Table, f32ToF16 } from "../quant/half.ts";
import { isSimdInput, quantizeSimd, simdInput } from "./_simd_quant.ts";
import { quantizeQ8 } from "../quant/q8.ts";
import { quantizeQ4 } from "../quant/q4.ts";
import { UsageError } from "../errors.ts";

/** The packings the split can produce. */
export type QuantKind = "q8" | "q4";
/** Float element types a chunk may come in. */
export type FloatDtype = "F32" | "F16" | "BF16";

/** Packed rows: data (q8: I8, q4: U8 nibbles) and f16 scale bits. */
export interface PackedRows {
  data: Uint8Array;
  scales: Uint16Array;
}

let scratch = new Float32Array(0);

/**
 * Decodes little-endian F32/F16/BF16 `bytes` into `out` (which must hold
 * `bytes.length / elementSize` floats); returns the filled view.
 */
export function decodeRows(
  bytes: Uint8Array,
  dtype: FloatDtype,
  out: Float32Array,
): Float32Array {
  const size = dtype === "F32" ? 4 : 2;
  const n = bytes.length / size;
  if (!Number.isInteger(n) || out.length < n) {
    throw new UsageError(
      `decodeRows: ${bytes.length} bytes of ${dtype} into ${out.length} floats`,
    );
  }
  const w = out.subarray(0, n);
  if (dtype === "F32") {
    new Uint8Array(w.buffer, w.byteOffset, bytes.length).set(bytes);
    return w;
  }
  const src = bytes.byteOffset % 2 === 0
    ? new Uint16Array(bytes.buffer, bytes.byteOffset, n)
    : new Uint16Array(bytes.slice().buffer);
  if (dtype === "F16") {
    const t = f16Table();
    for (let i = 0; i < n; i++) w[i] = t[src[i]];
  } else {
    const o = new Uint32Array(w.buffer, w.byteOffset, n);
    for (let i = 0; i < n; i++) o[i] = src[i] << 16;
  }
  return w;
}

/**
 * Quantizes `rows` rows of `cols` f32 values to `kind` (the one call per
 * chunk: the encoding and the f32 rows in, packed rows out). Rows placed in
 * the SIMD module's memory ({@link simdInput}) are quantized there, with
 * the same result.
 */
export function quantizeRows(
  kind: QuantKind,
  w: Float32Array,
  rows: number,
  cols: number,
): PackedRows {
  if (isSimdInput(w) && w.length === rows * cols) {
    const q = quantizeSimd(kind, rows, cols, f32ToF16);
    if (q) return q;
  }
  if (kind === "q8") {
    const q = quantizeQ8(w, rows, cols);
    return {
      data: new Uint8Array(q.data.buffer, q.data.byteOffset, q.data.length),
      scales: q.scales,
    };
  }
  return quantizeQ4(w, rows, cols);
}

/**
 * Decodes and quantizes one chunk of rows, reusing a module-level scratch
 * buffer for the f32 copy.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quantizeChunk } from "./_quant_rows.ts";
 * const bytes = new Uint8Array(new Float32Array([-8, 4]).buffer);
 * const q = quantizeChunk({ kind: "q4", dtype: "F32", bytes, rows: 1, cols: 2 });
 * assert.equal(q.data[0], 0x80);
 * ```
 */
export function quantizeChunk(job: {
  kind: QuantKind;
  dtype: FloatDtype;
  bytes: Uint8Array;
  rows: number;
  cols: number;
}): PackedRows {
  const n = job.rows * job.cols;
  let into = simdInput(n);
  if (!into) {
    if (scratch.length < n) scratch = new Float32Array(n);
    into = scratch;
  }
  const w = decodeRows(job.bytes, job.dtype, into);
  return quantizeRows(job.kind, w, job.rows, job.cols);
}
