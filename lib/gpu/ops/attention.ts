/**
 * `attention` (kernels/attention_scores.wgsl, attention_values.wgsl,
 * attention_merge.wgsl): causal grouped-query attention over the KV cache.
 *
 * @module
 */
import { UnsupportedError, UsageError } from "../../errors.ts";
import type { KernelContext } from "../_context.ts";
import type { KernelFamily } from "../family.ts";
import type { BufferRef } from "../pipelines.ts";
import { type Fields, fields, type KernelSpec, packFields } from "../_wgsl.ts";
import {
  checkCount,
  FILE,
  noOverlap,
  pipeline,
  scratch,
  take,
} from "./_shared.ts";
import scoresSrc from "../../../kernels/attention_scores.wgsl" with {
  type: "text",
};
import valuesSrc from "../../../kernels/attention_values.wgsl" with {
  type: "text",
};
import mergeSrc from "../../../kernels/attention_merge.wgsl" with {
  type: "text",
};

/** Arguments of `Kernels.attention` (causal, GQA). */
export interface AttentionArgs {
  /** f32 [T, nHeads·headDim]. */
  q: BufferRef;
  /** f32 [maxSeq, nKvHeads·headDim]. */
  kCache: BufferRef;
  /** f32 [maxSeq, nKvHeads·headDim]. */
  vCache: BufferRef;
  /** f32 [T, nHeads·headDim]. */
  out: BufferRef;
  /** Query tokens. */
  T: number;
  /** Position of the first query token (the cache holds 0..pos0+T-1). */
  pos0: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads (GQA). */
  nKvHeads: number;
  /** Head dimension. */
  headDim: number;
  /** Softmax scale (usually 1/sqrt(headDim)). */
  scale: number;
}

const SHAPE = "t0 pos0 nHeads nKv group qpk ctxMax";
const SCORES = fields(`${SHAPE} scale:f32`);
const VALUES = fields(`${SHAPE} nSplit splitLen mlOffset4`);
const MERGE = fields("rows nSplit mlOffset rowOffset");

/** A pass over activations: vec4 views of `inputs` and `output` (the merge pass: f32). */
function passSpec(
  inputs: string[],
  output: string,
  params: Fields,
  body: string,
  type = "vec4<f32>",
): KernelSpec {
  return {
    inputs: inputs.map((name) => ({ name, type })),
    output: { name: output, type },
    params,
    body,
  };
}

/** How {@link attention} splits its work (exported for tests and benchmarks). */
export interface AttentionPlan {
  /** Query heads per invocation (1, 2 or 4, a "quad"): they share each K/V read. */
  headsPerInvocation: number;
  /** Quads per kv head: ceil((nHeads / nKvHeads) / headsPerInvocation). */
  quadsPerKvHead: number;
  /** Position splits of the softmax·V pass; > 1 adds the merge pass (flash-decoding). */
  nSplit: number;
  /** Positions per split. */
  splitLen: number;
  /** Tokens per round of dispatches (bounds the scores scratch). */
  tokensPerChunk: number;
}

/** Upper bound of the attention scratch buffers (scores, partials). */
const ATTENTION_SCRATCH = 64 * 1024 * 1024;

/**
 * Split-K tuning per kernel family: softmax·V invocations to aim for, and the
 * fewest positions per split. A CPU adapter has a few cores (more splits only
 * add merge work); a GPU needs tens of thousands of invocations in flight, so
 * a decode step (T = 1, a few dozen heads) is split into many short ranges
 * across workgroups, merged by attention_merge.
 */
const SPLIT = {
  cpu: { invocations: 8192, minLen: 256 },
  gpu: { invocations: 65536, minLen: 64 },
} as const;

/**
 * Chooses the attention work split: query heads per invocation from the GQA
 * group size; position splits when there are too few (token, head, dims)
 * invocations to fill the device and the context is long (CPU family: aim at
 * 8192 invocations, ≥ 256 positions per split; GPU family: 65,536 and ≥ 64);
 * tokens per chunk so the scores fit `maxScratch` bytes. `splitLen` forces
 * the positions per split.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { attentionPlan } from "./attention.ts";
 * const plan = attentionPlan({ T: 1, pos0: 4095, nHeads: 32, nKvHeads: 8, headDim: 128 });
 * assert.deepStrictEqual([plan.nSplit, plan.splitLen], [16, 256]);
 * const gpu = attentionPlan({ T: 1, pos0: 4095, nHeads: 32, nKvHeads: 8, headDim: 128, family: "gpu" });
 * assert.deepStrictEqual([gpu.nSplit, gpu.splitLen], [64, 64]);
 * ```
 */
export function attentionPlan(o: {
  T: number;
  pos0: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  maxScratch?: number;
  splitLen?: number;
  family?: KernelFamily;
}): AttentionPlan {
  const group = o.nHeads / o.nKvHeads;
  if (!Number.isInteger(group) || group < 1) {
    throw new UsageError(
      `${FILE}: attention: nHeads ${o.nHeads} is not a multiple of nKvHeads ${o.nKvHeads}`,
    );
  }
  if (o.headDim % 4 !== 0) {
    throw new UnsupportedError(
      FILE,
      `attention: headDim ${o.headDim} is not a multiple of 4`,
    );
  }
  const maxScratch = o.maxScratch ?? ATTENTION_SCRATCH;
  const hpi = group >= 3 ? 4 : group;
  const qpk = Math.ceil(group / hpi);
  const nQuads = o.nKvHeads * qpk;
  const ctxMax = o.pos0 + o.T;
  let nSplit: number;
  if (o.splitLen !== undefined) {
    nSplit = Math.ceil(ctxMax / Math.max(1, o.splitLen));
  } else {
    const base = o.T * nQuads * (o.headDim / 4); // softmax·V invocations without splitting
    const tune = SPLIT[o.family ?? "cpu"];
    nSplit = Math.max(
      1,
      Math.min(
        Math.ceil(tune.invocations / base),
        Math.floor(ctxMax / tune.minLen),
      ),
    );
  }
  const splitLen = Math.ceil(ctxMax / nSplit);
  nSplit = Math.ceil(ctxMax / splitLen);
  const perToken = Math.max(
    ctxMax * nQuads * 16, // scores
    nSplit > 1 ? o.nHeads * nSplit * (o.headDim + 4) * 4 : 0, // partials
  );
  const tokensPerChunk = Math.max(
    1,
    Math.min(o.T, Math.floor(maxScratch / perToken)),
  );
  return {
    headsPerInvocation: hpi,
    quadsPerKvHead: qpk,
    nSplit,
    splitLen,
    tokensPerChunk,
  };
}

