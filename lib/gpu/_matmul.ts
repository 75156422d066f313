/**
 * Matmul / matvec launchers: out [T, N] = x [T, K] · Wᵀ (+ bias) for weights
 * in f32, f16, bf16, q8 and q4 (the shard layouts), dequantized in registers.
 *
 * Kernel choice per call:
 * - K aligned to the kernel's vector width (f32: 4, f16/bf16: 8, q8/q4: 32):
 *   T = 1 → `matvec_<dtype>` (8 or 16 rows per invocation sharing each x load);
 *   T > 1 → `matmul_<dtype>` (8 × 8 register tiles for f32/f16/bf16, 4 × 4 for q8/q4:
 *   each weight load serves 8 or 4 tokens).
 * - otherwise → `matmul_generic` (scalar, any K).
 * One dispatch per weight part (row range), each writing its own output columns.
 *
 * @module
 */
import { GpuError } from "../errors.ts";
import { encoding } from "../quant/encoding.ts";
import type { GpuWeight, KernelContext, MatmulArgs } from "./_context.ts";
import type { BufferRef } from "./pipelines.ts";
import { packParams } from "./pipelines.ts";
import { section } from "./_wgsl.ts";
import matvecF32 from "../../kernels/matvec_f32.wgsl" with { type: "text" };
import matvecHalf from "../../kernels/matvec_half.wgsl" with { type: "text" };
import matvecQ8 from "../../kernels/matvec_q8.wgsl" with { type: "text" };
import matvecQ4 from "../../kernels/matvec_q4.wgsl" with { type: "text" };
import matmulF32 from "../../kernels/matmul_f32.wgsl" with { type: "text" };
import matmulHalf from "../../kernels/matmul_half.wgsl" with { type: "text" };
import matmulQ8 from "../../kernels/matmul_q8.wgsl" with { type: "text" };
import matmulQ4 from "../../kernels/matmul_q4.wgsl" with { type: "text" };
import matmulGeneric from "../../kernels/matmul_generic.wgsl" with {
  type: "text",
};
import matvecGgml from "../../kernels/matvec_ggml.wgsl" with { type: "text" };
import matmulGgml from "../../kernels/matmul_ggml.wgsl" with { type: "text" };

/** Kernel bodies by name (an encoding's `gpu.matvec.body` / `gpu.matmul.body`). */
const BODIES: Record<string, string> = {
  matvec_f32: matvecF32,
  matvec_half: matvecHalf,
  matvec_q8: matvecQ8,
  matvec_q4: matvecQ4,
  matmul_f32: matmulF32,
  matmul_half: matmulHalf,
  matmul_q8: matmulQ8,
  matmul_q4: matmulQ4,
  matvec_ggml: matvecGgml,
  matmul_ggml: matmulGgml,
};

/** Which kernel {@link matmul} uses, and its workgroup size. */
export interface MatmulPlan {
  /** Kernel file name without `.wgsl`. */
  kernel: string;
  /** Rows per invocation (4 for the fast kernels, 1 for the generic one). */
  rowsPerInvocation: number;
  /** Tokens per invocation along z (4 for matmul_*, 1 otherwise). */
  tokensPerInvocation: number;
  /** Workgroup size. */
  wg: number;
}

/** Workgroup size of `matmul_generic` (the fast kernels' sizes are in each encoding's `gpu`). */
const GENERIC_WG = 64;

/**
 * The kernel {@link matmul} picks for `dtype`, K = `cols` and T tokens.
 *
 * @example
 * ```ts
 * import { planMatmul } from "./_matmul.ts";
 * console.log(planMatmul("q4", 4096, 1).kernel); // "matvec_q4"
 * console.log(planMatmul("q4", 100, 1).kernel); // "matmul_generic"
 * ```
 */
export function planMatmul(
  dtype: string,
  cols: number,
  T: number,
): MatmulPlan {
  const g = encoding(dtype).gpu;
  if (cols % g.align !== 0) {
    return {
      kernel: "matmul_generic",
      rowsPerInvocation: 1,
      tokensPerInvocation: 1,
      wg: GENERIC_WG,
    };
  }
  if (T === 1) {
    return {
      kernel: `matvec_${dtype}`,
      rowsPerInvocation: g.matvec.rows,
      tokensPerInvocation: 1,
      wg: g.matvec.wg,
    };
  }
  return {
    kernel: `matmul_${dtype}`,
    rowsPerInvocation: g.matmul.tile,
    tokensPerInvocation: g.matmul.tile,
    wg: g.matmul.wg,
  };
}

