/**
 * `strata bench`: with `--kernels`, the WGSL kernel benchmark
 * (lib/gpu/bench.ts); otherwise the engine benchmark (lib/bench/engine.ts).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { UsageError } from "../errors.ts";
import type { GgmlBlockType } from "../quant/ggml_blocks.ts";

const HELP =
  `Usage: deno run -A cli.ts bench --kernels [--json] [--dtypes f32,f16,bf16,q8,q4,Q4_K,...] [--quick]
       deno run -A cli.ts bench [engine flags]   (see: bench --engine --help)

Kernel benchmark (--kernels): measures on the current WebGPU adapter the
buffer-copy bandwidth (copyBufferToBuffer over 256 MiB: the roofline), each
matvec kernel's effective weight bandwidth for 4096x4096 and 11008x4096
(rows x cols), and prefill matmul GFLOP/s at T = 128, with each ratio to the
roofline. Progress goes to stderr.

  --json          print only {"adapter", "copy_gbps", "kernels": [{"name", "dtype",
                  "shape", "gbps", "ratio", ...}]} on stdout
  --dtypes LIST   weight dtypes to measure (default the five shard dtypes and
                  every GGUF block type: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 IQ4_NL
                  Q2_K Q3_K Q4_K Q5_K Q6_K, read as stored in the file)
  --quick         one shape (4096x4096), prefill T = 32, fewer rounds`;

/**
 * Runs `bench`; returns the exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "./bench.ts";
 * Deno.exit(await main(["--kernels", "--json"]));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  if (!args.includes("--kernels")) {
    if (args.includes("--help") || args.includes("-h")) {
      console.log(HELP + "\n");
    }
    const { runEngineBench } = await import("../bench/engine.ts");
    return await runEngineBench(args);
  }
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        kernels: { type: "boolean" },
        json: { type: "boolean" },
        dtypes: { type: "string" },
        quick: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    throw new UsageError(`bench: ${(e as Error).message}`);
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const shard = ["f32", "f16", "bf16", "q8", "q4"] as const;
  type D = typeof shard[number];
  const { GGML_BLOCKS, isGgmlBlockType } = await import(
    "../quant/ggml_blocks.ts"
  );
  const ggmlAll = Object.keys(GGML_BLOCKS).filter(isGgmlBlockType);
  const asked = values.dtypes?.split(",").map((s) => s.trim()) ??
    [...shard, ...ggmlAll];
  const dtypes: D[] = [];
  const ggml: GgmlBlockType[] = [];
  for (const d of asked) {
    if ((shard as readonly string[]).includes(d)) dtypes.push(d as D);
    else if (isGgmlBlockType(d)) ggml.push(d);
    else {
      throw new UsageError(
        `bench: unknown dtype '${d}' (expected ${
          [...shard, ...ggmlAll].join(", ")
        })`,
      );
    }
  }
  const { requestGpu } = await import("../gpu/device.ts");
  const { benchKernels, formatKernelTable } = await import("../gpu/bench.ts");
  const gpu = await requestGpu();
  console.error(`bench: ${gpu.adapter.description || "WebGPU adapter"}`);
  const report = await benchKernels(gpu, {
    dtypes,
    ggml,
    shapes: values.quick ? [[4096, 4096]] : undefined,
    prefillT: values.quick ? 32 : 128,
    rounds: values.quick ? 2 : 5,
    onProgress: (line) => console.error(line),
  });
  if (values.json) {
    console.log(JSON.stringify(report));
  } else {
    console.log(formatKernelTable(report));
  }
  gpu.device.destroy();
  return 0;
}
