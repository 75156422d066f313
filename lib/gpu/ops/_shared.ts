/**
 * What the op launchers share: argument checks, how two bound ranges relate
 * (the in-place rule), scratch buffers, and the generated-source cache.
 *
 * Conventions of every launcher:
 * - activations are f32; a {@link BufferRef} may be larger than the shape
 *   needs, only the needed bytes are bound (a GpuError names a ref that is too
 *   small);
 * - activation bindings are `read_write`, so inputs and the output may be
 *   disjoint ranges of one buffer; an output that is exactly an input (same
 *   buffer and offset) selects the in-place variant where the op allows it
 *   (rmsnorm, add, siluMul: the input is bound as the output and the same
 *   body runs); any other overlap is a UsageError;
 * - dispatches above maxComputeWorkgroupsPerDimension are folded into 2-D by
 *   `KernelContext.dispatch`; tokens go in z.
 *
 * @module
 */
import { GpuError, UsageError } from "../../errors.ts";
import type { KernelContext } from "../_context.ts";
import type { BufferRef } from "../pipelines.ts";
import { kernelSource, type KernelSpec } from "../_wgsl.ts";

/** Where launcher errors point. */
export const FILE = "lib/gpu/ops";

/** `bytes` of `r` from its start; GpuError when `r` is smaller. */
export function take(r: BufferRef, bytes: number, what: string): BufferRef {
  const size = Math.ceil(bytes / 4) * 4;
  if (size > r.size) {
    throw new GpuError(
      `${FILE}: ${what} needs ${size} bytes but its BufferRef has ${r.size}`,
    );
  }
  return { buffer: r.buffer, offset: r.offset, size };
}

/** How two bound ranges relate: disjoint, the same range start, or partly overlapping. */
export function relation(
  a: BufferRef,
  b: BufferRef,
): "disjoint" | "same" | "overlap" {
  if (a.buffer !== b.buffer) return "disjoint";
  if (a.offset === b.offset) return "same";
  return a.offset < b.offset + b.size && b.offset < a.offset + a.size
    ? "overlap"
    : "disjoint";
}

/** UsageError unless `out` is disjoint from every input. */
export function noOverlap(
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

/** UsageError unless `v` is an integer ≥ `min`. */
export function checkCount(op: string, name: string, v: number, min = 1): void {
  if (!Number.isInteger(v) || v < min) {
    throw new UsageError(
      `${FILE}: ${op}: ${name} = ${v} is not an integer ≥ ${min}`,
    );
  }
}

/** A storage buffer kept in `ctx.memo` under `key`, grown (never shrunk) to ≥ `bytes`. */
export function scratch(
  ctx: KernelContext,
  key: string,
  bytes: number,
): BufferRef {
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

const SOURCES = new Map<string, string>();

/**
 * The pipeline of the kernel variant `name`, its WGSL generated once by
 * `spec()` (see lib/gpu/_wgsl.ts), specialized with `constants`.
 */
export function pipeline(
  ctx: KernelContext,
  name: string,
  spec: () => KernelSpec,
  constants?: Record<string, number>,
): GPUComputePipeline {
  let src = SOURCES.get(name);
  if (src === undefined) {
    src = kernelSource(spec());
    SOURCES.set(name, src);
  }
  return ctx.pipeline(name, src, constants);
}

/** The generated WGSL of a variant compiled so far (tests, debugging). */
export function generatedSource(name: string): string | undefined {
  return SOURCES.get(name);
}
