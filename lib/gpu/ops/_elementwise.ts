/**
 * The launcher shared by the elementwise ops (add, siluMul): out[i] =
 * value(i) over n values, where value() is the op's WGSL body. An output
 * that is exactly one input runs in place: that input is bound as the
 * output and the same body runs.
 *
 * @module
 */
import { UsageError } from "../../errors.ts";
import type { KernelContext, Launcher } from "../_context.ts";
import type { BufferRef } from "../pipelines.ts";
import { packFields } from "../_wgsl.ts";
import main from "../../../kernels/_elementwise.wgsl" with { type: "text" };
import {
  checkCount,
  FILE,
  noOverlap,
  pipeline,
  relation,
  take,
} from "./_shared.ts";

const WG = 256;

/**
 * Arguments of an elementwise op: its inputs (f32 [n] each) by name, and
 * `out` (f32 [n], which may be exactly one input: in place).
 */
export type ElementwiseArgs<K extends string> =
  & { [name in K]: BufferRef }
  & { out: BufferRef; n: number };

/**
 * The launcher of an elementwise op whose WGSL `body` defines
 * `fn value(i: u32) -> f32` over the inputs `names`.
 */
export function elementwiseOp<K extends string>(
  op: string,
  body: string,
  names: K[],
): Launcher<ElementwiseArgs<K>> {
  return (ctx, pass, a) =>
    elementwise(ctx, pass, {
      op,
      body,
      inputs: Object.fromEntries(names.map((k) => [k, a[k]])),
      out: a.out,
      n: a.n,
    });
}

/** One elementwise dispatch: `inputs` by their WGSL names, in binding order. */
export function elementwise(
  ctx: KernelContext,
  pass: GPUComputePassEncoder,
  o: {
    op: string;
    body: string;
    inputs: Record<string, BufferRef>;
    out: BufferRef;
    n: number;
  },
): void {
  checkCount(o.op, "n", o.n);
  const bytes = o.n * 4;
  const inputs = Object.entries(o.inputs).map(([name, r]) =>
    [name, take(r, bytes, `${o.op} ${name}`)] as const
  );
  const out = take(o.out, bytes, `${o.op} out`);
  const same = inputs.filter(([, r]) => relation(out, r) === "same");
  if (same.length > 1) {
    throw new UsageError(
      `${FILE}: ${o.op}: ${
        same.map(([n]) => n).join(" and ")
      } and the output are the same range`,
    );
  }
  const alias = same[0]?.[0]; // the input that is also the output
  const rest = inputs.filter(([name]) => name !== alias);
  noOverlap(o.op, out, Object.fromEntries(rest));
  const outName = alias ?? "out";
  const p = pipeline(
    ctx,
    alias ? `${o.op}.inplace.${alias}` : o.op,
    () => ({
      inputs: rest.map(([name]) => ({ name, type: "f32" })),
      output: { name: outName, type: "f32" },
      params: [["n", "u32"]],
      body: o.body + main,
    }),
    { WG },
  );
  const params = ctx.params(packFields([["n", "u32"]], { n: o.n }));
  ctx.dispatch(
    pass,
    p,
    [...rest.map(([, r]) => r), out, params],
    Math.ceil(o.n / WG),
  );
}
