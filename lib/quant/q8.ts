/**
 * Strata q8 (GGUF Q8_0 semantics in a row-blocked layout): for a 2-D weight
 * `[rows, cols]`, blocks of 32 consecutive elements of a row, the last one
 * zero-padded; data `I8 [rows, nb*32]` with `x = d * q`, scales
 * `F16 [rows, nb]`. Quantizer (llama.cpp `quantize_row_q8_0_ref`, in f32
 * arithmetic): `d = max|x| / 127`, `q = roundf(x * (1/d))` (0 when d = 0),
 * d stored as f16.
 *
 * @module
 */

import { f32ToF16 } from "./half.ts";
import { checkDims, dequantizeBlocks, QK } from "./layout.ts";

/**
 * Quantizes a row-major `[rows, cols]` f32 matrix to q8.
 *
 * @throws {UsageError} when `w.length !== rows * cols`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quantizeQ8 } from "./q8.ts";
 * const q = quantizeQ8(new Float32Array([127, -1, 0.5]), 1, 3);
 * assert.deepStrictEqual([q.data.length, q.scales.length, q.data[0], q.data[1]], [32, 1, 127, -1]);
 * ```
 */
export function quantizeQ8(
  w: Float32Array,
  rows: number,
  cols: number,
): { data: Int8Array; scales: Uint16Array } {
  checkDims(rows, cols, w.length);
  const fr = Math.fround;
  const nb = Math.ceil(cols / QK);
  const data = new Int8Array(rows * nb * QK);
  const scales = new Uint16Array(rows * nb);
  for (let r = 0; r < rows; r++) {
    const rowIn = r * cols;
    for (let b = 0; b < nb; b++) {
      const start = rowIn + b * QK;
      const end = start + Math.min(QK, cols - b * QK);
      let amax = 0;
      for (let i = start; i < end; i++) {
        const a = Math.abs(w[i]);
        if (a > amax) amax = a;
      }
      const d = fr(amax / 127);
      const id = d !== 0 ? fr(1 / d) : 0;
      scales[r * nb + b] = f32ToF16(d);
      let o = (r * nb + b) * QK;
      for (let i = start; i < end; i++, o++) {
        const x = fr(w[i] * id);
        // roundf (half away from zero): Math.round rounds half up, so fix negative ties
        const q = Math.round(x);
        data[o] = q - x === 0.5 && x < 0 ? q - 1 : q;
      }
    }
  }
  return { data, scales };
}

/**
 * Dequantizes q8 back to a row-major `[rows, cols]` f32 matrix (`d * q` in
 * f32; the padding is dropped).
 *
 * @throws {UsageError} when the array sizes do not match rows and cols.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dequantizeQ8, quantizeQ8 } from "./q8.ts";
 * const w = dequantizeQ8(quantizeQ8(new Float32Array([127, -1, 0.5]), 1, 3), 1, 3);
 * assert.deepStrictEqual(w, new Float32Array([127, -1, 1]));
 * ```
 */
export function dequantizeQ8(
  q: { data: Int8Array; scales: Uint16Array },
  rows: number,
  cols: number,
): Float32Array {
  const { data } = q;
  return dequantizeBlocks(
    {
      name: "dequantizeQ8",
      rows,
      cols,
      data,
      scales: q.scales,
      blockBytes: QK,
    },
    (out, d, o, s, n) => {
      for (let j = 0; j < n; j++) out[o + j] = d * data[s + j];
    },
  );
}
