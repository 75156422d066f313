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
import type {
  GpuWeight,
  KernelContext,
  MatmulArgs,
  WeightDtype,
} from "./_context.ts";
import type { BufferRef } from "./pipelines.ts";
import { packParams } from "./pipelines.ts";
import matvecF32 from "../../kernels/matvec_f32.wgsl" with { type: "text" };
import matvecHalf from "../../kernels/matvec_half.wgsl" with { type: "text" };
import decodeF16 from "../../kernels/_decode_f16.wgsl" with { type: "text" };
import decodeBf16 from "../../kernels/_decode_bf16.wgsl" with { type: "text" };
import matvecQ8 from "../../kernels/matvec_q8.wgsl" with { type: "text" };
import matvecQ4 from "../../kernels/matvec_q4.wgsl" with { type: "text" };
import matmulF32 from "../../kernels/matmul_f32.wgsl" with { type: "text" };
import matmulHalf from "../../kernels/matmul_half.wgsl" with { type: "text" };
import matmulQ8 from "../../kernels/matmul_q8.wgsl" with { type: "text" };
import matmulQ4 from "../../kernels/matmul_q4.wgsl" with { type: "text" };
import matmulGeneric from "../../kernels/matmul_generic.wgsl" with {
  type: "text",
};

// f16 and bf16 share one kernel body each; only the decode of 8 packed
// values (lo/hi) differs, prepended from its own file.
const MATVEC: Record<WeightDtype, string> = {
  f32: matvecF32,
  f16: decodeF16 + matvecHalf,
  bf16: decodeBf16 + matvecHalf,
  q8: matvecQ8,
  q4: matvecQ4,
};
const MATMUL: Record<WeightDtype, string> = {
  f32: matmulF32,
  f16: decodeF16 + matmulHalf,
  bf16: decodeBf16 + matmulHalf,
  q8: matmulQ8,
  q4: matmulQ4,
};
const ALIGN: Record<WeightDtype, number> = {
  f32: 4,
  f16: 8,
  bf16: 8,
  q8: 32,
  q4: 32,
};
const DT: Record<WeightDtype, number> = {
  f32: 0,
  f16: 1,
  bf16: 2,
  q8: 3,
  q4: 4,
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

/** Workgroup sizes; tuned on lavapipe (see lib/gpu/bench.ts). */
export const MATMUL_WG: {
  matvec: Record<WeightDtype, number>;
  matmul: number;
  generic: number;
} = {
  matvec: { f32: 16, f16: 16, bf16: 16, q8: 8, q4: 8 },
  matmul: 16,
  generic: 64,
};

/** Register tile (rows = tokens) of each matmul_<dtype> invocation (fixed in the WGSL). */
const MATMUL_TILE: Record<WeightDtype, number> = {
  f32: 8,
  f16: 8,
  bf16: 8,
  q8: 4,
  q4: 4,
};

/** Rows each matvec invocation computes (fixed in the WGSL). */
const MATVEC_ROWS: Record<WeightDtype, number> = {
  f32: 8,
  f16: 8,
  bf16: 8,
  q8: 8,
  q4: 16,
};

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
  dtype: WeightDtype,
  cols: number,
  T: number,
): MatmulPlan {
  if (cols % ALIGN[dtype] !== 0) {
    return {
      kernel: "matmul_generic",
      rowsPerInvocation: 1,
      tokensPerInvocation: 1,
      wg: MATMUL_WG.generic,
    };
  }
  if (T === 1) {
    return {
      kernel: `matvec_${dtype}`,
      rowsPerInvocation: MATVEC_ROWS[dtype],
      tokensPerInvocation: 1,
      wg: MATMUL_WG.matvec[dtype],
    };
  }
  return {
    kernel: `matmul_${dtype}`,
    rowsPerInvocation: MATMUL_TILE[dtype],
    tokensPerInvocation: MATMUL_TILE[dtype],
    wg: MATMUL_WG.matmul,
  };
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
    if ((w.dtype === "q8" || w.dtype === "q4") && !p.scales) {
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
  const quant = w.dtype === "q8" || w.dtype === "q4";
  const nb = Math.ceil(K / 32);
  const code = plan.kernel === "matmul_generic"
    ? matmulGeneric
    : plan.tokensPerInvocation === 1
    ? MATVEC[w.dtype]
    : MATMUL[w.dtype];
  const constants: Record<string, number> = { WG: plan.wg };
  if (plan.kernel === "matmul_generic") constants.DT = DT[w.dtype];
  const pipeline = ctx.pipeline(plan.kernel, code, constants);
  const bias = a.bias ?? zeros(ctx);
  const generic = plan.kernel === "matmul_generic";
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
