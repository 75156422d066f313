/**
 * `matmul` (kernels/matvec_*.wgsl, matmul_*.wgsl): out [T, N] = x [T, K] · Wᵀ
 * (+ bias) for a weight in any encoding of lib/quant/encoding.ts, decoded in
 * registers.
 *
 * Kernel choice per call, from the encoding's `gpu` record:
 * - K a multiple of `gpu.align`: T = 1 → its `gpu.matvec` body
 *   (`matvec_dense` for plain floats, `matvec_blocks` for block-scaled
 *   encodings; `rows` rows per invocation sharing each x load); T > 1 → its
 *   `gpu.matmul` body (a `tile` × `tile` register tile of rows × tokens).
 * - otherwise → `matmul_generic` (scalar, any K).
 *
 * That is the CPU kernel family; on the GPU family (`gpu.kernels`, see
 * lib/gpu/family.ts) T = 1 uses `matvec_coop` and T > 1 `matmul_tiled`
 * (lib/gpu/ops/_matmul_gpu.ts); K not a multiple of `gpu.align` still uses
 * `matmul_generic`.
 *
 * The kernel is the encoding's decode section (`kernels/_decode_<name>.wgsl`)
 * + the shared snippets + the body with its tile counts expanded
 * (lib/gpu/_wgsl.ts). One dispatch per weight part (row range), each writing
 * its own output columns.
 *
 * @module
 */
import { GpuError } from "../../errors.ts";
import { encoding } from "../../quant/encoding.ts";
import type { GpuWeight, KernelContext } from "../_context.ts";
import type { BufferRef } from "../pipelines.ts";
import {
  type Binding,
  expand,
  fields,
  type KernelSpec,
  packFields,
  section,
} from "../_wgsl.ts";
import { pipeline } from "./_shared.ts";
import type { KernelFamily } from "../family.ts";
import {
  GPU_MATVEC,
  GPU_TILE,
  type GpuFeatures,
  gpuKernelSpec,
  gpuVariant,
} from "./_matmul_gpu.ts";
import matvecDense from "../../../kernels/matvec_dense.wgsl" with {
  type: "text",
};
import matvecBlocks from "../../../kernels/matvec_blocks.wgsl" with {
  type: "text",
};
import matmulDense from "../../../kernels/matmul_dense.wgsl" with {
  type: "text",
};
import matmulBlocks from "../../../kernels/matmul_blocks.wgsl" with {
  type: "text",
};
import matmulGeneric from "../../../kernels/matmul_generic.wgsl" with {
  type: "text",
};
import matvecGgml from "../../../kernels/matvec_ggml.wgsl" with {
  type: "text",
};
import matmulGgml from "../../../kernels/matmul_ggml.wgsl" with {
  type: "text",
};
import scales from "../../../kernels/_scales.wgsl" with { type: "text" };
import weights from "../../../kernels/_weights.wgsl" with { type: "text" };

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
  /** Tokens (rows of x). T = 1 uses the matvec kernels. */
  T: number;
}

/** Kernel bodies by name (an encoding's `gpu.matvec.body` / `gpu.matmul.body`). */
const BODIES: Record<string, string> = {
  matvec_dense: matvecDense,
  matvec_blocks: matvecBlocks,
  matmul_dense: matmulDense,
  matmul_blocks: matmulBlocks,
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
  /** Output rows per workgroup. */
  rowsPerWorkgroup: number;
  /** Tokens per workgroup (along z). */
  tokensPerWorkgroup: number;
  /** The kernel family ("gpu" or "cpu", lib/gpu/family.ts). */
  family: KernelFamily;
  /** The variant within the kernel: CPU family `<rows>x<tokens>`, GPU family see `gpuVariant`. */
  variant: string;
}

/** Which family and device features {@link planMatmul} plans for (default: the CPU family). */
export interface MatmulTarget extends GpuFeatures {
  /** Kernel family (default "cpu"). */
  kernels?: KernelFamily;
}

/** Workgroup size of `matmul_generic` (the fast kernels' sizes are in each encoding's `gpu`). */
const GENERIC_WG = 64;

const PARAMS = fields("n k t rowOff outStride hasBias nb");

/**
 * The kernel {@link matmul} picks for `dtype`, K = `cols` and T tokens.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { planMatmul } from "./matmul.ts";
 * assert.equal(planMatmul("bf16", 4096, 1).kernel, "matvec_bf16");
 * assert.equal(planMatmul("bf16", 100, 1).kernel, "matmul_generic");
 * const p = planMatmul("q4", 4096, 1, { kernels: "gpu" });
 * assert.deepEqual([p.kernel, p.family, p.variant], ["matvec_coop_q4", "gpu", "wg"]);
 * ```
 */