/**
 * Causal grouped-query attention over the KV cache: out[t, h] =
 * softmax(scale · q[t, h] · K[0..pos0+t, kv(h)]ᵀ) · V[0..pos0+t, kv(h)].
 * q, out: [T, nHeads·headDim]; kCache, vCache: [≥ pos0+T, nKvHeads·headDim]
 * holding positions 0..pos0+T-1; headDim a multiple of 4. Three passes
 * (kernels/attention_scores, attention_values, attention_merge; see
 * {@link attentionPlan}); `splitLen` forces the positions per split and
 * `maxScratch` lowers the scratch bound (tests).
 *
 * @example
 * ```ts ignore
 * attention(ctx, pass, { q, kCache, vCache, out, T: 1, pos0: 99, nHeads: 32, nKvHeads: 8,
 *   headDim: 128, scale: 1 / Math.sqrt(128) });
 * ```
 */
export function attention(
  ctx: KernelContext,
  pass: GPUComputePassEncoder,
  a: AttentionArgs & { splitLen?: number; maxScratch?: number },
): void {
  checkCount("attention", "T", a.T);
  checkCount("attention", "pos0", a.pos0, 0);
  checkCount("attention", "headDim", a.headDim);
  const maxScratch = Math.min(
    a.maxScratch ?? ATTENTION_SCRATCH,
    ctx.gpu.limits.maxStorageBufferBindingSize,
  );
  const plan = attentionPlan({ ...a, maxScratch, family: ctx.gpu.kernels });
  const hd = a.headDim;
  const qBytes = a.T * a.nHeads * hd * 4;
  const kvBytes = (a.pos0 + a.T) * a.nKvHeads * hd * 4;
  const q = take(a.q, qBytes, "attention q");
  const k = take(a.kCache, kvBytes, "attention kCache");
  const v = take(a.vCache, kvBytes, "attention vCache");
  const out = take(a.out, qBytes, "attention out");
  noOverlap("attention", out, { q, kCache: k, vCache: v });
  const group = a.nHeads / a.nKvHeads;
  const { headsPerInvocation: HPI, quadsPerKvHead: qpk, nSplit, splitLen } =
    plan;
  const nQuads = a.nKvHeads * qpk;
  const scoresPipe = pipeline(
    ctx,
    "attention_scores",
    () => passSpec(["q", "kc"], "scores", SCORES, scoresSrc),
    { HD: hd, HPI },
  );
  const valuesPipe = pipeline(
    ctx,
    "attention_values",
    () => passSpec(["scores", "vc"], "out", VALUES, valuesSrc),
    { HD: hd, HPI },
  );
  const mergePipe = nSplit > 1
    ? pipeline(
      ctx,
      "attention_merge",
      () => passSpec(["part"], "out", MERGE, mergeSrc, "f32"),
      { HD: hd },
    )
    : null;
  const maxZ = ctx.gpu.limits.maxComputeWorkgroupsPerDimension;
  const tc = Math.min(plan.tokensPerChunk, maxZ);
  for (let t0 = 0; t0 < a.T; t0 += tc) {
    const T = Math.min(tc, a.T - t0);
    const ctxC = a.pos0 + t0 + T; // positions seen by the last token of this chunk
    const scores = scratch(ctx, "ops.attention.scores", T * ctxC * nQuads * 16);
    const shape = {
      t0,
      pos0: a.pos0,
      nHeads: a.nHeads,
      nKv: a.nKvHeads,
      group,
      qpk,
      ctxMax: ctxC,
    };
    const sp = ctx.params(packFields(SCORES, { ...shape, scale: a.scale }));
    ctx.dispatch(
      pass,
      scoresPipe,
      [q, k, scores, sp],
      nQuads * Math.ceil(ctxC / 256),
      T,
    );
    if (!mergePipe) {
      const params = ctx.params(
        packFields(VALUES, { ...shape, nSplit: 1, splitLen, mlOffset4: 0 }),
      );
      ctx.dispatch(
        pass,
        valuesPipe,
        [scores, v, out, params],
        nQuads * nSplit,
        T,
      );
      continue;
    }
    const rows = T * a.nHeads;
    const mlOffset = rows * nSplit * hd; // floats, a multiple of 4
    const part = scratch(
      ctx,
      "ops.attention.partials",
      (mlOffset + rows * nSplit * 4) * 4,
    );
    const params = ctx.params(
      packFields(VALUES, {
        ...shape,
        nSplit,
        splitLen,
        mlOffset4: mlOffset / 4,
      }),
    );
    ctx.dispatch(
      pass,
      valuesPipe,
      [scores, v, part, params],
      nQuads * nSplit,
      T,
    );
    const mp = ctx.params(
      packFields(MERGE, { rows, nSplit, mlOffset, rowOffset: t0 * a.nHeads }),
    );
    ctx.dispatch(pass, mergePipe, [part, out, mp], rows);
  }
}
