/**
 * Rotary position embedding frequencies (the `inv_freq` table of Hugging
 * Face's rotary embedding), with llama3, linear and dynamic-NTK scaling.
 *
 * @module
 */

import { type ModelConfig, rotaryDim } from "./config.ts";

/** The config fields RoPE depends on. */
export type RopeConfig = Pick<
  ModelConfig,
  | "headDim"
  | "partialRotaryFactor"
  | "ropeTheta"
  | "ropeScaling"
  | "maxPositionEmbeddings"
>;

function baseInvFreq(base: number, dim: number): Float64Array {
  const out = new Float64Array(dim / 2);
  for (let j = 0; j < dim / 2; j++) out[j] = 1 / Math.pow(base, (2 * j) / dim);
  return out;
}

/**
 * The inverse frequencies RoPE rotates pair `j` of each head with
 * (`angle = position * invFreq[j]`), length rotaryDim / 2 where
 * rotaryDim = headDim * partialRotaryFactor. Pair `j` is (j, j + rotaryDim/2)
 * in the rotate-half layout.
 *
 * Scaling (`cfg.ropeScaling`):
 * - `linear`: every frequency divided by `factor`.
 * - `llama3` (Llama 3.1): wavelengths 2π/f shorter than
 *   original/highFreqFactor are kept, longer than original/lowFreqFactor are
 *   divided by `factor`, and in between interpolated smoothly with
 *   s = (original/wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor),
 *   f' = (1 - s) f / factor + s f.
 * - `dynamic` (NTK): when `seqLen` exceeds maxPositionEmbeddings the base
 *   becomes theta * (factor * seqLen / maxPositionEmbeddings - (factor - 1))^(d/(d-2)).
 *
 * @param cfg the model config
 * @param seqLen the sequence length the table is for (dynamic scaling only)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ropeInvFreq } from "./rope.ts";
 * const f = ropeInvFreq({ headDim: 4, partialRotaryFactor: 1, ropeTheta: 10000,
 *   ropeScaling: null, maxPositionEmbeddings: 2048 });
 * assert.deepEqual(Array.from(f), [1, 0.01]);
 * ```
 */
export function ropeInvFreq(cfg: RopeConfig, seqLen?: number): Float64Array {
  const dim = rotaryDim(cfg);
  const rs = cfg.ropeScaling;
  if (rs === null) return baseInvFreq(cfg.ropeTheta, dim);
  switch (rs.type) {
    case "linear": {
      const f = baseInvFreq(cfg.ropeTheta, dim);
      for (let j = 0; j < f.length; j++) f[j] /= rs.factor;
      return f;
    }
    case "dynamic": {
      const maxPos = cfg.maxPositionEmbeddings;
      const len = Math.max(seqLen ?? maxPos, maxPos);
      const base = cfg.ropeTheta *
        Math.pow(rs.factor * len / maxPos - (rs.factor - 1), dim / (dim - 2));
      return baseInvFreq(base, dim);
    }
    case "llama3": {
      const f = baseInvFreq(cfg.ropeTheta, dim);
      const factor = rs.factor;
      const low = rs.lowFreqFactor ?? 1;
      const high = rs.highFreqFactor ?? 4;
      const orig = rs.originalMaxPositionEmbeddings ?? 8192;
      const lowFreqWavelen = orig / low;
      const highFreqWavelen = orig / high;
      for (let j = 0; j < f.length; j++) {
        const wavelen = 2 * Math.PI / f[j];
        if (wavelen < highFreqWavelen) continue; // high frequency: unchanged
        if (wavelen > lowFreqWavelen) {
          f[j] /= factor; // low frequency: fully interpolated
          continue;
        }
        const s = (orig / wavelen - low) / (high - low);
        f[j] = (1 - s) * f[j] / factor + s * f[j];
      }
      return f;
    }
  }
}

/**
 * The softmax scale of attention scores: 1 / sqrt(headDim).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { attentionScale } from "./rope.ts";
 * assert.equal(attentionScale({ headDim: 64 }), 0.125);
 * ```
 */
export function attentionScale(cfg: Pick<ModelConfig, "headDim">): number {
  return 1 / Math.sqrt(cfg.headDim);
}
