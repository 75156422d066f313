/**
 * Token sampling on the CPU from the GPU's top-k candidates: greedy, or
 * temperature, repetition penalty, top-k, top-p and min-p with Hugging Face
 * semantics, drawn with a seeded PRNG so that runs are reproducible.
 *
 * @module
 */

import { UsageError } from "../errors.ts";

/** Options of {@link Sampler} (the sampling subset of generate's options). */
export interface SamplerOptions {
  /**
   * Sample (true) or take the argmax (false). Default: sample when
   * `temperature` is given and > 0, greedy otherwise.
   */
  doSample?: boolean;
  /** Softmax temperature; 0 means greedy. Default 1 when sampling. */
  temperature?: number;
  /** Keep the K most likely tokens (ties with the K-th kept); 0 or absent = no limit. */
  topK?: number;
  /** Keep the smallest most-likely set whose probability reaches P (0 < P ≤ 1; 1 = off). */
  topP?: number;
  /** Keep tokens whose probability is at least minP times the largest (0 = off). */
  minP?: number;
  /** Hugging Face repetition penalty (> 0; 1 = off): positive logits of seen tokens divided by it, negative ones multiplied. */
  repetitionPenalty?: number;
  /** PRNG seed (an integer); random when absent. */
  seed?: number;
}

/** The GPU's top-k output: logits and their token ids, in any order. */
export interface Candidates {
  /** Logits of the candidates. */
  values: Float32Array;
  /** Token ids of the candidates. */
  indices: Uint32Array;
}

/** The most candidates the GPU top-k returns. */
export const MAX_CANDIDATES = 64;

/**
 * xoshiro128** seeded through splitmix32: a small, fast PRNG whose stream is
 * fixed by the seed.
 */
class Rng {
  #s = new Uint32Array(4);

