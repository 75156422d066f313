/**
 * `strata bench`: with `--kernels`, the WGSL kernel benchmark
 * (lib/gpu/bench.ts); otherwise the engine benchmark (lib/bench/engine.ts).
 *
 * @module
 */
import { type EncodingName, ENCODINGS } from "../quant/encoding.ts";
import { parseArgs } from "node:util";
import { UsageError } from "../errors.ts";

const HELP = `Usage: deno run -A cli.ts bench --kernels [--json] [--dtypes ${
  [...ENCODINGS.keys()].join(",")
}] [--quick] [--families gpu,cpu]
       deno run -A cli.ts bench [engine flags]   (see: bench --engine --help)
       deno run -A cli.ts bench --moe [flags]     (see: bench --moe --help)
       deno run -A cli.ts bench --throughput [flags]   (batching, speculative decoding)

Kernel benchmark (--kernels): measures on the current WebGPU adapter the
buffer-copy bandwidth (copyBufferToBuffer over 256 MiB: the roofline), each
matvec kernel's effective weight bandwidth for 4096x4096 and 11008x4096
(rows x cols), and prefill matmul GFLOP/s at T = 128, with each ratio to the
roofline. Progress goes to stderr.

  --json          print only {"adapter", "families", "copy_gbps", "kernels": [{"name",
                  "family", "variant", "dtype", "shape", "gbps", "ratio", ...}]} on stdout
  --families LIST kernel families to measure, each on every config (default: the one
                  STRATA_KERNELS=gpu|cpu|auto selects for this adapter)
  --dtypes LIST   weight dtypes to measure (default all)
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
  if (args.includes("--moe")) {
    const { runMoeBench } = await import("../bench/moe.ts");
    return await runMoeBench(args);
  }
  if (args.includes("--throughput")) {
    const { runThroughputBench } = await import("../bench/throughput.ts");
    return await runThroughputBench(args);
  }
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
        families: { type: "string" },
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
  const all: string[] = [...ENCODINGS.keys()];
  const dtypes = (values.dtypes?.split(",").map((s) => s.trim()) ??
    all) as EncodingName[];
  for (const d of dtypes) {
    if (!all.includes(d)) {
      throw new UsageError(
        `bench: unknown dtype '${d}' (expected ${all.join(", ")})`,
      );
    }
  }
  const families = values.families?.split(",").map((s) => s.trim());
  for (const f of families ?? []) {
    if (f !== "gpu" && f !== "cpu") {
      throw new UsageError(
        `bench: unknown kernel family '${f}' (expected gpu, cpu)`,
      );
    }
  }
  const { requestGpu } = await import("../gpu/device.ts");
  const { benchKernels, formatKernelTable } = await import("../gpu/bench.ts");
  const gpu = await requestGpu();
  console.error(`bench: ${gpu.adapter.description || "WebGPU adapter"}`);
  const report = await benchKernels(gpu, {
    dtypes,
    shapes: values.quick ? [[4096, 4096]] : undefined,
    prefillT: values.quick ? 32 : 128,
    rounds: values.quick ? 2 : 5,
    families: families as ("gpu" | "cpu")[] | undefined,
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
