/**
 * The `Kernels` façade: every op of a decoder layer as a method that records
 * dispatches into a compute pass. Each op's launcher and argument type live
 * in one file of lib/gpu/ops/ next to its kernel; all are
 * `(ctx, pass, args) => void` launchers sharing a {@link KernelContext}.
 *
 * Per forward pass: `kernels.reset()`, record into passes, `kernels.submit([...])`
 * (which uploads the pass's Params once, then submits), read results back once.
 *
 * @module
 */
import { GpuError } from "../errors.ts";
import type { Gpu, KernelFamily } from "./device.ts";
import {
  type GpuWeight,
  type GpuWeightPart,
  KernelContext,
} from "./_context.ts";
import {
  add,
  type AddArgs,
  attention,
  type AttentionArgs,
  matmul,
  type MatmulArgs,
  rmsnorm,
  type RmsnormArgs,
  rope,
  type RopeArgs,
  siluMul,
  type SiluMulArgs,
  topk,
  type TopkArgs,
} from "./ops/mod.ts";
import type { BufferRef } from "./pipelines.ts";
import { encoding, type EncodingName } from "../quant/encoding.ts";

export type {
  AddArgs,
  AttentionArgs,
  MatmulArgs,
  RmsnormArgs,
  RopeArgs,
  SiluMulArgs,
  TopkArgs,
} from "./ops/mod.ts";
export type { GpuWeight, GpuWeightPart, WeightDtype } from "./_context.ts";
export { KernelContext } from "./_context.ts";
export type { EncodingName } from "../quant/encoding.ts";
export type { BufferRef } from "./pipelines.ts";

/**
 * Records the kernels of a decoder layer into compute passes.
 *
 * @example
 * ```ts ignore
 * import { requestGpu } from "./device.ts";
 * import { Kernels, uploadWeight } from "./kernels.ts";
 * const gpu = await requestGpu();
 * const k = await Kernels.create(gpu);
 * const w = uploadWeight(gpu, { dtype: "f32", rows: 8, cols: 4, data: new Uint8Array(128) });
 * k.reset();
 * const enc = gpu.device.createCommandEncoder();
 * const pass = enc.beginComputePass();
 * k.matmul(pass, { x, w, out, T: 1 });
 * pass.end();
 * k.submit([enc.finish()]);
 * ```
 */
export class Kernels {
  /** Context shared by the launchers (device, pipeline cache, Params arena). */
  readonly ctx: KernelContext;

  private constructor(ctx: KernelContext) {
    this.ctx = ctx;
  }

  /** Creates the façade for `gpu`. */
  static create(gpu: Gpu): Promise<Kernels> {
    return Promise.resolve(new Kernels(new KernelContext(gpu)));
  }

  /** The GPU. */
  get gpu(): Gpu {
    return this.ctx.gpu;
  }

  /** The kernel family the ops use (`gpu.kernels`, see lib/gpu/family.ts). */
  get family(): KernelFamily {
    return this.ctx.gpu.kernels;
  }

  /** Rewinds the per-pass Params arena: call once per forward pass before recording. */
  reset(): void {
    this.ctx.reset();
  }

  /** Uploads the Params recorded since the last flush (call before queue.submit). */
  flush(): void {
    this.ctx.flush();
  }

  /** {@link Kernels.flush} then `queue.submit(buffers)`. */
  submit(buffers: GPUCommandBuffer[]): void {
    this.ctx.flush();
    this.ctx.device.queue.submit(buffers);
  }

  /** out [T, N] = x [T, K] · Wᵀ (+ bias); T = 1 uses the matvec kernels. */
  matmul(pass: GPUComputePassEncoder, a: MatmulArgs): void {
    matmul(this.ctx, pass, a);
  }

  /** RMSNorm of each of `rows` rows of length `dim`. */
  rmsnorm(pass: GPUComputePassEncoder, a: RmsnormArgs): void {
    rmsnorm(this.ctx, pass, a);
  }

  /** Rotate-half RoPE in place. */
  rope(pass: GPUComputePassEncoder, a: RopeArgs): void {
    rope(this.ctx, pass, a);
  }

  /** Causal grouped-query attention over the KV cache. */
  attention(pass: GPUComputePassEncoder, a: AttentionArgs): void {
    attention(this.ctx, pass, a);
  }

  /** out = silu(gate) · up. */
  siluMul(pass: GPUComputePassEncoder, a: SiluMulArgs): void {
    siluMul(this.ctx, pass, a);
  }

  /** out = x + y. */
  add(pass: GPUComputePassEncoder, a: AddArgs): void {
    add(this.ctx, pass, a);
  }

  /** Top-k (value, index) pairs of the logits. */
  topk(pass: GPUComputePassEncoder, a: TopkArgs): void {
    topk(this.ctx, pass, a);
  }
}

