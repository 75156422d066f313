/**
 * Batched generation: many sequences share every forward pass, so one
 * streamed pass over the layers (one upload of each streamed layer) serves
 * every sequence's token.
 *
 * Each pass carries, for every active sequence, either its next prompt chunk
 * or its one decode token (rows concatenated, ≤ maxT in all; continuous
 * batching: prefill and decode rows mix). Each sequence has its own KV cache
 * (one of `Forward.caches`), positions, sampler (options and seed) and stop
 * conditions; a finished sequence leaves the batch and a waiting prompt
 * takes its cache.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { Forward } from "./forward.ts";
import type { GenerateIdsOptions, GenerationStats } from "./generate.ts";
import { Sampler } from "./sampler.ts";
import type { KvCache } from "./kv_cache.ts";

/** One id of one sequence, as soon as it is sampled. */
export interface BatchToken {
  /** The prompt's index. */
  index: number;
  /** The new id. */
  id: number;
}

/** Why a sequence stopped. */
export type StopReason = GenerationStats["stopReason"];

/** Stats of a batch: totals over every sequence. */
export interface BatchStats extends GenerationStats {
  /** Sequences. */
  sequences: number;
  /** Why each sequence stopped (by prompt index). */
  stopReasons: StopReason[];
  /** Forward passes. */
  passes: number;
}

/** Options of {@link generateBatch}. */
export interface BatchOptions {
  /** Options of each prompt (one for all, or one per prompt). */
  perPrompt: GenerateIdsOptions | GenerateIdsOptions[];
  /** Called after each id; true ends that sequence (stop strings). */
  shouldStop?: (index: number, id: number) => boolean;
  /** Stops every sequence. */
  signal?: AbortSignal;
  /** Receives the stats when the generator finishes. */
  onStats?: (s: BatchStats) => void;
}

interface Seq {
  index: number;
  kv: KvCache;
  pending: number[]; // prompt tokens not yet run
  next: number | null; // the token to run next (decode)
  history: number[];
  sampler: Sampler;
  eos: Set<number>;
  maxNew: number;
  n: number;
}

/**
 * Generates after every prompt at once, yielding `{ index, id }` as ids are
 * sampled (within a pass, in index order). At most `fwd.caches.length`
 * sequences run together; the others wait for a free cache.
 *
 * @example
 * ```ts ignore
 * import { generateBatch } from "./batch.ts";
 * const out: number[][] = [[], []];
 * for await (const t of generateBatch(fwd, [[1, 15], [1, 9, 4]], { perPrompt: { maxNewTokens: 4 } })) {
 *   out[t.index].push(t.id);
 * }
 * ```
 */
export async function* generateBatch(
  fwd: Forward,
  prompts: number[][],
  o: BatchOptions,
): AsyncGenerator<BatchToken, void, undefined> {
  const opts = (i: number): GenerateIdsOptions =>
    Array.isArray(o.perPrompt) ? o.perPrompt[i] ?? {} : o.perPrompt;
  if (Array.isArray(o.perPrompt) && o.perPrompt.length !== prompts.length) {
    throw new UsageError(
      `${prompts.length} prompts but ${o.perPrompt.length} option objects`,
    );
  }
  const maxSeqLen = fwd.kv.maxSeqLen;
  prompts.forEach((p, i) => {
    if (p.length === 0) {
      throw new UsageError(
        `prompt ${i} is empty: give at least one token id (e.g. BOS)`,
      );
    }
    if (p.length + 1 > maxSeqLen) {
      throw new UsageError(
        `prompt ${i} (${p.length} tokens) does not fit maxSeqLen ${maxSeqLen}`,
      );
    }
    const maxNew = opts(i).maxNewTokens ?? 128;
    if (!Number.isSafeInteger(maxNew) || maxNew < 0) {
      throw new UsageError(
        `maxNewTokens must be a non-negative integer, got ${maxNew}`,
      );
    }
  });
  const stats: BatchStats = {
    promptTokens: prompts.reduce((n, p) => n + p.length, 0),
    newTokens: 0,
    prefillS: 0,
    decodeS: 0,
    tokensPerS: 0,
    stopReason: "length",
    sequences: prompts.length,
    stopReasons: prompts.map(() => "length"),
    passes: 0,
  };
  let decodeTokens = 0;
  const free = [...fwd.caches];
  const waiting = prompts.map((_, i) => i);
  const active: Seq[] = [];
  const admit = () => {
    while (free.length > 0 && waiting.length > 0) {
      const index = waiting.shift()!;
      const oi = opts(index);
      const maxNew = oi.maxNewTokens ?? 128;
      if (maxNew === 0) continue; // nothing to generate: stopReason "length"
      const kv = free.shift()!;
      kv.reset();
      active.push({
        index,
        kv,
        pending: [...prompts[index]],
        next: null,
        history: [...prompts[index]],
        sampler: new Sampler(oi),
        eos: new Set(oi.eosIds ?? []),
        maxNew,
        n: 0,
      });
    }
  };
  const finish = (s: Seq, why: StopReason) => {
    stats.stopReasons[s.index] = why;
    active.splice(active.indexOf(s), 1);
    free.push(s.kv);
  };
  try {
    admit();
    while (active.length > 0) {
      if (o.signal?.aborted) {
        for (const s of [...active]) finish(s, "abort");
        for (const i of waiting) stats.stopReasons[i] = "abort";
        stats.stopReason = "abort";
        return;
      }
      // the pass: decode rows first, then prompt chunks while rows remain
      let room = fwd.maxT;
      const pass: { s: Seq; ids: number[]; head: boolean }[] = [];
      for (const s of active) {
        if (s.next !== null && room > 0) {
          pass.push({ s, ids: [s.next], head: true });
          room--;
        }
      }
      let prefill = false;
      for (const s of active) {
        if (s.next !== null || room === 0) continue;
        const ids = s.pending.splice(0, room);
        room -= ids.length;
        prefill = true;
        pass.push({ s, ids, head: s.pending.length === 0 });
      }
      const heads = pass.map((p) => p.head ? [p.ids.length - 1] : []);
      // a pass reads back at least one row
      if (heads.every((h) => h.length === 0)) {
        heads[0] = [pass[0].ids.length - 1];
      }
      const t0 = performance.now();
      const out = await fwd.forwardSeqs(
        pass.map((p, i) => ({ kv: p.s.kv, ids: p.ids, heads: heads[i] })),
      );
      const dt = (performance.now() - t0) / 1000;
      stats.passes++;
      if (prefill) stats.prefillS += dt;
      else stats.decodeS += dt;
      const sampled: { s: Seq; id: number }[] = [];
      pass.forEach((p, i) => {
        if (!p.head) return;
        const { s } = p;
        const topk = out[i].topk[0];
        const id = s.sampler.sample(
          { values: topk.values, indices: topk.ids },
          s.history,
        );
        s.history.push(id);
        s.n++;
        sampled.push({ s, id });
      });
      sampled.sort((a, b) => a.s.index - b.s.index);
      for (const { s, id } of sampled) {
        stats.newTokens++;
        if (!prefill) decodeTokens++;
        yield { index: s.index, id };
        s.next = id;
        if (s.eos.has(id)) finish(s, "eos");
        else if (o.shouldStop?.(s.index, id)) finish(s, "stop");
        else if (s.n >= s.maxNew) finish(s, "length");
        else if (s.kv.length >= s.kv.maxSeqLen) finish(s, "context");
      }
      admit();
    }
  } finally {
    stats.tokensPerS = stats.decodeS > 0 ? decodeTokens / stats.decodeS : 0;
    o.onStats?.(stats);
  }
}
