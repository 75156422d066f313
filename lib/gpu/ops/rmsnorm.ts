/**
 * `rmsnorm` (kernels/rmsnorm.wgsl): per row, also the per-head q/k norm.
 *
 * @module
 */
import type { Launcher } from "../_context.ts";
import type { BufferRef } from "../pipelines.ts";
import { fields, packFields } from "../_wgsl.ts";
import { checkCount, noOverlap, pipeline, relation, take } from "./_shared.ts";
import body from "../../../kernels/rmsnorm.wgsl" with { type: "text" };

/** Arguments of `Kernels.rmsnorm` (per row; per head with rows = T·nHeads, dim = headDim). */
export interface RmsnormArgs {
  /** f32 [rows, dim]. */
  x: BufferRef;
  /** f32 [dim]. */
  weight: BufferRef;
  /** f32 [rows, dim] (may be exactly x: in place). */
  out: BufferRef;
  /** Rows to normalize. */
  rows: number;
  /** Row length. */
  dim: number;
  /** Epsilon inside the square root. */
  eps: number;
}

const PARAMS = fields("rows dim eps:f32");

/**
 * RMSNorm of `rows` rows of length `dim`: out = x / sqrt(mean(x²) + eps) · weight.
 * Also the per-head q/k norm of Qwen3 (rows = T·nHeads, dim = headDim).
 * `out` may be exactly `x` (in place).
 *
 * @example
 * ```ts ignore
 * rmsnorm(ctx, pass, { x, weight, out, rows: T, dim: 4096, eps: 1e-6 });
 * ```
 */
export const rmsnorm: Launcher<RmsnormArgs> = (ctx, pass, a) => {
  checkCount("rmsnorm", "rows", a.rows);
  checkCount("rmsnorm", "dim", a.dim);
  const bytes = a.rows * a.dim * 4;
  const weight = take(a.weight, a.dim * 4, "rmsnorm weight");
  const params = ctx.params(packFields(PARAMS, a));
  const WG = a.dim >= 1024 ? 256 : a.dim >= 256 ? 128 : 64;
  const x = take(a.x, bytes, "rmsnorm x");
  const out = take(a.out, bytes, "rmsnorm out");
  const w = { name: "weight", type: "f32", access: "read" } as const;
  if (relation(x, out) === "same") {
    const p = pipeline(ctx, "rmsnorm.inplace", () => ({
      inputs: [w],
      output: { name: "x", type: "f32" },
      params: PARAMS,
      body,
    }), { WG });
    ctx.dispatch(pass, p, [weight, x, params], a.rows);
    return;
  }
  noOverlap("rmsnorm", out, { x });
  const p = pipeline(ctx, "rmsnorm", () => ({
    inputs: [{ name: "x", type: "f32" }, w],
    output: { name: "out", type: "f32" },
    params: PARAMS,
    body,
  }), { WG });
  ctx.dispatch(pass, p, [x, weight, out, params], a.rows);
};
