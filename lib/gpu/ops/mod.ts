/**
 * Every op launcher and its argument type, one file per op (see
 * docs/kernels.md, "adding a kernel").
 *
 * @module
 */
export * from "./matmul.ts";
export * from "./rmsnorm.ts";
export * from "./rope.ts";
export * from "./attention.ts";
export * from "./silu_mul.ts";
export * from "./add.ts";
export * from "./topk.ts";
