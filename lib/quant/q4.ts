/**
 * Strata q4 (GGUF Q4_0 semantics in a row-blocked layout): for a 2-D weight
 * `[rows, cols]`, blocks of 32 consecutive elements of a row, the last one
 * zero-padded; data `U8 [rows, nb*16]` where byte j (0..15) of a block holds
 * element j in its low nibble and element j+16 in its high nibble,
 * `x = d * (nibble - 8)`; scales `F16 [rows, nb]`. Quantizer (llama.cpp
 * `quantize_row_q4_0_ref`, in f32 arithmetic): `max` = the element with the
 * largest |x| (first one on ties, sign kept), `d = max / -8`,
 * `q = min(15, trunc(x * (1/d) + 8.5))` (1/d taken as 0 when d = 0). An
 * all-zero block stores scale +0 (0x0000) and bytes 0x88; llama.cpp would store
 * −0 (0x8000), which decodes to the same values.
 *
 * @module
 */

import { f32ToF16 } from "./half.ts";
import { checkDims, dequantizeBlocks, QK } from "./layout.ts";

/**
 * Quantizes a row-major `[rows, cols]` f32 matrix to q4.
 *
 * @throws {UsageError} when `w.length !== rows * cols`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quantizeQ4 } from "./q4.ts";
 * const q = quantizeQ4(new Float32Array([-8, 4]), 1, 2);
 * // element 0 → nibble 0, element 1 → 12, padding (0.0) → 8
 * assert.deepStrictEqual([q.data.length, q.data[0], q.data[1]], [16, 0x80, 0x8c]);
 * ```
 */
export function quantizeQ4(
  w: Float32Array,
  rows: number,
  cols: number,
): { data: Uint8Array; scales: Uint16Array } {
  checkDims(rows, cols, w.length);
  const fr = Math.fround;
  const nb = Math.ceil(cols / QK);
  const half = QK / 2;
  const data = new Uint8Array(rows * nb * half);
  const scales = new Uint16Array(rows * nb);
  const x = new Float32Array(QK); // one block, zero-padded
  for (let r = 0; r < rows; r++) {
    const rowIn = r * cols;
    for (let b = 0; b < nb; b++) {
      const start = rowIn + b * QK;
      const n = Math.min(QK, cols - b * QK);
      let amax = 0;
      let max = 0;
      for (let j = 0; j < n; j++) {
        const v = w[start + j];
        x[j] = v;
        const a = Math.abs(v);
        if (a > amax) {
          amax = a;
          max = v;
        }
      }
      for (let j = n; j < QK; j++) x[j] = 0;
      const d = fr(max / -8) + 0; // + 0: an all-zero block stores scale +0 (C would give -0, 0x8000)
      const id = d !== 0 ? fr(1 / d) : 0;
      scales[r * nb + b] = f32ToF16(d);
      const o = (r * nb + b) * half;
      for (let j = 0; j < half; j++) {
        const x0 = fr(fr(x[j] * id) + 8.5);
        const x1 = fr(fr(x[j + half] * id) + 8.5);
        const q0 = x0 >= 15 ? 15 : Math.trunc(x0);
        const q1 = x1 >= 15 ? 15 : Math.trunc(x1);
        data[o + j] = q0 | (q1 << 4);
      }
    }
  }
  return { data, scales };
}

/**
 * Dequantizes q4 back to a row-major `[rows, cols]` f32 matrix (the padding
 * is dropped).
 *
 * @throws {UsageError} when the array sizes do not match rows and cols.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dequantizeQ4, quantizeQ4 } from "./q4.ts";
 * assert.deepStrictEqual(dequantizeQ4(quantizeQ4(new Float32Array([-8, 4]), 1, 2), 1, 2), new Float32Array([-8, 4]));
 * ```
 */
export function dequantizeQ4(
  q: { data: Uint8Array; scales: Uint16Array },
  rows: number,
  cols: number,
): Float32Array {
  const half = QK / 2;
  const { data } = q;
  return dequantizeBlocks(
    {
      name: "dequantizeQ4",
      rows,
      cols,
      data,
      scales: q.scales,
      blockBytes: half,
    },
    (out, d, o, s, n) => {
      if (n === QK) {
        for (let j = 0; j < half; j++) {
          const v = data[s + j];
          out[o + j] = d * ((v & 15) - 8);
          out[o + j + half] = d * ((v >> 4) - 8);
        }
      } else {
        for (let j = 0; j < n; j++) {
          const v = data[s + (j & 15)];
          out[o + j] = d * ((j < half ? v & 15 : v >> 4) - 8);
        }
      }
    },
  );
}
