/**
 * What every kernel launcher gets: {@link KernelContext} (device, pipeline
 * cache, per-pass Params arena, bind-group and dispatch helpers) and the
 * argument types of the {@link Kernels} methods.
 *
 * Kernel launchers are plain functions `(ctx, pass, args) => void`:
 * ```ts ignore
 * import src from "../../kernels/add.wgsl" with { type: "text" };
 * export function add(ctx: KernelContext, pass: GPUComputePassEncoder, a: AddArgs): void {
 *   const p = ctx.pipeline("add", src, { WG: 64 });
 *   const params = ctx.params(packParams("u", a.n));
 *   ctx.dispatch(pass, p, [a.x, a.y, a.out, params], Math.ceil(a.n / 64));
 * }
 * ```
 * WGSL side: `@group(0)` bindings 0..n-1 in the order inputs, output, params
 * (the `var<uniform> params: Params` is always the last binding). When a
 * dispatch may exceed `maxComputeWorkgroupsPerDimension`, {@link
 * KernelContext.dispatch} folds it into 2-D; compute the linear workgroup
 * index as `wid.x + wid.y * nwg.x` (`@builtin(num_workgroups) nwg`) and return
 * when it is ≥ the real count.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import type { EncodingName } from "../quant/encoding.ts";
import {
  type BufferRef,
  type OverrideConstants,
  ParamsArena,
  PipelineCache,
} from "./pipelines.ts";

export type { BufferRef } from "./pipelines.ts";

/**
 * Weight storage types the matmul kernels read: the encodings of
 * lib/quant/encoding.ts.
 *
 * @deprecated Use {@link EncodingName}.
 */
export type WeightDtype = EncodingName;

/** One row range of a weight, within maxStorageBufferBindingSize. */
export interface GpuWeightPart {
  /** First row (output feature) of this part. */
  rowStart: number;
  /** Rows in this part. */
  rows: number;
  /** Row-major data of rows rowStart..rowStart+rows-1 (shard-file bytes). */
  data: BufferRef;
  /** Encodings with a scales tensor: f16 scales [rows, nb]. */
  scales?: BufferRef;
}

/** A 2-D weight W [rows = N, cols = K] on the GPU, exactly the shard bytes. */
export interface GpuWeight {
  /** Storage type. */
  dtype: EncodingName;
  /** N (output features). */
  rows: number;
  /** K (input features). */
  cols: number;
  /** Row ranges covering 0..rows-1 in order. */
  parts: GpuWeightPart[];
}

/** Arguments of `Kernels.matmul`: out [T, N] = x [T, K] · Wᵀ (+ bias). */
export interface MatmulArgs {
  /** f32 [T, K]. */
  x: BufferRef;
  /** Weight [N, K]. */
  w: GpuWeight;
  /** Optional f32 [N] added to every output row. */
  bias?: BufferRef;
  /** f32 [T, N]. */
  out: BufferRef;
  /** Tokens (rows of x). T ≤ 16 uses the matvec kernels. */
  T: number;
}

/** Arguments of `Kernels.rmsnorm` (per row; per head with rows = T·nHeads, dim = headDim). */
export interface RmsnormArgs {
  /** f32 [rows, dim]. */
  x: BufferRef;
  /** f32 [dim]. */
  weight: BufferRef;
  /** f32 [rows, dim] (may alias x where the kernel allows). */
  out: BufferRef;
  /** Rows to normalize. */
  rows: number;
  /** Row length. */
  dim: number;
  /** Epsilon inside the square root. */
  eps: number;
}

/** Arguments of `Kernels.rope` (rotate-half, in place). */
export interface RopeArgs {
  /** f32 [T, nHeads·headDim], rotated in place. */
  x: BufferRef;
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
  /** f32 [rotaryDim/2] inverse frequencies. */
  invFreq: BufferRef;
}

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

/** Arguments of `Kernels.siluMul`: out = silu(gate) * up. */
export interface SiluMulArgs {
  /** f32 [n]. */
  gate: BufferRef;
  /** f32 [n]. */
  up: BufferRef;
  /** f32 [n]. */
  out: BufferRef;
  /** Elements. */
  n: number;
}

/** Arguments of `Kernels.add`: out = x + y (out may alias x). */
export interface AddArgs {
  /** f32 [n]. */
  x: BufferRef;
  /** f32 [n]. */
  y: BufferRef;
  /** f32 [n] (may alias x). */
  out: BufferRef;
  /** Elements. */
  n: number;
}

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

