/**
 * Launchers of the non-matmul kernels (RMSNorm, RoPE, attention, SiLU·up,
 * add, top-k). Each is `(ctx, pass, args) => void` and
 * records its dispatches into `pass`; `Kernels` (kernels.ts) delegates to them.
 *
 * Conventions shared by every launcher:
 * - activations are f32; a {@link BufferRef} may be larger than the shape
 *   needs, only the needed bytes are bound (a GpuError names a ref that is too
 *   small);
 * - activation bindings are `read_write` in the WGSL, so inputs and the output
 *   may be disjoint ranges of one buffer; an output that is exactly an input
 *   (same buffer and offset) selects the in-place kernel where the op allows
 *   it (rmsnorm, add, siluMul); any other overlap is a UsageError;
 * - dispatches above maxComputeWorkgroupsPerDimension are folded into 2-D by
 *   {@link KernelContext.dispatch}; tokens go in z (T ≤ that limit).
 *
 * @module
 */
import { GpuError, UnsupportedError, UsageError } from "../errors.ts";
import type {
  AddArgs,
  AttentionArgs,
  KernelContext,
  RmsnormArgs,
  RopeArgs,
  SiluMulArgs,
  TopkArgs,
} from "./_context.ts";
import { type BufferRef, packParams } from "./pipelines.ts";
import rmsnormSrc from "../../kernels/rmsnorm.wgsl" with { type: "text" };
import rmsnormInplaceSrc from "../../kernels/rmsnorm_inplace.wgsl" with {
  type: "text",
};
import ropeSrc from "../../kernels/rope.wgsl" with { type: "text" };
import attentionScoresSrc from "../../kernels/attention_scores.wgsl" with {
  type: "text",
};
import attentionValuesSrc from "../../kernels/attention_values.wgsl" with {
  type: "text",
};
import attentionMergeSrc from "../../kernels/attention_merge.wgsl" with {
  type: "text",
};
import siluMulSrc from "../../kernels/silu_mul.wgsl" with { type: "text" };
import siluMulInplaceSrc from "../../kernels/silu_mul_inplace.wgsl" with {
  type: "text",
};
import addSrc from "../../kernels/add.wgsl" with { type: "text" };
import addInplaceSrc from "../../kernels/add_inplace.wgsl" with {
  type: "text",
};
import topkSrc from "../../kernels/topk.wgsl" with { type: "text" };

const FILE = "lib/gpu/_ops.ts";

/** `bytes` of `r` from its start; GpuError when `r` is smaller. */
function take(r: BufferRef, bytes: number, what: string): BufferRef {
  const size = Math.ceil(bytes / 4) * 4;
  if (size > r.size) {
    throw new GpuError(
      `${FILE}: ${what} needs ${size} bytes but its BufferRef has ${r.size}`,
    );
  }
  return { buffer: r.buffer, offset: r.offset, size };
}

/** How two bound ranges relate: disjoint, the same range start, or partly overlapping. */
function relation(a: BufferRef, b: BufferRef): "disjoint" | "same" | "overlap" {
  if (a.buffer !== b.buffer) return "disjoint";
  if (a.offset === b.offset) return "same";
  return a.offset < b.offset + b.size && b.offset < a.offset + a.size
    ? "overlap"
    : "disjoint";
}

function noOverlap(
  op: string,
  out: BufferRef,
  inputs: Record<string, BufferRef>,
): void {
  for (const [name, r] of Object.entries(inputs)) {
    if (relation(out, r) !== "disjoint") {
      throw new UsageError(
        `${FILE}: ${op}: the output overlaps input '${name}' (not supported for this op)`,
      );
    }
  }
}

function checkCount(op: string, name: string, v: number, min = 1): void {
  if (!Number.isInteger(v) || v < min) {
    throw new UsageError(
      `${FILE}: ${op}: ${name} = ${v} is not an integer ≥ ${min}`,
    );
  }
}

/** A storage buffer kept in `ctx.memo` under `key`, grown (never shrunk) to ≥ `bytes`. */
function scratch(ctx: KernelContext, key: string, bytes: number): BufferRef {
  const size = Math.max(256, Math.ceil(bytes / 256) * 256);
  let buf = ctx.memo.get(key) as GPUBuffer | undefined;
  if (!buf || buf.size < size) {
    // The old buffer is not destroyed: work already recorded may still use it.
    buf = ctx.device.createBuffer({
      label: key,
      size: Math.max(size, Math.min((buf?.size ?? 0) * 2, 64 * 1024 * 1024)),
      usage: GPUBufferUsage.STORAGE,
    });
    ctx.memo.set(key, buf);
  }
  return { buffer: buf, offset: 0, size };
}

