/**
 * `add`: the residual add out = x + y (kernels/add.wgsl); out may be exactly
 * x or y (in place).
 *
 * @module
 */
import type { Launcher } from "../_context.ts";
import { type ElementwiseArgs, elementwiseOp } from "./_elementwise.ts";
import body from "../../../kernels/add.wgsl" with { type: "text" };

/** Arguments of `Kernels.add`: out = x + y, all f32 [n]; out may be exactly x or y. */
export type AddArgs = ElementwiseArgs<"x" | "y">;

/**
 * out = x + y elementwise over n values; out may be exactly x or y (in place).
 *
 * @example
 * ```ts ignore
 * add(ctx, pass, { x: hidden, y: attnOut, out: hidden, n: T * dim });
 * ```
 */
export const add: Launcher<AddArgs> = elementwiseOp("add", body, ["x", "y"]);