/** The WGSL of the kernel `plan` names for encoding `dtype`: decode snippet + body. */
function kernelCode(dtype: string, plan: MatmulPlan): string {
  const e = encoding(dtype);
  if (plan.kernel === "matmul_generic") {
    return matmulGeneric + section(e.wgsl, "scalar");
  }
  const body = plan.tokensPerInvocation === 1 ? e.gpu.matvec : e.gpu.matmul;
  return section(e.wgsl, "block") + BODIES[body.body];
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
 * Storage bindings must be a multiple of 4 bytes (and the vec4 views read 16 at
 * a time): round a range up to 16 bytes where its buffer has room, else to 4.
 */
function padded(r: BufferRef): BufferRef {
  const room = r.buffer.size - r.offset;
  const size = Math.min(Math.ceil(r.size / 16) * 16, room);
  const size4 = Math.floor(size / 4) * 4;
  return size4 === r.size ? r : {
    buffer: r.buffer,
    offset: r.offset,
    size: Math.max(size4, Math.min(r.size, room)),
  };
}

function check(w: GpuWeight, a: MatmulArgs): void {
  const { rows: N, cols: K } = w;
  if (!(a.T >= 1) || !Number.isInteger(a.T)) {
    throw new GpuError(`matmul: T must be a positive integer, got ${a.T}`);
  }
  if (a.x.size < a.T * K * 4) {
    throw new GpuError(
      `matmul: x holds ${a.x.size} bytes < T·K·4 = ${a.T * K * 4}`,
    );
  }
  if (a.out.size < a.T * N * 4) {
    throw new GpuError(
      `matmul: out holds ${a.out.size} bytes < T·N·4 = ${a.T * N * 4}`,
    );
  }
  if (a.x.buffer === a.out.buffer) {
    throw new GpuError(
      "matmul: x and out must be different buffers (a dispatch cannot read and write one buffer)",
    );
  }
  if (a.bias && a.bias.size < N * 4) {
    throw new GpuError(
      `matmul: bias holds ${a.bias.size} bytes < N·4 = ${N * 4}`,
    );
  }
  let next = 0;
  for (const p of w.parts) {
    if (p.rowStart !== next) {
      throw new GpuError(
        `matmul: weight parts must cover rows in order (${p.rowStart} ≠ ${next})`,
      );
    }
    next += p.rows;
    if (encoding(w.dtype).scales === "tensor" && !p.scales) {
      throw new GpuError(`matmul: ${w.dtype} part without scales`);
    }
  }
  if (next !== N) {
    throw new GpuError(`matmul: weight parts cover ${next} of ${N} rows`);
  }
}

/**
 * Records out [T, N] = x [T, K] · Wᵀ (+ bias) into `pass`: one dispatch per
 * weight part.
 *
 * @example
 * ```ts ignore
 * import { matmul } from "./_matmul.ts";
 * matmul(ctx, pass, { x, w, out, T: 1 });
 * ```
 */
export function matmul(
  ctx: KernelContext,
  pass: GPUComputePassEncoder,
  a: MatmulArgs,
): void {
  const w = a.w;
  check(w, a);
  const K = w.cols;
  const plan = planMatmul(w.dtype, K, a.T);
  const enc = encoding(w.dtype);
  const quant = enc.scales === "tensor";
  const nb = Math.ceil(K / Math.max(enc.blockElems, 1));
  const generic = plan.kernel === "matmul_generic";
  // the generic body's code depends on the encoding: one cache entry each
  const name = generic ? `${plan.kernel}.${w.dtype}` : plan.kernel;
  const pipeline = ctx.pipeline(name, kernelCode(w.dtype, plan), {
    WG: plan.wg,
  });
  const bias = a.bias ?? zeros(ctx);
  for (const part of w.parts) {
    const params = ctx.params(
      packParams(
        "uuuuuuuu",
        part.rows,
        K,
        a.T,
        part.rowStart,
        w.rows,
        a.bias ? 1 : 0,
        nb,
        0,
      ),
    );
    const data = padded(part.data);
    const refs = quant || generic
      ? [
        data,
        part.scales ? padded(part.scales) : zeros(ctx),
        padded(a.x),
        bias,
        a.out,
        params,
      ]
      : [data, padded(a.x), bias, a.out, params];
    const groups = Math.ceil(part.rows / plan.rowsPerInvocation / plan.wg);
    ctx.dispatch(
      pass,
      pipeline,
      refs,
      groups,
      Math.ceil(a.T / plan.tokensPerInvocation),
    );
  }
}