export function planMatmul(
  dtype: string,
  cols: number,
  T: number,
  target: MatmulTarget = {},
): MatmulPlan {
  const e = encoding(dtype);
  const g = e.gpu;
  const family = target.kernels ?? "cpu";
  if (cols % g.align !== 0) {
    return {
      kernel: "matmul_generic",
      rowsPerInvocation: 1,
      tokensPerInvocation: 1,
      wg: GENERIC_WG,
      rowsPerWorkgroup: GENERIC_WG,
      tokensPerWorkgroup: 1,
      family,
      variant: "generic",
    };
  }
  if (family === "gpu") {
    const variant = gpuVariant(e, T, target);
    return T === 1
      ? {
        kernel: `matvec_coop_${dtype}`,
        rowsPerInvocation: 1,
        tokensPerInvocation: 1,
        wg: GPU_MATVEC.wg,
        rowsPerWorkgroup: GPU_MATVEC.rows,
        tokensPerWorkgroup: 1,
        family,
        variant,
      }
      : {
        kernel: `matmul_tiled_${dtype}`,
        rowsPerInvocation: 4,
        tokensPerInvocation: 4,
        wg: GPU_TILE.wg,
        rowsPerWorkgroup: GPU_TILE.rows,
        tokensPerWorkgroup: GPU_TILE.tokens,
        family,
        variant,
      };
  }
  if (T === 1) {
    return {
      kernel: `matvec_${dtype}`,
      rowsPerInvocation: g.matvec.rows,
      tokensPerInvocation: 1,
      wg: g.matvec.wg,
      rowsPerWorkgroup: g.matvec.rows * g.matvec.wg,
      tokensPerWorkgroup: 1,
      family,
      variant: `${g.matvec.rows}x1`,
    };
  }
  return {
    kernel: `matmul_${dtype}`,
    rowsPerInvocation: g.matmul.tile,
    tokensPerInvocation: g.matmul.tile,
    wg: g.matmul.wg,
    rowsPerWorkgroup: g.matmul.tile * g.matmul.wg,
    tokensPerWorkgroup: g.matmul.tile,
    family,
    variant: `${g.matmul.tile}x${g.matmul.tile}`,
  };
}

/**
 * The kernel `plan` names for encoding `dtype`: its bindings (w, the scales
 * where the encoding has a scales tensor or for the generic body, x, bias;
 * out), the encoding's decode section, the shared snippets and the body with
 * its tile counts expanded.
 */
function kernelSpec(dtype: string, plan: MatmulPlan): KernelSpec {
  const e = encoding(dtype);
  const generic = plan.kernel === "matmul_generic";
  const scaled = e.scales === "tensor";
  const inputs: Binding[] = [
    // GGUF block types (scales inline) are read as words at any block offset
    {
      name: "w",
      type: generic || e.scales === "inline" ? "u32" : "vec4<u32>",
      access: "read",
    },
    ...(scaled || generic
      ? [{ name: "sc", type: "u32", access: "read" } as const]
      : []),
    { name: "x", type: generic ? "f32" : "vec4<f32>", access: "read" },
    { name: "bias", type: "f32", access: "read" },
  ];
  let body: string;
  if (generic) {
    body = section(e.wgsl, "scalar") + matmulGeneric;
  } else {
    const k = plan.tokensPerInvocation === 1 ? e.gpu.matvec : e.gpu.matmul;
    const src = BODIES[k.body];
    if (!src) {
      throw new GpuError(`encoding ${e.name}: no kernel body ${k.body}`);
    }
    body = section(e.wgsl, "block") + expand(src, {
      r: plan.rowsPerInvocation,
      ROWS: plan.rowsPerInvocation,
      t: plan.tokensPerInvocation,
      TOKENS: plan.tokensPerInvocation,
      // value groups of 4: per block (block-scaled), per 16-byte word (dense)
      j: e.blockElems > 1 ? e.blockElems / 4 : 4 / e.blockBytes,
      J: e.blockElems > 1 ? e.blockElems / 4 : 4 / e.blockBytes,
    });
  }
  return {
    inputs,
    output: { name: "out", type: "f32" },
    params: PARAMS,
    body: (scaled ? scales : "") + weights + body,
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
 * import { matmul } from "./matmul.ts";
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
  const plan = planMatmul(w.dtype, K, a.T, ctx.gpu);
  const enc = encoding(w.dtype);
  const generic = plan.kernel === "matmul_generic";
  const withScales = enc.scales === "tensor" || generic;
  const nb = Math.ceil(K / Math.max(enc.blockElems, 1));
  // the generic body's code depends on the encoding: one cache entry each
  const name = generic
    ? `${plan.kernel}.${w.dtype}`
    : `${plan.kernel}.${plan.variant}`;
  const p = !generic && plan.family === "gpu"
    ? pipeline(ctx, name, () => gpuKernelSpec(w.dtype, a.T, ctx.gpu, PARAMS))
    : pipeline(ctx, name, () => kernelSpec(w.dtype, plan), { WG: plan.wg });
  const bias = a.bias ?? zeros(ctx);
  for (const part of w.parts) {
    const params = ctx.params(packFields(PARAMS, {
      n: part.rows,
      k: K,
      t: a.T,
      rowOff: part.rowStart,
      outStride: w.rows,
      hasBias: a.bias ? 1 : 0,
      nb,
    }));
    const data = padded(part.data);
    const refs = withScales
      ? [
        data,
        part.scales ? padded(part.scales) : zeros(ctx),
        padded(a.x),
        bias,
        a.out,
        params,
      ]
      : [data, padded(a.x), bias, a.out, params];
    const groups = Math.ceil(part.rows / plan.rowsPerWorkgroup);
    ctx.dispatch(
      pass,
      p,
      refs,
      groups,
      Math.ceil(a.T / plan.tokensPerWorkgroup),
    );
  }
}
