/**
 * `siluMul`: the SwiGLU activation out = silu(gate) · up
 * (kernels/silu_mul.wgsl); out may be exactly gate or up (in place).
 *
 * @module
 */
import type { Launcher } from "../_context.ts";
import { type ElementwiseArgs, elementwiseOp } from "./_elementwise.ts";
import body from "../../../kernels/silu_mul.wgsl" with { type: "text" };

/** Arguments of `Kernels.siluMul`: out = silu(gate) · up, all f32 [n]; out may be exactly gate or up. */
export type SiluMulArgs = ElementwiseArgs<"gate" | "up">;

/**
 * out = silu(gate) · up elementwise over n values; out may be exactly gate or up.
 *
 * @example
 * ```ts ignore
 * siluMul(ctx, pass, { gate, up, out: gate, n: T * intermediate });
 * ```
 */
export const siluMul: Launcher<SiluMulArgs> = elementwiseOp("siluMul", body, [
  "gate",
  "up",
]);
