/**
 * `moeScatter` (kernels/moe_scatter.wgsl): adds one expert's output over its
 * gathered rows back into the rows of the tokens that chose it.
 *
 * @module
 */
import type { Launcher } from "../_context.ts";
import type { BufferRef } from "../pipelines.ts";
import { fields, packFields } from "../_wgsl.ts";
import * as op from "./_shared.ts";
import body from "../../../kernels/moe_scatter.wgsl" with { type: "text" };

/** Arguments of {@link moeScatter}. */
export interface MoeScatterArgs {
  /** f32 [n, D]: the expert's output over its n gathered rows. */
  y: BufferRef;
  /** n pairs (u32 token row, f32 weight as bits). */
  sel: BufferRef;
  /** f32 [T, D]: the accumulator (added to). */
  acc: BufferRef;
  /** Gathered rows. */
  n: number;
  /** Row width. */
  D: number;
}

const PARAMS = fields("n D");

/**
 * acc[sel[j].row, i] += sel[j].weight · y[j, i] for every gathered row j
 * (rows distinct).
 *
 * @example
 * ```ts ignore
 * moeScatter(ctx, pass, { y, sel, acc, n: 3, D: 4096 });
 * ```
 */
export const moeScatter: Launcher<MoeScatterArgs> = (ctx, pass, a) => {
  op.checkCount("moeScatter", "n", a.n);
  op.checkCount("moeScatter", "D", a.D);
  const y = op.take(a.y, a.n * a.D * 4, "moeScatter y");
  const sel = op.take(a.sel, a.n * 8, "moeScatter sel");
  const acc = op.take(a.acc, a.acc.size, "moeScatter acc");
  op.noOverlap("moeScatter", acc, { y, sel });
  const p = op.pipeline(ctx, "moeScatter", () => ({
    inputs: [{ name: "y", type: "f32" }, { name: "sel", type: "u32" }],
    output: { name: "acc", type: "f32" },
    params: PARAMS,
    body,
  }));
  const params = ctx.params(packFields(PARAMS, a));
  ctx.dispatch(pass, p, [y, sel, acc, params], Math.ceil(a.n * a.D / 256));
};
