/**
 * Float64 reference of RMSNorm (Llama, Qwen, Mistral; also Qwen3's per-head
 * q/k norm with rows = T·nHeads and dim = headDim).
 *
 * @module
 */

/**
 * out[r, i] = x[r, i] / sqrt(mean_j x[r, j]² + eps) · weight[i].
 *
 * @param x input [rows, dim]
 * @param weight scale [dim]
 * @returns out [rows, dim]
 *
 * @example
 * ```ts
 * import { rmsnormRef } from "./rmsnorm.ts";
 * const out = rmsnormRef({ x: [3, 4], weight: [1, 1], rows: 1, dim: 2, eps: 0 });
 * console.log(Array.from(out)); // ≈ [0.8485, 1.1314]
 * ```
 */
export function rmsnormRef(a: {
  x: ArrayLike<number>;
  weight: ArrayLike<number>;
  rows: number;
  dim: number;
  eps: number;
}): Float64Array {
  const { x, weight, rows, dim, eps } = a;
  const out = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0; // Σ x²
    for (let i = 0; i < dim; i++) ss += x[r * dim + i] ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) {
      out[r * dim + i] = x[r * dim + i] * inv * weight[i];
    }
  }
  return out;
}
