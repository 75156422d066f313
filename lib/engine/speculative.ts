/**
 * Speculative decoding: a drafter proposes K tokens, the target verifies all
 * of them in ONE streamed pass (K + 1 rows, prefill-shaped matmuls, the
 * top-k of every row read back at once), and the longest agreeing prefix
 * plus one target token is kept. Both KV caches roll back past what was
 * rejected (a cache's `length` is cut; later rows are overwritten).
 *
 * The rule (Leviathan et al. 2023; Chen et al. 2023): with p the target's
 * and q the drafter's distribution at a position, the proposal d is accepted
 * with probability min(1, p(d)/q(d)); at the first rejection the token is
 * drawn from norm(max(0, p − q)); when all K are accepted, one more is drawn
 * from the target's last row. The kept tokens are then distributed exactly as
 * the target's own samples. Here p is the distribution plain decoding draws
 * from — the sampler's filters over the GPU's top-k candidates
 * (`Sampler.distribution`, 64 candidates unless top-k is smaller) — so the
 * output distribution is exactly plain decoding's. Greedy: p is the argmax,
 * so a proposal is kept iff it is the argmax and the ids are plain greedy's.
 * Sampled runs draw differently from plain ones (the same distribution, not
 * the same sample for a seed).
 *
 * Drafters: {@link ModelDrafter} (a small model sharing the vocabulary,
 * resident) and {@link NgramDrafter} (prompt lookup: the tokens that followed
 * the last earlier occurrence of the sequence's final n-gram).
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { Forward } from "./forward.ts";
import {
  checkGeneration,
  type GenerateIdsOptions,
  type GenerationStats,
  prefill,
} from "./generate.ts";
import { Sampler, type SamplerOptions } from "./sampler.ts";

/** A distribution over token ids (probabilities summing to 1). */
export interface Distribution {
  /** Token ids. */
  ids: number[];
  /** Their probabilities. */
  probs: number[];
}

/** Proposed tokens and the distribution each was drawn from (q). */
export interface Proposal {
  /** The proposed ids (possibly fewer than asked, or none). */
  ids: number[];
  /** q at each proposed position. */
  dists: Distribution[];
}

/** Something that proposes the next tokens of a sequence. */
export interface Drafter {
  /** Proposes up to `k` tokens after `history` (the whole sequence so far). */
  propose(history: number[], k: number): Promise<Proposal>;
  /** Forgets the sequence (a new generation). */
  reset(): void;
}

const pointMass = (id: number): Distribution => ({ ids: [id], probs: [1] });

/**
 * A draft model: proposes by decoding K tokens with its own (resident)
 * forward pass and the target's sampling options. Its KV cache keeps the
 * longest prefix it shares with the sequence; the rest is fed again.
 *
 * @example
 * ```ts ignore
 * const drafter = new ModelDrafter(draftForward, { temperature: 0 });
 * const { ids } = await drafter.propose([1, 15, 27], 4);
 * ```
 */
export class ModelDrafter implements Drafter {
  readonly #fwd: Forward;
  readonly #sampler: Sampler;
  #done: number[] = []; // the tokens whose K/V the draft cache holds

  /** Drafts with `fwd` (its single-sequence cache), sampling like `opts`. */
  constructor(fwd: Forward, opts: SamplerOptions) {
    this.#fwd = fwd;
    // its own PRNG stream, derived from the target's seed when given
    this.#sampler = new Sampler({
      ...opts,
      seed: opts.seed === undefined ? undefined : opts.seed + 0x5bd1e995,
    });
  }

  /** Forgets the sequence. */
  reset(): void {
    this.#done = [];
    this.#fwd.reset();
  }

  async propose(history: number[], k: number): Promise<Proposal> {
    const fwd = this.#fwd, done = this.#done;
    // keep the shared prefix (at least the last token is fed again)
    let c = 0;
    while (
      c < done.length && c < history.length - 1 && done[c] === history[c]
    ) c++;
    done.length = c;
    fwd.kv.length = c;
    let feed = history.slice(c);
    const out: Proposal = { ids: [], dists: [] };
    const recent = [...history];
    while (
      out.ids.length < k && fwd.kv.length + feed.length <= fwd.kv.maxSeqLen
    ) {
      const last = await prefill(fwd, feed);
      done.push(...feed);
      const q = this.#sampler.distribution(
        { values: last!.topk.values, indices: last!.topk.ids },
        recent,
      );
      const id = this.#sampler.draw(q);
      out.ids.push(id);
      out.dists.push(q);
      recent.push(id);
      feed = [id];
    }
    return out;
  }
}