const ELEMENTWISE_WG = 256;

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
export function rmsnorm(
  ctx: KernelContext,
  pass: GPUComputePassEncoder,
  a: RmsnormArgs,
): void {
  checkCount("rmsnorm", "rows", a.rows);
  checkCount("rmsnorm", "dim", a.dim);
  const bytes = a.rows * a.dim * 4;
  const weight = take(a.weight, a.dim * 4, "rmsnorm weight");
  const params = ctx.params(packParams("uufu", a.rows, a.dim, a.eps, 0));
  const WG = a.dim >= 1024 ? 256 : a.dim >= 256 ? 128 : 64;
  const x = take(a.x, bytes, "rmsnorm x");
  const out = take(a.out, bytes, "rmsnorm out");
  if (relation(x, out) === "same") {
    const p = ctx.pipeline("rmsnorm_inplace", rmsnormInplaceSrc, { WG });
    ctx.dispatch(pass, p, [weight, x, params], a.rows);
    return;
  }
  noOverlap("rmsnorm", out, { x });
  const p = ctx.pipeline("rmsnorm", rmsnormSrc, { WG });
  ctx.dispatch(pass, p, [x, weight, out, params], a.rows);
}

/**
 * Rotate-half RoPE (Hugging Face layout) in place on x [T, nHeads·headDim]:
 * pair (i, i + rotaryDim/2) of every head of token t is rotated by
 * (pos0 + t) · invFreq[i]; elements ≥ rotaryDim are untouched.
 *
 * @example
 * ```ts ignore
 * rope(ctx, pass, { x: q, T, nHeads: 32, headDim: 128, rotaryDim: 128, pos0, invFreq });
 * ```
 */
