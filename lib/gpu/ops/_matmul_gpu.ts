/**
 * The GPU kernel family of `matmul` (lib/gpu/family.ts): which kernel and
 * variant a call uses, and how its WGSL is put together.
 *
 * - T = 1: `matvec_coop` — a workgroup of `wg` lanes owns `rows` output rows,
 *   lanes stride along K over units (16-byte words of plain floats, 32-value
 *   blocks or chunks of the block types), the partial sums are reduced in
 *   workgroup memory (`wg` variant) or with `subgroupAdd` (`sg` variant, on
 *   devices with the `subgroups` feature).
 * - T > 1: `matmul_tiled` — 32 × 32 output tiles through workgroup memory,
 *   4 × 4 register blocks per lane.
 * - An encoding whose decode file has a `block_gpu` section (f16:
 *   `unpack2x16float`, one hardware conversion per pair on GPUs but slow on
 *   lavapipe) uses it instead of `block` (`+unpack` in the variant). The
 *   arithmetic stays f32 everywhere: products and sums in f16 would not hold
 *   the error bound of tests/gpu/matmul_test.ts at K = 4096 (f16 keeps 11
 *   bits), and Deno 2.9.6's WGSL compiler rejects `bitcast<vec2<f16>>`.
 *
 * The encoding's WGSL decode section is reused unchanged through a per-class
 * adapter, `unit(r, u)` (kernels/_unit_dense.wgsl, _unit_blocks.wgsl,
 * _unit_ggml.wgsl), so an encoding stays one record of lib/quant/encoding.ts.
 *
 * @module
 */
import { type Encoding, encoding } from "../../quant/encoding.ts";
import {
  type Binding,
  expand,
  type Fields,
  type KernelSpec,
  section,
} from "../_wgsl.ts";
import scales from "../../../kernels/_scales.wgsl" with { type: "text" };
import weights from "../../../kernels/_weights.wgsl" with { type: "text" };
import matvecCoop from "../../../kernels/matvec_coop.wgsl" with {
  type: "text",
};
import matmulTiled from "../../../kernels/matmul_tiled.wgsl" with {
  type: "text",
};
import reduceWg from "../../../kernels/_reduce_wg.wgsl" with { type: "text" };
import reduceSg from "../../../kernels/_reduce_sg.wgsl" with { type: "text" };
import unitDense from "../../../kernels/_unit_dense.wgsl" with {
  type: "text",
};
import unitBlocks from "../../../kernels/_unit_blocks.wgsl" with {
  type: "text",
};
import unitGgml from "../../../kernels/_unit_ggml.wgsl" with { type: "text" };

/** Device features the GPU family's variants depend on. */
export interface GpuFeatures {
  /** `subgroups` enabled: reduce with subgroupAdd. */
  subgroups?: boolean;
}

/** Matvec tuning of the GPU family: lanes per workgroup, rows per workgroup. */
export const GPU_MATVEC = { wg: 64, rows: 4 } as const;

/** The prefill tile of `matmul_tiled`: rows × tokens per workgroup, lanes. */
export const GPU_TILE = { rows: 32, tokens: 32, wg: 64 } as const;

/** The unit adapter of an encoding's class and its size (values per unit). */
function unitOf(e: Encoding): { src: string; unit: number } {
  if (e.scales === "none") return { src: unitDense, unit: 16 / e.blockBytes };
  if (e.scales === "tensor") return { src: unitBlocks, unit: 32 };
  return { src: unitGgml, unit: 32 };
}

/** The decode section the GPU family reads for `e`: `block_gpu` where it has one, else `block`. */
function decodeSection(e: Encoding): "block" | "block_gpu" {
  return section(e.wgsl, "block_gpu") !== "" ? "block_gpu" : "block";
}

/**
 * The variant name of the GPU family's kernel for `e`, T tokens and device
 * features `f`: `wg` / `sg` (matvec reduction) or `tile32x32` (prefill),
 * `+unpack` with the encoding's `block_gpu` decode section.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gpuVariant } from "./_matmul_gpu.ts";
 * import { encoding } from "../../quant/encoding.ts";
 * assert.equal(gpuVariant(encoding("q4"), 1, {}), "wg");
 * assert.equal(gpuVariant(encoding("f16"), 1, { subgroups: true }), "sg+unpack");
 * assert.equal(gpuVariant(encoding("bf16"), 9, {}), "tile32x32");
 * ```
 */
export function gpuVariant(e: Encoding, T: number, f: GpuFeatures): string {
  const base = T === 1 ? (f.subgroups ? "sg" : "wg") : "tile32x32";
  return decodeSection(e) === "block_gpu" ? `${base}+unpack` : base;
}

/**
 * The WGSL of the GPU family's kernel for encoding `dtype`, T tokens and
 * device features `f` (bindings as the CPU family's: w, the scales for
 * scale-tensor encodings, x, bias; out; the matmul's Params `params`).
 */
export function gpuKernelSpec(
  dtype: string,
  T: number,
  f: GpuFeatures,
  params: Fields,
): KernelSpec {
  const e = encoding(dtype);
  const scaled = e.scales === "tensor";
  const inputs: Binding[] = [
    {
      name: "w",
      type: e.scales === "inline" ? "u32" : "vec4<u32>",
      access: "read",
    },
    ...(scaled ? [{ name: "sc", type: "u32", access: "read" } as const] : []),
    { name: "x", type: "vec4<f32>", access: "read" },
    { name: "bias", type: "f32", access: "read" },
  ];
  const sg = T === 1 && f.subgroups === true;
  const { src: unitSrc, unit } = unitOf(e);
  const reduce = sg ? reduceSg : reduceWg;
  const body = T === 1
    ? matvecCoop.replace(
      /^\s*\/\/ @insert (\w+)\s*$/gm,
      (_, name: string) => section(reduce, name).replace(/\n$/, ""),
    )
    : matmulTiled;
  const uv = unit / 4;
  const code = expand(unitSrc + body, {
    UNIT: unit,
    UV: uv,
    j: uv,
    r: T === 1 ? GPU_MATVEC.rows : 4,
    ROWS: GPU_MATVEC.rows,
    t: 4,
    WG: GPU_MATVEC.wg,
    RED: GPU_MATVEC.rows * GPU_MATVEC.wg,
  });
  const enables = sg ? ["subgroups"] : [];
  return {
    inputs,
    output: { name: "out", type: "f32" },
    params,
    body: (scaled ? scales : "") + weights +
      section(e.wgsl, decodeSection(e)) + code,
    enables,
  };
}
