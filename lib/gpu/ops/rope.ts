/**
 * `rope` (kernels/rope.wgsl): rotary position embedding in place, in the
 * rotate-half (Hugging Face llama) or interleaved (GPT-J, GLM) pairing.
 *
 * @module
 */
import { UsageError } from "../../errors.ts";
import type { Launcher } from "../_context.ts";
import type { BufferRef } from "../pipelines.ts";
import { fields, packFields } from "../_wgsl.ts";
import { checkCount, FILE, pipeline, take } from "./_shared.ts";
import body from "../../../kernels/rope.wgsl" with { type: "text" };

/** Arguments of `Kernels.rope` (in place). */
export interface RopeArgs {
  /** f32 [T, nHeads·headDim], rotated in place. */
  x: BufferRef;
  /** f32 [rotaryDim/2] inverse frequencies. */
  invFreq: BufferRef;
  /** Tokens. */
  T: number;
  /** Heads in x. */
  nHeads: number;
  /** Head dimension. */
  headDim: number;
  /** Rotated leading dimensions of each head (partial rotary). */
  rotaryDim: number;
  /** Position of the first token. */
  pos0: number;
  /** Pairs (2i, 2i + 1) instead of (i, i + rotaryDim/2) (default false). */
  interleaved?: boolean;
}

const PARAMS = fields("total half nHeads headDim pos0 interleaved");

/**
 * RoPE in place on x [T, nHeads·headDim]: pair i of every head of token t,
 * (i, i + rotaryDim/2) in the rotate-half layout (Hugging Face llama) or
 * (2i, 2i + 1) when `interleaved` (GPT-J, GLM), is rotated by
 * (pos0 + t) · invFreq[i]; elements ≥ rotaryDim are untouched.
 *
 * @example
 * ```ts ignore
 * rope(ctx, pass, { x: q, T, nHeads: 32, headDim: 128, rotaryDim: 128, pos0, invFreq });
 * ```
 */
export const rope: Launcher<RopeArgs> = (ctx, pass, a) => {
  checkCount("rope", "T", a.T);
  checkCount("rope", "nHeads", a.nHeads);
  checkCount("rope", "pos0", a.pos0, 0);
  if (a.rotaryDim % 2 !== 0 || a.rotaryDim < 2 || a.rotaryDim > a.headDim) {
    throw new UsageError(
      `${FILE}: rope: rotaryDim ${a.rotaryDim} must be even and within headDim ${a.headDim}`,
    );
  }
  const half = a.rotaryDim / 2;
  const total = a.T * a.nHeads * half;
  const x = take(a.x, a.T * a.nHeads * a.headDim * 4, "rope x");
  const invFreq = take(a.invFreq, half * 4, "rope invFreq");
  const params = ctx.params(packFields(PARAMS, {
    ...a,
    total,
    half,
    interleaved: a.interleaved ? 1 : 0,
  }));
  const WG = 64;
  const p = pipeline(ctx, "rope", () => ({
    inputs: [{ name: "invFreq", type: "f32", access: "read" }],
    output: { name: "x", type: "f32" },
    params: PARAMS,
    body,
  }), { WG });
  ctx.dispatch(pass, p, [invFreq, x, params], Math.ceil(total / WG));
};
