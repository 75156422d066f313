/**
 * Float64 reference of the matmul kernels and independent decoders of the
 * weight storage formats (written from the format rules in the contract, not
 * by calling lib/quant).
 *
 * @module
 */

/**
 * out[t, n] = Σ_k x[t, k] · W[n, k] (+ bias[n]), in float64.
 *
 * @param x activations [T, K]
 * @param w weight [N, K] (nn.Linear layout [out, in])
 * @param bias optional [N]
 * @returns out [T, N]
 *
 * @example
 * ```ts
 * import { matmulRef } from "./matmul.ts";
 * // x [1, 2] · W [2, 2]ᵀ: W rows are [1, 0] and [1, 1]
 * console.log(Array.from(matmulRef({ x: [2, 3], w: [1, 0, 1, 1], T: 1, N: 2, K: 2 }))); // [2, 5]
 * ```
 */
export function matmulRef(a: {
  x: ArrayLike<number>;
  w: ArrayLike<number>;
  bias?: ArrayLike<number>;
  T: number;
  N: number;
  K: number;
}): Float64Array {
  const { x, w, bias, T, N, K } = a;
  const out = new Float64Array(T * N);
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[t * K + k] * w[n * K + k];
      out[t * N + n] = s + (bias ? bias[n] : 0);
    }
  }
  return out;
}

/**
 * IEEE 754 half (binary16) bits → number: sign 1, exponent 5 (bias 15),
 * mantissa 10; exponent 0 = subnormal (m · 2⁻²⁴), 31 = inf/NaN.
 *
 * @example
 * ```ts
 * import { halfBitsToNumber } from "./matmul.ts";
 * console.log(halfBitsToNumber(0x3c00), halfBitsToNumber(0xc000), halfBitsToNumber(0x0001)); // 1 -2 5.960464477539063e-8
 * ```
 */
export function halfBitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * bfloat16 bits → number: the upper 16 bits of an f32.
 *
 * @example
 * ```ts
 * import { bf16BitsToNumber } from "./matmul.ts";
 * console.log(bf16BitsToNumber(0x3fc0)); // 1.5
 * ```
 */
export function bf16BitsToNumber(b: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, (b & 0xffff) << 16);
  return dv.getFloat32(0);
}

/**
 * q8 → f64 [rows, cols]: blocks of 32 along a row, nb = ceil(cols/32);
 * data i8 [rows, nb·32], scales f16 bits [rows, nb]; x = d · q.
 *
 * @example
 * ```ts
 * import { dequantQ8Ref } from "./matmul.ts";
 * const data = new Int8Array(32); data[0] = -3;
 * console.log(dequantQ8Ref(data, new Uint16Array([0x3800]), 1, 2)[0]); // -1.5 (d = 0.5)
 * ```
 */
export function dequantQ8Ref(
  data: Int8Array,
  scales: Uint16Array,
  rows: number,
  cols: number,
): Float64Array {
  const nb = Math.ceil(cols / 32);
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const d = halfBitsToNumber(scales[r * nb + Math.floor(c / 32)]);
      out[r * cols + c] = d * data[r * nb * 32 + c];
    }
  }
  return out;
}

/**
 * q4 → f64 [rows, cols]: data u8 [rows, nb·16]; in block b, byte j (0..15)
 * holds element j in its low nibble and element j+16 in its high nibble;
 * x = d · (nibble − 8) with d the block's f16 scale.
 *
 * @example
 * ```ts
 * import { dequantQ4Ref } from "./matmul.ts";
 * const data = new Uint8Array(16).fill(0x88); data[0] = 0xa9; // element 0: 9, element 16: 10
 * const w = dequantQ4Ref(data, new Uint16Array([0x3c00]), 1, 32);
 * console.log(w[0], w[16], w[1]); // 1 2 0
 * ```
 */
export function dequantQ4Ref(
  data: Uint8Array,
  scales: Uint16Array,
  rows: number,
  cols: number,
): Float64Array {
  const nb = Math.ceil(cols / 32);
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const b = Math.floor(c / 32);
      const j = c % 32;
      const byte = data[r * nb * 16 + b * 16 + (j % 16)];
      const nibble = j < 16 ? byte & 0x0f : byte >> 4;
      out[r * cols + c] = halfBitsToNumber(scales[r * nb + b]) * (nibble - 8);
    }
  }
  return out;
}