/** A kernel launcher. */
export type Launcher<A> = (
  ctx: KernelContext,
  pass: GPUComputePassEncoder,
  args: A,
) => void;

/** What `lib/gpu/_ops.ts` (H-ops) exports; `Kernels` delegates to it. */
export interface OpsModule {
  rmsnorm: Launcher<RmsnormArgs>;
  rope: Launcher<RopeArgs>;
  attention: Launcher<AttentionArgs>;
  siluMul: Launcher<SiluMulArgs>;
  add: Launcher<AddArgs>;
  topk: Launcher<TopkArgs>;
}

/**
 * Device, pipeline cache, Params arena and helpers shared by all launchers.
 *
 * @example
 * ```ts ignore
 * const ctx = new KernelContext(gpu);
 * ctx.reset();
 * const p = ctx.pipeline("add", src, { WG: 64 });
 * ctx.dispatch(pass, p, [x, y, out, ctx.params(packParams("u", n))], Math.ceil(n / 64));
 * ctx.flush();
 * ```
 */
export class KernelContext {
  /** The GPU. */
  readonly gpu: Gpu;
  /** Shorthand for gpu.device. */
  readonly device: GPUDevice;
  /** Pipeline cache. */
  readonly pipelines: PipelineCache;
  /** Per-pass Params arena. */
  readonly arena: ParamsArena;
  /** Cache for tuning decisions or anything else a launcher wants to remember. */
  readonly memo: Map<string, unknown> = new Map();

  /** Creates the context for `gpu`. */
  constructor(gpu: Gpu) {
    this.gpu = gpu;
    this.device = gpu.device;
    this.pipelines = new PipelineCache(gpu.device);
    this.arena = new ParamsArena(gpu.device);
  }

  /** The pipeline for kernel `name` (WGSL `code`, entry `main`) with override `constants`. */
  pipeline(
    name: string,
    code: string,
    constants?: OverrideConstants,
  ): GPUComputePipeline {
    return this.pipelines.get(name, code, constants);
  }

  /** A fresh 256-byte uniform slice holding `data` (see `packParams`). */
  params(data: ArrayBufferView | ArrayBuffer): BufferRef {
    return this.arena.alloc(data);
  }

  /** Bind group 0 of `pipeline` with binding i = refs[i]. */
  bindGroup(pipeline: GPUComputePipeline, refs: BufferRef[]): GPUBindGroup {
    return this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: refs.map((r, i) => ({
        binding: i,
        resource: { buffer: r.buffer, offset: r.offset, size: r.size },
      })),
    });
  }

  /**
   * Records one dispatch of `groups` workgroups (folded into x·y when above the
   * per-dimension limit; the kernel must then guard its linear index) with
   * binding i = refs[i]. `groupsZ` is a second, independent dimension (e.g.
   * tokens), always dispatched in z. WGSL: linear index `wid.x + wid.y * nwg.x`,
   * second index `wid.z`.
   */
  dispatch(
    pass: GPUComputePassEncoder,
    pipeline: GPUComputePipeline,
    refs: BufferRef[],
    groups: number,
    groupsZ = 1,
  ): void {
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, this.bindGroup(pipeline, refs));
    const [x, y] = foldWorkgroups(
      groups,
      this.gpu.limits.maxComputeWorkgroupsPerDimension,
    );
    pass.dispatchWorkgroups(x, y, groupsZ);
  }

  /** Rewinds the Params arena: once per forward pass, before recording. */
  reset(): void {
    this.arena.reset();
  }

  /** Uploads the Params written since the last flush: before each queue.submit. */
  flush(): void {
    this.arena.flush();
  }
}

/**
 * Splits `groups` workgroups into [x, y] with x ≤ `max` and x·y ≥ groups
 * (minimal waste).
 *
 * @example
 * ```ts
 * import { foldWorkgroups } from "./_context.ts";
 * console.log(foldWorkgroups(100, 65535)); // [100, 1]
 * console.log(foldWorkgroups(70000, 65535)); // [35000, 2]
 * ```
 */
export function foldWorkgroups(groups: number, max: number): [number, number] {
  if (groups <= max) return [Math.max(1, groups), 1];
  const y = Math.ceil(groups / max);
  return [Math.ceil(groups / y), y];
}
