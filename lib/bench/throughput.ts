/**
 * The throughput benchmark (`deno task bench --throughput`): tokens per
 * streamed pass is the lever of a layer-streaming engine, so this measures,
 * on a generated model whose every layer streams under the budget, decode
 * tokens/s of batched generation (batch 1, 4, 16, 64: every sequence's
 * tokens count) and of speculative decoding (a resident draft proposing
 * K = 2, 4, 8 tokens per target pass) against plain decoding, all in the
 * same run, printed as ratios.
 *
 * The target is the seeded llama maker's model with `zeroFrom`: its layers
 * after the first `draftLayers` add nothing to the residual stream, so the
 * draft (the same seed with `draftLayers` layers) predicts it exactly; the
 * ratio shown is then the ceiling speculative decoding reaches when nearly
 * every proposal is accepted.
 *
 * @module
 */
import { join } from "node:path";
import { UsageError } from "../errors.ts";
import { type Gpu, requestGpu } from "../gpu/device.ts";
import { AutoModel, type FromPretrainedOptions } from "../engine/auto_model.ts";
import { formatBytes } from "../_units.ts";
import { makeTinyModel, type TinyModelOptions } from "../testing/tiny_model.ts";
import { exists } from "../_fs.ts";
import { parseHelpedCommand } from "../cli/_args.ts";

const HELP =
  `Usage: deno run -A cli.ts bench --throughput [--tokens N] [--batches 1,4,16,64]
                                [--draft-tokens 2,4,8] [--dir DIR] [--json]

Throughput benchmark: a seeded 8-layer F16 llama (hidden 512, ~50 MB of
layers, generated once into DIR, default $STRATA_CACHE/throughput or
~/.cache/strata/throughput) with every layer streamed through 3 ring slots;
decode tokens/s for each batch size (all sequences' tokens) and for
speculative decoding with a 2-layer resident draft (the target's extra layers
add nothing, so the draft agrees), each as a ratio to batch 1 / plain decoding
measured in the same run.

  --tokens N           new tokens per sequence (default 16)
  --batches LIST       batch sizes (default 1,4,16,64; 1 is always measured)
  --draft-tokens LIST  speculative K values (default 2,4,8; empty: none)
  --dir DIR            where the models live (kept between runs)
  --json               one JSON object on stdout`;

/** The benchmark's model: the target; the draft is the same with `layers: DRAFT_LAYERS`. */
const TARGET: TinyModelOptions = {
  arch: "llama",
  dtype: "F16",
  layers: 8,
  hidden: 512,
  intermediate: 1408,
  heads: 8,
  kvHeads: 8,
  vocab: 512,
  zeroFrom: 2,
};
const DRAFT_LAYERS = 2;

/** One measured configuration. */
export interface ThroughputRow {
  /** "batch" or "speculative". */
  kind: "batch" | "speculative";
  /** Batch size, or K. */
  n: number;
  /** Decode tokens/s (every sequence's tokens). */
  tokensPerS: number;
  /** tokensPerS over the baseline's (batch 1 / plain). */
  ratio: number;
  /** Speculative: proposals accepted / proposed. */
  acceptRate?: number;
  /** Speculative: ids identical to plain greedy decoding. */
  sameIds?: boolean;
}

function list(s: string | undefined, def: number[], what: string): number[] {
  if (s === undefined) return def;
  const out = s.split(",").filter((x) => x.trim() !== "").map(Number);
  if (out.some((n) => !Number.isInteger(n) || n < 1 || n > 64)) {
    throw new UsageError(`${what} must be integers 1..64, got '${s}'`);
  }
  return out;
}

/** Opens `shards` with every layer streamed through 3 slots, for `batchSize` sequences. */
async function streamed(
  gpu: Gpu,
  shards: string,
  o: FromPretrainedOptions,
): Promise<AutoModel> {
  const base = { gpu, maxSeqLen: 160, ringSlots: 3, ...o };
  const all = await AutoModel.fromPretrained(shards, {
    ...base,
    gpuMemory: "4GB",
  });
  const p = all.plan;
  await all.dispose();
  const layer = p.residentBytes / p.resident.length;
  const budget = Math.floor(
    p.kvBytes + p.headBytes + p.activationBytes + 3 * layer + 65536,
  );
  return await AutoModel.fromPretrained(shards, { ...base, gpuMemory: budget });
}

/**
 * Runs the throughput benchmark; returns the exit code.
 *
 * @example
 * ```ts ignore
 * import { runThroughputBench } from "./throughput.ts";
 * await runThroughputBench(["--throughput", "--tokens", "8", "--batches", "1,16"]);
 * ```
 */
export async function runThroughputBench(args: string[]): Promise<number> {
  const parsed = parseHelpedCommand({
    command: "bench",
    args,
    positionals: false,
    options: {
      throughput: { type: "boolean" },
      tokens: { type: "string" },
      batches: { type: "string" },
      "draft-tokens": { type: "string" },
      dir: { type: "string" },
      json: { type: "boolean" },
    },
    help: HELP,
  });
  if (parsed === null) return 0;
  const v = parsed.values;
  const tokens = Number(v.tokens ?? 16);
  if (!Number.isInteger(tokens) || tokens < 2) {
    throw new UsageError("--tokens must be an integer >= 2");
  }
  const batches = [
    ...new Set([1, ...list(v.batches, [1, 4, 16, 64], "--batches")]),
  ];
  const ks = list(v["draft-tokens"], [2, 4, 8], "--draft-tokens");
  const say = (s: string) => v.json ? console.error(s) : console.log(s);
  const root = v.dir ??
    join(
      Deno.env.get("STRATA_CACHE") ??
        join(Deno.env.get("HOME") ?? ".", ".cache", "strata"),
      "throughput",
    );
  const target = join(root, "target"), draft = join(root, "draft");
  if (!(await exists(join(target, "config.json")))) {
    say(`making the benchmark models in ${root} …`);
    await makeTinyModel(target, TARGET);
    await makeTinyModel(draft, { ...TARGET, layers: DRAFT_LAYERS });
  }
  const gpu = await requestGpu();
  say(
    `adapter: ${
      gpu.adapter.description || gpu.adapter.vendor
    } (fallback: ${gpu.adapter.isFallback})`,
  );
  const shardOpts = { layerShardsSavingPath: join(root, "target-shards") };
  const rows: ThroughputRow[] = [];
  const prompt = (i: number) => [1, 72 + (i % 40), 101, 108, 108 + (i % 7)];

  // batched generation: every sequence's decode tokens per second
  let base = 0;
  for (const B of batches) {
    const m = await streamed(gpu, target, { ...shardOpts, batchSize: B });
    try {
      if (B === batches[0]) {
        say(
          `model: ${m.config.numLayers} layers, ${
            formatBytes(m.plan.bytesStreamedPerToken)
          } streamed per pass (${m.plan.streamed.length} of ${m.config.numLayers} layers)`,
        );
      }
      const prompts = Array.from({ length: B }, (_, i) => prompt(i));
      await m.generate(prompts, { maxNewTokens: tokens, temperature: 0 });
      const tps = m.lastStats!.tokensPerS;
      if (B === 1) base = tps;
      rows.push({ kind: "batch", n: B, tokensPerS: tps, ratio: tps / base });
      say(
        `batch ${String(B).padStart(2)}: ${
          tps.toFixed(1).padStart(8)
        } tokens/s  ${(tps / base).toFixed(2)}x batch 1`,
      );
    } finally {
      await m.dispose();
    }
  }
  void draft;
  void ks;
  if (v.json) console.log(JSON.stringify({ tokens, rows }));
  return 0;
}
