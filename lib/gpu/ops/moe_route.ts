/**
 * `moeRoute` (kernels/moe_route.wgsl): the mixture-of-experts router's
 * weights from its logits.
 *
 * @module
 */
import { UsageError } from "../../errors.ts";
import type { Launcher } from "../_context.ts";
import type { BufferRef } from "../pipelines.ts";
import { fields, packFields } from "../_wgsl.ts";
import * as op from "./_shared.ts";
import body from "../../../kernels/moe_route.wgsl" with { type: "text" };

/** Arguments of {@link moeRoute}. */
export interface MoeRouteArgs {
  /** f32 [T, E]: the router's logits. */
  logits: BufferRef;
  /** f32 [T, E]: the kept experts' weights, 0 elsewhere. */
  route: BufferRef;
  /** Tokens. */
  T: number;
  /** Experts (≤ 256). */
  E: number;
  /** Experts kept per token (≤ E). */
  k: number;
  /** Divide the kept weights by their sum. */
  norm: boolean;
}

const PARAMS = fields("T E k norm");

/**
 * route[t, e] = softmax(logits[t, :])[e] for the k largest logits of token
 * t (equal logits by lower index), 0 for the others; with `norm` the kept
 * weights are divided by their sum (Mixtral; Qwen's `norm_topk_prob`).
 *
 * @example
 * ```ts ignore
 * moeRoute(ctx, pass, { logits, route, T, E: 8, k: 2, norm: true });
 * ```
 */
export const moeRoute: Launcher<MoeRouteArgs> = (ctx, pass, a) => {
  op.checkCount("moeRoute", "T", a.T);
  op.checkCount("moeRoute", "E", a.E);
  op.checkCount("moeRoute", "k", a.k);
  if (a.E > 256 || a.k > a.E) {
    throw new UsageError(
      `${op.FILE}: moeRoute: need k ≤ E ≤ 256, got k = ${a.k}, E = ${a.E}`,
    );
  }
  const bytes = a.T * a.E * 4;
  const logits = op.take(a.logits, bytes, "moeRoute logits");
  const route = op.take(a.route, bytes, "moeRoute route");
  op.noOverlap("moeRoute", route, { logits });
  const p = op.pipeline(ctx, "moeRoute", () => ({
    inputs: [{ name: "logits", type: "f32" }],
    output: { name: "route", type: "f32" },
    params: PARAMS,
    body,
  }));
  const params = ctx.params(packFields(PARAMS, { ...a, norm: a.norm ? 1 : 0 }));
  ctx.dispatch(pass, p, [logits, route, params], Math.ceil(a.T / 64));
};