/**
 * Bytes of one row of a weight of `dtype` with `cols` columns: [data, scales]
 * (the encoding's `rowBytes`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { weightRowBytes } from "./kernels.ts";
 * assert.deepEqual(weightRowBytes("f32", 3), [12, 0]);
 * ```
 */
export function weightRowBytes(
  dtype: EncodingName,
  cols: number,
): [number, number] {
  return encoding(dtype).rowBytes(cols);
}

/** Input of {@link uploadWeight}. */
export interface UploadWeightOptions {
  /** Storage type. */
  dtype: EncodingName;
  /** N. */
  rows: number;
  /** K. */
  cols: number;
  /** Row-major bytes exactly as in the shard file. */
  data: Uint8Array | Int8Array | Uint16Array | Float32Array;
  /** Encodings with a scales tensor: f16 scales [rows, nb]. */
  scales?: Uint8Array | Uint16Array;
  /** Largest part in bytes (default and cap: maxStorageBufferBindingSize). */
  maxPartBytes?: number;
  /** Buffer label prefix. */
  label?: string;
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function createFilled(
  device: GPUDevice,
  bytes: Uint8Array,
  label: string,
): BufferRef {
  const size = Math.max(16, Math.ceil(bytes.byteLength / 16) * 16);
  const buffer = device.createBuffer({
    label,
    size,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST |
      GPUBufferUsage.COPY_SRC,
    mappedAtCreation: true,
  });
  new Uint8Array(buffer.getMappedRange()).set(bytes);
  buffer.unmap();
  return { buffer, offset: 0, size };
}

/**
 * Row ranges for a weight so that each part's data and scales fit in
 * `maxBytes` (one storage binding).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { planWeightParts } from "./kernels.ts";
 * assert.deepStrictEqual(planWeightParts("f32", 10, 4, 64), [[0, 4], [4, 4], [8, 2]]);
 * ```
 */
export function planWeightParts(
  dtype: EncodingName,
  rows: number,
  cols: number,
  maxBytes: number,
): [number, number][] {
  const [rb, sb] = weightRowBytes(dtype, cols);
  // keep each part a multiple of 16 bytes so vec4 loads never straddle a part
  const per = Math.floor(maxBytes / Math.max(rb, sb, 1));
  if (per < 1) {
    throw new GpuError(
      `a ${dtype} row of ${cols} columns exceeds the ${maxBytes}-byte storage binding`,
    );
  }
  const out: [number, number][] = [];
  for (let r = 0; r < rows; r += per) out.push([r, Math.min(per, rows - r)]);
  return out;
}

/**
 * Uploads a weight (shard bytes) into one buffer per part and returns its
 * {@link GpuWeight}.
 *
 * @example
 * ```ts ignore
 * import { uploadWeight } from "./kernels.ts";
 * const w = uploadWeight(gpu, { dtype: "bf16", rows: 64, cols: 100, data });
 * console.log(w.parts.length); // 1
 * ```
 */
export function uploadWeight(gpu: Gpu, o: UploadWeightOptions): GpuWeight {
  const [rb, sb] = weightRowBytes(o.dtype, o.cols);
  const data = bytesOf(o.data);
  if (data.byteLength !== rb * o.rows) {
    throw new GpuError(
      `uploadWeight: ${o.dtype} [${o.rows}, ${o.cols}] needs ${
        rb * o.rows
      } bytes, got ${data.byteLength}`,
    );
  }
  const scales = o.scales ? bytesOf(o.scales) : undefined;
  if (sb > 0 && (!scales || scales.byteLength !== sb * o.rows)) {
    throw new GpuError(
      `uploadWeight: ${o.dtype} [${o.rows}, ${o.cols}] needs ${
        sb * o.rows
      } bytes of scales`,
    );
  }
  const max = Math.min(
    o.maxPartBytes ?? Infinity,
    gpu.limits.maxStorageBufferBindingSize,
  );
  const label = o.label ?? "weight";
  const parts: GpuWeightPart[] = planWeightParts(o.dtype, o.rows, o.cols, max)
    .map(([r0, n], i) => ({
      rowStart: r0,
      rows: n,
      data: createFilled(
        gpu.device,
        data.subarray(r0 * rb, (r0 + n) * rb),
        `${label}.${i}`,
      ),
      scales: scales
        ? createFilled(
          gpu.device,
          scales.subarray(r0 * sb, (r0 + n) * sb),
          `${label}.${i}.scales`,
        )
        : undefined,
    }));
  return { dtype: o.dtype, rows: o.rows, cols: o.cols, parts };
}

/**
 * Destroys the buffers of a weight made by {@link uploadWeight}.
 *
 * @example
 * ```ts ignore
 * destroyWeight(w);
 * ```
 */
export function destroyWeight(w: GpuWeight): void {
  for (const p of w.parts) {
    p.data.buffer.destroy();
    p.scales?.buffer.destroy();
  }
}
