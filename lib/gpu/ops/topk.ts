/**
 * `topk` (kernels/topk.wgsl): the k largest logits as (value, index) pairs.
 *
 * @module
 */
import { UsageError } from "../../errors.ts";
import type { Launcher } from "../_context.ts";
import type { BufferRef } from "../pipelines.ts";
import { fields, packFields } from "../_wgsl.ts";
import * as op from "./_shared.ts";
import body from "../../../kernels/topk.wgsl" with { type: "text" };

/** Arguments of `Kernels.topk`: k (f32 value, u32 index) pairs, descending. */
export interface TopkArgs {
  /** f32 [V]. */
  logits: BufferRef;
  /** k × (f32 value, u32 index). */
  out: BufferRef;
  /** Vocabulary size. */
  V: number;
  /** How many to keep. */
  k: number;
}

const PARAMS = fields("n lists");

/** The largest k {@link topk} supports. */
export const TOPK_MAX = 64;

/** Items each invocation of the first top-k pass reads (logits). */
const TOPK_ITEMS = 1024;

/**
 * The top-k passes for a vocabulary of V: the number of lists (invocations)
 * of each pass; the last is 1. Pass 1 reads ~1024 logits per invocation, the
 * merge passes max(1024, 16k) candidates.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { topkPasses } from "./topk.ts";
 * assert.deepStrictEqual(topkPasses(151936, 50), [149, 8, 1]);
 * ```
 */
export function topkPasses(V: number, k: number): number[] {
  const out = [Math.ceil(V / TOPK_ITEMS)];
  const per = Math.max(1024, 16 * k);
  while (out[out.length - 1] > 1) {
    out.push(Math.ceil((out[out.length - 1] * k) / per));
  }
  return out;
}

/**
 * The k largest of logits [V] as k pairs (f32 value, u32 index) in `out`,
 * descending, equal values by lower index; k = 1 is argmax. When V < k the
 * tail is (-Infinity, 0xffffffff). Decode reads back 8·k bytes instead of
 * the vocabulary. Passes: see {@link topkPasses}.
 *
 * @example
 * ```ts ignore
 * topk(ctx, pass, { logits, out, V: 151936, k: 40 });
 * // read back: new Float32Array(buf)[2i] = value, new Uint32Array(buf)[2i + 1] = index
 * ```
 */
export const topk: Launcher<TopkArgs> = (ctx, pass, a) => {
  op.checkCount("topk", "V", a.V);
  op.checkCount("topk", "k", a.k);
  if (a.k > TOPK_MAX) {
    throw new UsageError(`${op.FILE}: topk: k = ${a.k} exceeds ${TOPK_MAX}`);
  }
  const out = op.take(a.out, a.k * 8, "topk out");
  let src = op.take(a.logits, a.V * 4, "topk logits");
  op.noOverlap("topk", out, { logits: src });
  const passes = topkPasses(a.V, a.k);
  let n = a.V;
  for (let i = 0; i < passes.length; i++) {
    const lists = passes[i];
    const dst = lists === 1
      ? out
      : op.scratch(ctx, `ops.topk.candidates${i % 2}`, lists * a.k * 8);
    const p = op.pipeline(ctx, "topk", () => ({
      inputs: [{ name: "src", type: "u32" }],
      output: { name: "dst", type: "u32" },
      params: PARAMS,
      body,
    }), { K: a.k, MODE: i === 0 ? 0 : 1 });
    ctx.dispatch(pass, p, [
      src,
      dst,
      ctx.params(packFields(PARAMS, { n, lists })),
    ], Math.ceil(lists / 64));
    src = dst;
    n = lists * a.k;
  }
};