  constructor(seed: number) {
    let x = (seed >>> 0) ^ Math.floor(seed / 2 ** 32);
    for (let i = 0; i < 4; i++) {
      // splitmix32
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.#s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }

  /** Next 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.#s;
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextU32() >>> 5, lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

function checkNum(
  name: string,
  v: number | undefined,
  ok: (v: number) => boolean,
  what: string,
) {
  if (
    v !== undefined && (typeof v !== "number" || !Number.isFinite(v) || !ok(v))
  ) {
    throw new UsageError(`${name} must be ${what}, got ${v}`);
  }
}

/**
 * Picks the next token from the GPU's top-k candidates.
 *
 * Greedy (doSample false or temperature 0): the candidate with the largest
 * (repetition-penalized) logit; ties go to the lower token id. Sampling:
 * repetition penalty, temperature, top-k, top-p, min-p (in Hugging Face's
 * order), then one draw from the remaining probabilities. Only the candidates
 * are seen, so the distribution is the softmax restricted to the top
 * {@link Sampler.candidates} tokens.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Sampler } from "./sampler.ts";
 * const s = new Sampler({ temperature: 0.8, topP: 0.9, seed: 42 });
 * const id = s.sample({ values: new Float32Array([2, 1, 0.5]), indices: new Uint32Array([7, 3, 9]) });
 * assert.ok([7, 3, 9].includes(id));
 * assert.equal(new Sampler({ temperature: 0 }).sample(
 *   { values: new Float32Array([1, 3]), indices: new Uint32Array([4, 5]) }), 5);
 * ```
 */
export class Sampler {
  /** True when the sampler takes the argmax. */
  readonly greedy: boolean;
  /** Temperature used when sampling. */
  readonly temperature: number;
  /** top-k (0 = off). */
  readonly topK: number;
  /** top-p (1 = off). */
  readonly topP: number;
  /** min-p (0 = off). */
  readonly minP: number;
  /** Repetition penalty (1 = off). */
  readonly repetitionPenalty: number;
  /** The seed in use. */
  readonly seed: number;
  #rng: Rng;

  /** Validates the options (UsageError) and seeds the PRNG. */
  constructor(opts: SamplerOptions = {}) {
    checkNum("temperature", opts.temperature, (v) => v >= 0, "a number >= 0");
    checkNum(
      "topK",
      opts.topK,
      (v) => Number.isInteger(v) && v >= 0,
      "an integer >= 0",
    );
    checkNum("topP", opts.topP, (v) => v > 0 && v <= 1, "in (0, 1]");
    checkNum("minP", opts.minP, (v) => v >= 0 && v <= 1, "in [0, 1]");
    checkNum(
      "repetitionPenalty",
      opts.repetitionPenalty,
      (v) => v > 0,
      "a number > 0",
    );
    checkNum("seed", opts.seed, Number.isSafeInteger, "an integer");
    const doSample = opts.doSample ??
      (opts.temperature !== undefined && opts.temperature > 0);
    this.temperature = opts.temperature ?? 1;
    this.greedy = !doSample || this.temperature === 0;
    this.topK = opts.topK ?? 0;
    this.topP = opts.topP ?? 1;
    this.minP = opts.minP ?? 0;
    this.repetitionPenalty = opts.repetitionPenalty ?? 1;
    this.seed = opts.seed ?? crypto.getRandomValues(new Uint32Array(1))[0];
    this.#rng = new Rng(this.seed);
  }

  /**
   * How many candidates the GPU top-k should return: 1 for plain greedy,
   * else min(topK, 64) (64 when topK is off or a repetition penalty may
   * reorder the candidates).
   */
  get candidates(): number {
    if (this.greedy && this.repetitionPenalty === 1) return 1;
    if (this.greedy || this.topK === 0 || this.repetitionPenalty !== 1) {
      return MAX_CANDIDATES;
    }
    return Math.min(this.topK, MAX_CANDIDATES);
  }

  /**
   * The distribution a draw is made from, after every filter: token ids
   * sorted by decreasing probability (ties by id) and their probabilities
   * (summing to 1). Greedy gives the single argmax with probability 1.
   */
  distribution(
    c: Candidates,
    recent?: Iterable<number>,
  ): { ids: number[]; probs: number[] } {
    const n = c.values.length;
    if (n === 0 || c.indices.length !== n) {
      throw new UsageError(
        `sampler: ${n} candidate values for ${c.indices.length} ids`,
      );
    }
    const seen = recent && this.repetitionPenalty !== 1
      ? new Set(recent)
      : null;
    // penalized logits, as [id, logit]
    const items: [number, number][] = [];
    for (let i = 0; i < n; i++) {
      let x = c.values[i];
      const id = c.indices[i];
      if (Number.isNaN(x)) continue;
      if (seen?.has(id)) {
        x = x > 0 ? x / this.repetitionPenalty : x * this.repetitionPenalty;
      }
      items.push([id, x]);
    }
    if (items.length === 0) {
      throw new UsageError("sampler: every candidate logit is NaN");
    }
    // decreasing logit, ties by lower id
    items.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    if (this.greedy || !Number.isFinite(items[0][1])) {
      return { ids: [items[0][0]], probs: [1] };
    }

    // temperature, then top-k (ties with the k-th kept, as HF)
    let kept = items.map(([id, x]) =>
      [id, x / this.temperature] as [number, number]
    );
    if (this.topK > 0 && this.topK < kept.length) {
      const kth = kept[this.topK - 1][1];
      kept = kept.filter(([, x]) => x >= kth);
    }
    // softmax
    const max = kept[0][1];
    let probs = kept.map(([, x]) => Math.exp(x - max));
    let ids = kept.map(([id]) => id);
    const norm = () => {
      const s = probs.reduce((a, b) => a + b, 0);
      probs = probs.map((p) => p / s);
    };
    norm();
    // top-p: keep a token while the mass of strictly more likely tokens is < topP
    if (this.topP < 1) {
      let cum = 0, keep = 0;
      while (keep < probs.length && cum < this.topP) cum += probs[keep++];
      ids = ids.slice(0, Math.max(1, keep));
      probs = probs.slice(0, ids.length);
      norm();
    }
    // min-p: keep p >= minP * max p
    if (this.minP > 0) {
      const th = this.minP * probs[0];
      const keep = Math.max(1, probs.filter((p) => p >= th).length);
      ids = ids.slice(0, keep);
      probs = probs.slice(0, keep);
      norm();
    }
    return { ids, probs };
  }

  /**
   * The next token id. `recent` holds the ids the repetition penalty applies
   * to (Hugging Face: the prompt and everything generated so far).
   */
  sample(c: Candidates, recent?: Iterable<number>): number {
    return this.draw(this.distribution(c, recent));
  }

  /**
   * One draw from a distribution (ids and probabilities summing to 1, as
   * {@link Sampler.distribution} gives); a single id takes no draw.
   */
  draw(d: { ids: number[]; probs: number[] }): number {
    const { ids, probs } = d;
    if (ids.length === 1) return ids[0];
    const u = this.#rng.next();
    let cum = 0;
    for (let i = 0; i < ids.length; i++) {
      cum += probs[i];
      if (u < cum) return ids[i];
    }
    return ids[ids.length - 1];
  }

  /** A uniform number in [0, 1) from this sampler's PRNG stream (exposed for tests). */
  random(): number {
    return this.#rng.next();
  }
}
