/**
 * Matmul / matvec over GGUF block weights kept exactly as in the file
 * (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q2_K..Q6_K): out [T, N] = x [T, K] ·
 * Wᵀ (+ bias), each block decoded in registers. The kernel bodies are
 * kernels/matvec_ggml.wgsl (T = 1, 4 rows per invocation) and
 * kernels/matmul_ggml.wgsl (T > 1, 4 rows × 4 tokens); the type's
 * kernels/_ggml_<type>.wgsl snippet, after kernels/_ggml_common.wgsl, supplies
 * the block size and the decode. K must be a multiple of the block size (as
 * GGUF requires). One dispatch per weight part (row range within the storage
 * binding limit).
 *
 * @module
 */
import { GpuError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import type { BufferRef, KernelContext } from "./_context.ts";
import { packParams } from "./pipelines.ts";
import { GGML_BLOCKS, type GgmlBlockType } from "../quant/ggml_blocks.ts";
import common from "../../kernels/_ggml_common.wgsl" with { type: "text" };
import matvecBody from "../../kernels/matvec_ggml.wgsl" with { type: "text" };
import matmulBody from "../../kernels/matmul_ggml.wgsl" with { type: "text" };
import q4_0 from "../../kernels/_ggml_q4_0.wgsl" with { type: "text" };
import q4_1 from "../../kernels/_ggml_q4_1.wgsl" with { type: "text" };
import q5_0 from "../../kernels/_ggml_q5_0.wgsl" with { type: "text" };
import q5_1 from "../../kernels/_ggml_q5_1.wgsl" with { type: "text" };
import q8_0 from "../../kernels/_ggml_q8_0.wgsl" with { type: "text" };
import iq4nl from "../../kernels/_ggml_iq4_nl.wgsl" with { type: "text" };
import q2k from "../../kernels/_ggml_q2_k.wgsl" with { type: "text" };
import q3k from "../../kernels/_ggml_q3_k.wgsl" with { type: "text" };
import q4k from "../../kernels/_ggml_q4_k.wgsl" with { type: "text" };
import q5k from "../../kernels/_ggml_q5_k.wgsl" with { type: "text" };
import q6k from "../../kernels/_ggml_q6_k.wgsl" with { type: "text" };

/** The WGSL decode snippet of each type. */
const SNIPPET: Record<GgmlBlockType, string> = {
  Q4_0: q4_0,
  Q4_1: q4_1,
  Q5_0: q5_0,
  Q5_1: q5_1,
  Q8_0: q8_0,
  IQ4_NL: iq4nl,
  Q2_K: q2k,
  Q3_K: q3k,
  Q4_K: q4k,
  Q5_K: q5k,
  Q6_K: q6k,
};

/** Rows per invocation (matvec and matmul) and tokens per matmul invocation, fixed in the WGSL. */
const RI = 4;
const TI = 4;
const WG = 16;

/** One row range of a GGUF block weight on the GPU. */
export interface GgmlWeightPart {
  /** First row of this part. */
  rowStart: number;
  /** Rows in this part. */
  rows: number;
  /** The rows' blocks, exactly the file's bytes. */
  data: BufferRef;
}

/** A 2-D GGUF block weight W [rows = N, cols = K] on the GPU. */
export interface GgmlGpuWeight {
  /** Block type. */
  type: GgmlBlockType;
  /** N (output features). */
  rows: number;
  /** K (input features), a multiple of the block size. */
  cols: number;
  /** Row ranges covering 0..rows-1 in order. */
  parts: GgmlWeightPart[];
}

/** Arguments of {@link matmulGgml}: out [T, N] = x [T, K] · Wᵀ (+ bias). */
export interface GgmlMatmulArgs {
  /** f32 [T, K]. */
  x: BufferRef;
  /** Weight [N, K]. */
  w: GgmlGpuWeight;
  /** Optional f32 [N]. */
  bias?: BufferRef;
  /** f32 [T, N]. */
  out: BufferRef;
  /** Tokens. */
  T: number;
}

/**
 * Bytes of one row of `cols` elements of `type`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ggmlRowBytes } from "./_matmul_ggml.ts";
 * assert.equal(ggmlRowBytes("Q4_K", 4096), 16 * 144);
 * ```
 */
export function ggmlRowBytes(type: GgmlBlockType, cols: number): number {
  const { elems, bytes } = GGML_BLOCKS[type];
  if (!Number.isSafeInteger(cols) || cols <= 0 || cols % elems !== 0) {
    throw new GpuError(
      `${type}: a row of ${cols} elements is not a whole number of ${elems}-element blocks`,
    );
  }
  return (cols / elems) * bytes;
}

/**
 * Uploads a `[rows, cols]` GGUF block weight (the file's bytes), split into
 * row ranges that fit one storage binding.
 *
 * @throws {GpuError} when the sizes do not match or one row exceeds a binding.
 * @example
 * ```ts ignore
 * const w = uploadGgmlWeight(gpu, { type: "Q4_K", rows: 64, cols: 256, bytes });
 * ```
 */
export function uploadGgmlWeight(
  gpu: Gpu,
  w: { type: GgmlBlockType; rows: number; cols: number; bytes: Uint8Array },
): GgmlGpuWeight {
  const rb = ggmlRowBytes(w.type, w.cols);
  if (w.bytes.length !== rb * w.rows) {
    throw new GpuError(
      `${w.type} [${w.rows}, ${w.cols}] needs ${
        rb * w.rows
      } bytes, got ${w.bytes.length}`,
    );
  }
  const max = Math.floor(gpu.limits.maxStorageBufferBindingSize / 16) * 16;
  const perPart = Math.floor(max / rb);
  if (perPart < 1) {
    throw new GpuError(`${w.type}: one row (${rb} bytes) exceeds a binding`);
  }
  const parts: GgmlWeightPart[] = [];
  for (let r = 0; r < w.rows; r += perPart) {
    const rows = Math.min(perPart, w.rows - r);
    const bytes = w.bytes.subarray(r * rb, (r + rows) * rb);
    const size = Math.max(16, Math.ceil(bytes.length / 16) * 16);
    const buffer = gpu.device.createBuffer({
      label: `ggml-${w.type}`,
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
      mappedAtCreation: true,
    });
    new Uint8Array(buffer.getMappedRange()).set(bytes);
    buffer.unmap();
    parts.push({ rowStart: r, rows, data: { buffer, offset: 0, size } });
  }
  return { type: w.type, rows: w.rows, cols: w.cols, parts };
}

/**
 * The kernel {@link matmulGgml} uses for T tokens.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { planMatmulGgml } from "./_matmul_ggml.ts";
 * assert.equal(planMatmulGgml(1), "matvec_ggml");
 * assert.equal(planMatmulGgml(7), "matmul_ggml");
 * ```
 */
export function planMatmulGgml(T: number): "matvec_ggml" | "matmul_ggml" {
  return T === 1 ? "matvec_ggml" : "matmul_ggml";
}

function zeros(ctx: KernelContext): BufferRef {
  let z = ctx.memo.get("matmul.zeros") as BufferRef | undefined;
  if (!z) {
    const buffer = ctx.device.createBuffer({
      label: "zeros",
      size: 256,
      usage: GPUBufferUsage.STORAGE,
    });
    z = { buffer, offset: 0, size: 256 };
    ctx.memo.set("matmul.zeros", z);
  }
  return z;
}

/**
 * Records out [T, N] = x [T, K] · Wᵀ (+ bias) into `pass`, one dispatch per
 * weight part.
 *
 * @throws {GpuError} for sizes that do not fit.
 * @example
 * ```ts ignore
 * matmulGgml(ctx, pass, { x, w, out, T: 1 });
 * ```
 */
export function matmulGgml(
  ctx: KernelContext,
  pass: GPUComputePassEncoder,
  a: GgmlMatmulArgs,
): void {
  const { w, T } = a;
  const K = w.cols, N = w.rows;
  ggmlRowBytes(w.type, K);
  if (!(T >= 1) || !Number.isInteger(T)) {
    throw new GpuError(`matmul: T must be a positive integer, got ${T}`);
  }
  if (a.x.size < T * K * 4 || a.out.size < T * N * 4) {
    throw new GpuError(
      `matmul ${w.type}: x or out too small for T=${T}, [${N}, ${K}]`,
    );
  }
  const kernel = planMatmulGgml(T);
  const code = common + SNIPPET[w.type] +
    (kernel === "matvec_ggml" ? matvecBody : matmulBody);
  const pipeline = ctx.pipeline(`${kernel}_${w.type}`, code, { WG });
  const bias = a.bias ?? zeros(ctx);
  for (const part of w.parts) {
    const params = ctx.params(
      packParams(
        "uuuuuuuu",
        part.rows,
        K,
        T,
        part.rowStart,
        N,
        a.bias ? 1 : 0,
        K / GGML_BLOCKS[w.type].elems,
        0,
      ),
    );
    ctx.dispatch(
      pass,
      pipeline,
      [part.data, a.x, bias, a.out, params],
      Math.ceil(part.rows / RI / WG),
      T === 1 ? 1 : Math.ceil(T / TI),
    );
  }
}

/**
 * Frees the buffers of `w`.
 *
 * @example
 * ```ts ignore
 * destroyGgmlWeight(w);
 * ```
 */
export function destroyGgmlWeight(w: GgmlGpuWeight): void {
  for (const p of w.parts) p.data.buffer.destroy();
}