export function rope(
  ctx: KernelContext,
  pass: GPUComputePassEncoder,
  a: RopeArgs,
): void {
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
  const params = ctx.params(
    packParams("uuuuuuuu", total, half, a.nHeads, a.headDim, a.pos0, 0, 0, 0),
  );
  const WG = 64;
  ctx.dispatch(pass, ctx.pipeline("rope", ropeSrc, { WG }), [
    invFreq,
    x,
    params,
  ], Math.ceil(total / WG));
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
 * Chooses the attention work split: query heads per invocation from the GQA
 * group size; position splits when there are too few (token, head, dims)
 * invocations to fill a GPU and the context is long (≥ 256 positions per
 * split); tokens per chunk so the scores fit `maxScratch` bytes. `splitLen`
 * forces the positions per split.
 *
 * @example
 * ```ts
 * import { attentionPlan } from "./_ops.ts";
 * const plan = attentionPlan({ T: 1, pos0: 4095, nHeads: 32, nKvHeads: 8, headDim: 128 });
 * console.log(plan.nSplit, plan.splitLen); // 16 256
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
    nSplit = Math.max(
      1,
      Math.min(Math.ceil(8192 / base), Math.floor(ctxMax / 256)),
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
  const plan = attentionPlan({ ...a, maxScratch });
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
  const scoresPipe = ctx.pipeline("attention_scores", attentionScoresSrc, {
    HD: hd,
    HPI,
  });
  const valuesPipe = ctx.pipeline("attention_values", attentionValuesSrc, {
    HD: hd,
    HPI,
  });
  const mergePipe = nSplit > 1
    ? ctx.pipeline("attention_merge", attentionMergeSrc, { HD: hd })
    : null;
  const maxZ = ctx.gpu.limits.maxComputeWorkgroupsPerDimension;
  const tc = Math.min(plan.tokensPerChunk, maxZ);
  for (let t0 = 0; t0 < a.T; t0 += tc) {
    const T = Math.min(tc, a.T - t0);
    const ctxC = a.pos0 + t0 + T; // positions seen by the last token of this chunk
    const scores = scratch(ctx, "ops.attention.scores", T * ctxC * nQuads * 16);
    const sp = ctx.params(
      packParams(
        "uuuuuuuf",
        t0,
        a.pos0,
        a.nHeads,
        a.nKvHeads,
        group,
        qpk,
        ctxC,
        a.scale,
      ),
    );
    ctx.dispatch(
      pass,
      scoresPipe,
      [q, k, scores, sp],
      nQuads * Math.ceil(ctxC / 256),
      T,
    );
    if (!mergePipe) {
      const params = ctx.params(
        packParams(
          "uuuuuuuuuuuu",
          t0,
          a.pos0,
          a.nHeads,
          a.nKvHeads,
          group,
          qpk,
          ctxC,
          1,
          splitLen,
          0,
          0,
          0,
        ),
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
      packParams(
        "uuuuuuuuuuuu",
        t0,
        a.pos0,
        a.nHeads,
        a.nKvHeads,
        group,
        qpk,
        ctxC,
        nSplit,
        splitLen,
        mlOffset / 4,
        0,
        0,
      ),
    );
    ctx.dispatch(
      pass,
      valuesPipe,
      [scores, v, part, params],
      nQuads * nSplit,
      T,
    );
    const mp = ctx.params(
      packParams("uuuu", rows, nSplit, mlOffset, t0 * a.nHeads),
    );
    ctx.dispatch(pass, mergePipe, [part, out, mp], rows);
  }
}

/**
 * out = silu(gate) · up elementwise over n values; out may be exactly gate or up.
 *
 * @example
 * ```ts ignore
 * siluMul(ctx, pass, { gate, up, out: gate, n: T * intermediate });
 * ```
 */
export function siluMul(
  ctx: KernelContext,
  pass: GPUComputePassEncoder,
  a: SiluMulArgs,
): void {
  checkCount("siluMul", "n", a.n);
  const bytes = a.n * 4;
  const WG = ELEMENTWISE_WG;
  const groups = Math.ceil(a.n / WG);
  const params = ctx.params(packParams("uuuu", a.n, 0, 0, 0));
  const gate = take(a.gate, bytes, "siluMul gate");
  const up = take(a.up, bytes, "siluMul up");
  const out = take(a.out, bytes, "siluMul out");
  const rg = relation(out, gate), ru = relation(out, up);
  if (rg === "same" || ru === "same") {
    if (rg === "same" && ru === "same") {
      throw new UsageError(`${FILE}: siluMul: gate and up are the same range`);
    }
    const gateInA = rg === "same" ? 1 : 0;
    noOverlap("siluMul", out, gateInA ? { up } : { gate });
    const p = ctx.pipeline("silu_mul_inplace", siluMulInplaceSrc, {
      WG,
      GATE_IN_A: gateInA,
    });
    ctx.dispatch(
      pass,
      p,
      gateInA ? [up, gate, params] : [gate, up, params],
      groups,
    );
    return;
  }
  noOverlap("siluMul", out, { gate, up });
  const p = ctx.pipeline("silu_mul", siluMulSrc, { WG });
  ctx.dispatch(pass, p, [gate, up, out, params], groups);
}

/**
 * out = x + y elementwise over n values; out may be exactly x or y (in place).
 *
 * @example
 * ```ts ignore
 * add(ctx, pass, { x: hidden, y: attnOut, out: hidden, n: T * dim });
 * ```
 */
export function add(
  ctx: KernelContext,
  pass: GPUComputePassEncoder,
  a: AddArgs,
): void {
  checkCount("add", "n", a.n);
  const bytes = a.n * 4;
  const WG = ELEMENTWISE_WG;
  const groups = Math.ceil(a.n / WG);
  const params = ctx.params(packParams("uuuu", a.n, 0, 0, 0));
  let x = take(a.x, bytes, "add x");
  let y = take(a.y, bytes, "add y");
  const out = take(a.out, bytes, "add out");
  if (relation(out, y) === "same" && relation(out, x) !== "same") {
    [x, y] = [y, x]; // x + y = y + x
  }
  if (relation(out, x) === "same") {
    if (relation(out, y) === "same") {
      // out = 2x: in place with y = x would alias the writable binding
      throw new UsageError(`${FILE}: add: x, y and out are the same range`);
    }
    noOverlap("add", out, { y });
    const p = ctx.pipeline("add_inplace", addInplaceSrc, { WG });
    ctx.dispatch(pass, p, [y, x, params], groups);
    return;
  }
  noOverlap("add", out, { x, y });
  const p = ctx.pipeline("add", addSrc, { WG });
  ctx.dispatch(pass, p, [x, y, out, params], groups);
}

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
 * import { topkPasses } from "./_ops.ts";
 * console.log(topkPasses(151936, 50)); // [149, 8, 1]
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
export function topk(
  ctx: KernelContext,
  pass: GPUComputePassEncoder,
  a: TopkArgs,
): void {
  checkCount("topk", "V", a.V);
  checkCount("topk", "k", a.k);
  if (a.k > TOPK_MAX) {
    throw new UsageError(`${FILE}: topk: k = ${a.k} exceeds ${TOPK_MAX}`);
  }
  const out = take(a.out, a.k * 8, "topk out");
  let src = take(a.logits, a.V * 4, "topk logits");
  noOverlap("topk", out, { logits: src });
  const passes = topkPasses(a.V, a.k);
  let n = a.V;
  for (let i = 0; i < passes.length; i++) {
    const lists = passes[i];
    const dst = lists === 1
      ? out
      : scratch(ctx, `ops.topk.candidates${i % 2}`, lists * a.k * 8);
    const p = ctx.pipeline("topk", topkSrc, { K: a.k, MODE: i === 0 ? 0 : 1 });
    ctx.dispatch(pass, p, [
      src,
      dst,
      ctx.params(packParams("uuuu", n, lists, 0, 0)),
    ], Math.ceil(lists / 64));
    src = dst;
    n = lists * a.k;
  }
}
