/**
 * Float64 reference of causal grouped-query attention over a KV cache.
 *
 * @module
 */

/**
 * For token t (position pos0 + t) and query head h (kv head
 * kh = floor(h / (nHeads / nKvHeads))):
 *
 *   att[p] = scale · q[t, h, :] · k[p, kh, :]      for p = 0..pos0+t
 *   att    = softmax(att)                          (max-subtracted)
 *   out[t, h, :] = Σ_p att[p] · v[p, kh, :]
 *
 * @param q [T, nHeads·headDim]
 * @param k cache [≥ pos0+T, nKvHeads·headDim]
 * @param v cache [≥ pos0+T, nKvHeads·headDim]
 * @returns out [T, nHeads·headDim]
 *
 * @example
 * ```ts
 * import { attentionRef } from "./attention.ts";
 * // one head, two cached positions with equal scores → the mean of v
 * const out = attentionRef({ q: [1], k: [1, 1], v: [2, 4], T: 1, pos0: 1, nHeads: 1,
 *   nKvHeads: 1, headDim: 1, scale: 1 });
 * console.log(Array.from(out)); // [3]
 * ```
 */
export function attentionRef(a: {
  q: ArrayLike<number>;
  k: ArrayLike<number>;
  v: ArrayLike<number>;
  T: number;
  pos0: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  scale: number;
}): Float64Array {
  const { q, k, v, T, pos0, nHeads, nKvHeads, headDim: hd, scale } = a;
  const group = nHeads / nKvHeads; // query heads per kv head
  const qDim = nHeads * hd, kvDim = nKvHeads * hd;
  const out = new Float64Array(T * qDim);
  for (let t = 0; t < T; t++) {
    const n = pos0 + t + 1; // positions this token sees
    for (let h = 0; h < nHeads; h++) {
      const kh = Math.floor(h / group);
      const att = new Float64Array(n);
      for (let p = 0; p < n; p++) {
        let s = 0;
        for (let d = 0; d < hd; d++) {
          s += q[t * qDim + h * hd + d] * k[p * kvDim + kh * hd + d];
        }
        att[p] = s * scale;
      }
      const max = att.reduce((m, s) => Math.max(m, s), -Infinity);
      let sum = 0;
      for (let p = 0; p < n; p++) sum += att[p] = Math.exp(att[p] - max);
      for (let d = 0; d < hd; d++) {
        let acc = 0;
        for (let p = 0; p < n; p++) acc += att[p] * v[p * kvDim + kh * hd + d];
        out[t * qDim + h * hd + d] = acc / sum;
      }
    }
  }
  return out;
}
