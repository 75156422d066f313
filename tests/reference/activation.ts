/**
 * Float64 references of the elementwise ops: SwiGLU's silu(gate) · up and the
 * residual add.
 *
 * @module
 */

/**
 * silu(x) = x · sigmoid(x) = x / (1 + e^−x).
 *
 * @example
 * ```ts
 * import { silu } from "./activation.ts";
 * console.log(silu(0)); // 0
 * ```
 */
export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/**
 * hb[i] = silu(gate[i]) · up[i], all [n].
 *
 * @example
 * ```ts
 * import { siluMulRef } from "./activation.ts";
 * console.log(Array.from(siluMulRef([0, 1], [5, 2]))); // [0, 1.4621...]
 * ```
 */
export function siluMulRef(
  gate: ArrayLike<number>,
  up: ArrayLike<number>,
): Float64Array {
  const hb = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) hb[i] = silu(gate[i]) * up[i];
  return hb;
}

/**
 * out[i] = x[i] + y[i], all [n].
 *
 * @example
 * ```ts
 * import { addRef } from "./activation.ts";
 * console.log(Array.from(addRef([1, 2], [3, 4]))); // [4, 6]
 * ```
 */
export function addRef(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] + y[i];
  return out;
}
