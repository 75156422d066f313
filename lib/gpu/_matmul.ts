/**
 * Matmul / matvec launchers (work in progress).
 *
 * @module
 */
import { GpuError } from "../errors.ts";
import type { KernelContext, MatmulArgs } from "./_context.ts";

/** out [T, N] = x [T, K] · Wᵀ (+ bias). */
export function matmul(
  _ctx: KernelContext,
  _pass: GPUComputePassEncoder,
  _a: MatmulArgs,
): void {
  throw new GpuError("matmul: not implemented yet");
}
