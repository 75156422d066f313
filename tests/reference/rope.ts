/**
 * Float64 reference of rotary position embedding in the rotate-half layout of
 * Hugging Face checkpoints: within each head, element i (i < rotaryDim/2) is
 * paired with element i + rotaryDim/2 and the pair is rotated by the angle
 * pos · invFreq[i]. In the interleaved layout (GPT-J; GLM's
 * `rotate_half` over x[0::2], x[1::2] with `repeat_interleave(2)` cos/sin,
 * ChatGLM's pairs (x[2i], x[2i+1])) pair i is (2i, 2i + 1) instead. Elements rotaryDim..headDim-1 (partial rotary) are left
 * untouched. The invFreq table carries any frequency scaling (llama3, linear,
 * dynamic), see lib/model/rope.ts.
 *
 * @module
 */

/**
 * Returns a rotated copy of x [T, nHeads·headDim]; row t has position pos0 + t.
 *
 *   half = rotaryDim / 2, θ = (pos0 + t) · invFreq[i], (a, b) = (i, i + half)
 *   or (2i, 2i + 1) when `interleaved`
 *   out[a] = x[a] cos θ − x[b] sin θ
 *   out[b] = x[b] cos θ + x[a] sin θ
 *
 * @param invFreq [rotaryDim / 2]
 *
 * @example
 * ```ts
 * import { ropeRef } from "./rope.ts";
 * const out = ropeRef({ x: [1, 0], T: 1, nHeads: 1, headDim: 2, rotaryDim: 2, pos0: 1, invFreq: [Math.PI / 2] });
 * console.log(Array.from(out)); // ≈ [0, 1]
 * ```
 */
export function ropeRef(a: {
  x: ArrayLike<number>;
  T: number;
  nHeads: number;
  headDim: number;
  rotaryDim: number;
  pos0: number;
  invFreq: ArrayLike<number>;
  interleaved?: boolean;
}): Float64Array {
  const { x, T, nHeads, headDim, rotaryDim, pos0, invFreq } = a;
  const out = Float64Array.from(x);
  const half = rotaryDim / 2;
  for (let t = 0; t < T; t++) {
    const pos = pos0 + t;
    for (let h = 0; h < nHeads; h++) {
      const base = (t * nHeads + h) * headDim; // start of head h of token t
      for (let i = 0; i < half; i++) {
        const theta = pos * invFreq[i];
        const c = Math.cos(theta), s = Math.sin(theta);
        // the pair: (i, i + half), or (2i, 2i + 1) interleaved
        const ia = a.interleaved ? base + 2 * i : base + i;
        const ib = a.interleaved ? ia + 1 : base + i + half;
        const x1 = x[ia], x2 = x[ib];
        out[ia] = x1 * c - x2 * s;
        out[ib] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}