/**
 * Prompt-lookup drafting: finds the last earlier occurrence of the
 * sequence's final n tokens (n = `maxN` down to 1) and proposes the tokens
 * that followed it (point masses: q(d) = 1). No model, no GPU.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NgramDrafter } from "./speculative.ts";
 * const p = await new NgramDrafter().propose([5, 6, 7, 8, 9, 5, 6, 7], 3);
 * assert.deepEqual(p.ids, [8, 9, 5]);
 * ```
 */
export class NgramDrafter implements Drafter {
  readonly #maxN: number;

  /** Matches n-grams of `maxN` tokens down to 1 (default 3). */
  constructor(maxN = 3) {
    this.#maxN = maxN;
  }

  /** Nothing to forget. */
  reset(): void {}

  propose(history: number[], k: number): Promise<Proposal> {
    const L = history.length;
    for (let n = Math.min(this.#maxN, L - 1); n >= 1; n--) {
      for (let j = L - n - 1; j >= 0; j--) {
        let same = true;
        for (let i = 0; i < n && same; i++) {
          same = history[j + i] === history[L - n + i];
        }
        if (!same) continue;
        const ids = history.slice(j + n, j + n + k);
        return Promise.resolve({ ids, dists: ids.map(pointMass) });
      }
    }
    return Promise.resolve({ ids: [], dists: [] });
  }
}

/** The probability of `id` under `d`. */
function prob(d: Distribution, id: number): number {
  const i = d.ids.indexOf(id);
  return i < 0 ? 0 : d.probs[i];
}

/**
 * The token at the first rejection: norm(max(0, p − q)); p itself when that
 * is empty (p ≤ q everywhere only when p = q, where nothing is rejected).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { residual } from "./speculative.ts";
 * const r = residual({ ids: [1, 2], probs: [0.75, 0.25] }, { ids: [1], probs: [1] });
 * assert.deepEqual(r, { ids: [2], probs: [1] });
 * ```
 */
export function residual(p: Distribution, q: Distribution): Distribution {
  const ids: number[] = [], probs: number[] = [];
  let sum = 0;
  for (let i = 0; i < p.ids.length; i++) {
    const r = p.probs[i] - prob(q, p.ids[i]);
    if (r > 0) {
      ids.push(p.ids[i]);
      probs.push(r);
      sum += r;
    }
  }
  if (sum <= 0) return p;
  return { ids, probs: probs.map((x) => x / sum) };
}

/**
 * One step of the rejection rule: proposal `d` (drawn from q) is accepted
 * with probability min(1, p(d)/q(d)); otherwise the token is drawn from
 * {@link residual}. The result is distributed as p.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { verify } from "./speculative.ts";
 * import { Sampler } from "./sampler.ts";
 * const s = new Sampler({ temperature: 1, seed: 1 });
 * const p = { ids: [3], probs: [1] }, q = { ids: [4], probs: [1] };
 * assert.deepEqual(verify(s, p, q, 4), { accepted: false, id: 3 });
 * assert.deepEqual(verify(s, p, p, 3), { accepted: true, id: 3 });
 * ```
 */
export function verify(
  sampler: Sampler,
  p: Distribution,
  q: Distribution,
  d: number,
): { accepted: boolean; id: number } {
  const pd = prob(p, d), qd = prob(q, d);
  if (qd > 0 && (pd >= qd || sampler.random() < pd / qd)) {
    return { accepted: true, id: d };
  }
  return { accepted: false, id: sampler.draw(residual(p, q)) };
}

/** Options of {@link generateSpeculative}. */
export interface SpeculativeOptions extends GenerateIdsOptions {
  /** Tokens proposed per target pass (K ≥ 1). */
  draftTokens: number;
}

/**
 * Generates ids after `prompt` like `generateIds`, verifying the drafter's
 * proposals K at a time (one target pass per round). The stats gain
 * `draftProposed` and `draftAccepted`. `fwd` needs `headRows` ≥ K + 1.
 *
 * @example
 * ```ts ignore
 * for await (const id of generateSpeculative(fwd, new NgramDrafter(), prompt, { draftTokens: 4 })) {
 *   console.log(id);
 * }
 * ```
 */
export async function* generateSpeculative(
  fwd: Forward,
  drafter: Drafter,
  prompt: number[],
  opts: SpeculativeOptions,
): AsyncGenerator<number, void, undefined> {
  const maxNew = checkGeneration(prompt, opts.maxNewTokens);
  const K = opts.draftTokens;
  if (!Number.isSafeInteger(K) || K < 1 || K + 1 > fwd.maxT) {
    throw new UsageError(
      `draftTokens must be an integer 1..${fwd.maxT - 1}, got ${K}`,
    );
  }
  if (prompt.length + 1 > fwd.kv.maxSeqLen) {
    throw new UsageError(
      `the prompt (${prompt.length} tokens) does not fit maxSeqLen ${fwd.kv.maxSeqLen}`,
    );
  }
  const sampler = new Sampler(opts);
  const eos = new Set(opts.eosIds ?? []);
  const stats: GenerationStats = {
    promptTokens: prompt.length,
    newTokens: 0,
    prefillS: 0,
    decodeS: 0,
    tokensPerS: 0,
    stopReason: "length",
    draftProposed: 0,
    draftAccepted: 0,
  };
  let proposed = 0, accepted = 0;
  const history = [...prompt];
  const cand = (t: { values: Float32Array; ids: Uint32Array }) => ({
    values: t.values,
    indices: t.ids,
  });
  try {
    fwd.reset();
    drafter.reset();
    if (maxNew === 0) return;
    const t0 = performance.now();
    let last = await prefill(fwd, prompt, opts.signal);
    if (last === null) {
      stats.stopReason = "abort";
      return;
    }
    stats.prefillS = (performance.now() - t0) / 1000;
    let emit = [sampler.sample(cand(last.topk), history)];
    for (;;) {
      for (const id of emit) {
        history.push(id);
        stats.newTokens++;
        yield id;
        if (eos.has(id)) {
          stats.stopReason = "eos";
          return;
        }
        if (stats.newTokens >= maxNew) return;
      }
      if (opts.signal?.aborted) {
        stats.stopReason = "abort";
        return;
      }
      const kv = fwd.kv;
      if (kv.length >= kv.maxSeqLen) {
        stats.stopReason = "context";
        return;
      }
      const d0 = performance.now();
      const t = history[history.length - 1];
      // proposals beyond the tokens still wanted or the cache are wasted
      const k = Math.min(
        K,
        maxNew - stats.newTokens - 1,
        kv.maxSeqLen - kv.length - 1,
      );
      const prop = k > 0
        ? await drafter.propose(history, k)
        : { ids: [], dists: [] };
      if (prop.ids.length === 0) {
        last = await fwd.forward([t]);
        emit = [sampler.sample(cand(last.topk), history)];
      } else {
        const base = kv.length;
        const [out] = await fwd.forwardSeqs([{
          kv,
          ids: [t, ...prop.ids],
          heads: [t, ...prop.ids].map((_, i) => i),
        }]);
        proposed += prop.ids.length;
        const recent = [...history];
        emit = [];
        let i = 0;
        for (; i < prop.ids.length; i++) {
          const p = sampler.distribution(cand(out.topk[i]), recent);
          const v = verify(sampler, p, prop.dists[i], prop.ids[i]);
          emit.push(v.id);
          if (!v.accepted) break;
          recent.push(v.id);
        }
        accepted += i;
        if (i === prop.ids.length) {
          emit.push(sampler.sample(cand(out.topk[i]), recent));
        }
        // the target keeps the K/V of t and the accepted proposals
        kv.length = base + 1 + i;
      }
      stats.decodeS += (performance.now() - d0) / 1000;
    }
  } finally {
    stats.draftProposed = proposed;
    stats.draftAccepted = accepted;
    const after = Math.max(0, stats.newTokens - 1);
    stats.tokensPerS = stats.decodeS > 0 ? after / stats.decodeS : 0;
    opts.onStats?.(stats);
  }
}
