/**
 * The generate loop: prefill the prompt (chunks of up to `maxT` tokens, one
 * pass per chunk, so each streamed layer is read once per chunk), then decode
 * one token per forward pass, sampling on the CPU from the GPU's top-k, until
 * `maxNewTokens`, an EOS id, the KV cache's end or an abort.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { Forward } from "./forward.ts";
import { Sampler, type SamplerOptions } from "./sampler.ts";

/**
 * Options of generate / stream (AutoModel's public options): the sampling
 * options of {@link SamplerOptions} plus the loop's own.
 */
export interface GenerateOptions extends SamplerOptions {
  /** New tokens at most (default 128). */
  maxNewTokens?: number;
  /** Stop strings (text input/output only; needs a tokenizer). */
  stop?: string[];
  /** Stops generation when aborted. */
  signal?: AbortSignal;
}

/** Timing of one generate call. */
export interface GenerationStats {
  /** Prompt tokens. */
  promptTokens: number;
  /** Generated tokens. */
  newTokens: number;
  /** Seconds of prefill (prompt passes, up to the first token). */
  prefillS: number;
  /** Seconds of decode passes (after the first token). */
  decodeS: number;
  /** Decode tokens per second (decode passes / decodeS). */
  tokensPerS: number;
  /** Why generation stopped. */
  stopReason: "length" | "eos" | "abort" | "context" | "stop";
  /** Speculative decoding: tokens the drafter proposed. */
  draftProposed?: number;
  /** Speculative decoding: proposals the target accepted. */
  draftAccepted?: number;
}

/** Options of {@link generateIds} beyond {@link GenerateOptions}. */
export interface GenerateIdsOptions extends GenerateOptions {
  /** Ids that end generation (included in the output, like Hugging Face). */
  eosIds?: number[];
  /** Receives the stats when the generator finishes. */
  onStats?: (s: GenerationStats) => void;
}

/**
 * Checks a generation's prompt (at least one id) and `maxNewTokens` (a
 * non-negative integer, default 128), which it returns.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkGeneration } from "./generate.ts";
 * assert.equal(checkGeneration([1], undefined), 128);
 * assert.throws(() => checkGeneration([], 4));
 * ```
 */
export function checkGeneration(
  prompt: readonly number[],
  maxNewTokens: number | undefined,
): number {
  if (prompt.length === 0) {
    throw new UsageError(
      "the prompt is empty: give at least one token id (e.g. BOS)",
    );
  }
  const maxNew = maxNewTokens ?? 128;
  if (!Number.isSafeInteger(maxNew) || maxNew < 0) {
    throw new UsageError(
      `maxNewTokens must be a non-negative integer, got ${maxNew}`,
    );
  }
  return maxNew;
}

/**
 * Runs the prompt through `fwd` in chunks of `maxT` tokens and returns the
 * last chunk's result, or null when `signal` aborted before a chunk.
 *
 * @example
 * ```ts ignore
 * const last = await prefill(fwd, prompt, signal);
 * ```
 */
export async function prefill(
  fwd: Forward,
  prompt: readonly number[],
  signal?: AbortSignal,
): Promise<Awaited<ReturnType<Forward["forward"]>> | null> {
  let last: Awaited<ReturnType<Forward["forward"]>> | null = null;
  for (let i = 0; i < prompt.length; i += fwd.maxT) {
    if (signal?.aborted) return null;
    last = await fwd.forward(prompt.slice(i, i + fwd.maxT));
  }
  return last;
}

/**
 * Generates ids after `prompt` (a fresh sequence: the KV cache is reset),
 * yielding each id as soon as it is sampled.
 *
 * @example
 * ```ts ignore
 * import { generateIds } from "./generate.ts";
 * const ids: number[] = [];
 * for await (const id of generateIds(forward, [1, 15, 27], { maxNewTokens: 8, temperature: 0 })) {
 *   ids.push(id);
 * }
 * assert.ok(ids.length <= 8);
 * ```
 */
export async function* generateIds(
  fwd: Forward,
  prompt: number[],
  opts: GenerateIdsOptions = {},
): AsyncGenerator<number, void, undefined> {
  const maxNew = checkGeneration(prompt, opts.maxNewTokens);
  const sampler = new Sampler({
    doSample: opts.doSample,
    temperature: opts.temperature,
    topK: opts.topK,
    topP: opts.topP,
    minP: opts.minP,
    repetitionPenalty: opts.repetitionPenalty,
    seed: opts.seed,
  });
  const eos = new Set(opts.eosIds ?? []);
  if (prompt.length + 1 > fwd.kv.maxSeqLen) {
    throw new UsageError(
      `the prompt (${prompt.length} tokens) does not fit maxSeqLen ${fwd.kv.maxSeqLen}`,
    );
  }
  const stats: GenerationStats = {
    promptTokens: prompt.length,
    newTokens: 0,
    prefillS: 0,
    decodeS: 0,
    tokensPerS: 0,
    stopReason: "length",
  };
  const history = [...prompt];
  try {
    fwd.reset();
    if (maxNew === 0) return;
    // prefill: chunks of maxT tokens
    const t0 = performance.now();
    fwd.trace?.setStep(0); // TRACE
    let last = await prefill(fwd, prompt, opts.signal);
    if (last === null) {
      stats.stopReason = "abort";
      return;
    }
    stats.prefillS = (performance.now() - t0) / 1000;
    for (let n = 0; n < maxNew; n++) {
      const s0 = fwd.trace?.now(); // TRACE
      const id = sampler.sample({
        values: last.topk.values,
        indices: last.topk.ids,
      }, history);
      fwd.trace?.sampled(s0!, id); // TRACE
      history.push(id);
      stats.newTokens++;
      yield id;
      if (eos.has(id)) {
        stats.stopReason = "eos";
        return;
      }
      if (n + 1 >= maxNew) break;
      if (opts.signal?.aborted) {
        stats.stopReason = "abort";
        return;
      }
      if (fwd.kv.length >= fwd.kv.maxSeqLen) {
        stats.stopReason = "context";
        return;
      }
      const d0 = performance.now();
      fwd.trace?.setStep(n + 1); // TRACE
      last = await fwd.forward([id]);
      stats.decodeS += (performance.now() - d0) / 1000;
    }
  } finally {
    const passes = Math.max(0, stats.newTokens - 1);
    stats.tokensPerS = stats.decodeS > 0 ? passes / stats.decodeS : 0;
    opts.onStats?.(stats);
  }
}
