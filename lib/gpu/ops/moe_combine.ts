/**
 * `moeCombine` (kernels/moe_combine.wgsl): adds one expert's output, scaled
 * per token, into the mixture-of-experts accumulator.
 *
 * @module
 */
import type { Launcher } from "../_context.ts";
import type { BufferRef } from "../pipelines.ts";
import { fields, packFields } from "../_wgsl.ts";
import * as op from "./_shared.ts";
import body from "../../../kernels/moe_combine.wgsl" with { type: "text" };

/** Arguments of {@link moeCombine}. */
export interface MoeCombineArgs {
  /** f32 [T, D]: one expert's output. */
  y: BufferRef;
  /** f32 [T, stride]: the per-token coefficients (column `col`). */
  coef: BufferRef;
  /** f32 [T, D]: the accumulator (added to). */
  acc: BufferRef;
  /** Tokens. */
  T: number;
  /** Row width. */
  D: number;
  /** Row width of `coef`. */
  stride: number;
  /** The column of `coef` to use. */
  col: number;
  /** Use sigmoid(coef) (a shared expert's gate). */
  sigmoid: boolean;
}

const PARAMS = fields("n D stride col sigmoid");

/**
 * acc[t, i] += c(t) · y[t, i], c(t) = coef[t, col] or sigmoid(coef[t, col]).
 *
 * @example
 * ```ts ignore
 * moeCombine(ctx, pass, { y, coef: route, acc, T, D, stride: E, col: e, sigmoid: false });
 * ```
 */
export const moeCombine: Launcher<MoeCombineArgs> = (ctx, pass, a) => {
  op.checkCount("moeCombine", "T", a.T);
  op.checkCount("moeCombine", "D", a.D);
  op.checkCount("moeCombine", "stride", a.stride);
  op.checkCount("moeCombine", "col", a.col, 0);
  const n = a.T * a.D;
  const y = op.take(a.y, n * 4, "moeCombine y");
  const coef = op.take(a.coef, a.T * a.stride * 4, "moeCombine coef");
  const acc = op.take(a.acc, n * 4, "moeCombine acc");
  op.noOverlap("moeCombine", acc, { y, coef });
  const p = op.pipeline(ctx, "moeCombine", () => ({
    inputs: [{ name: "y", type: "f32" }, { name: "coef", type: "f32" }],
    output: { name: "acc", type: "f32" },
    params: PARAMS,
    body,
  }));
  const params = ctx.params(
    packFields(PARAMS, { ...a, n, sigmoid: a.sigmoid ? 1 : 0 }),
  );
  ctx.dispatch(pass, p, [y, coef, acc, params], Math.ceil(n / 256));
};
