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
import { cacheRoot } from "../engine/resolve.ts";
import { UsageError } from "../errors.ts";
import { type Gpu, requestGpu } from "../gpu/device.ts";
import { AutoModel, type FromPretrainedOptions } from "../engine/auto_model.ts";
import { formatBytes } from "../_units.ts";
import { makeTinyModel, type TinyModelOptions } from "../testing/tiny_model.ts";
import { exists } from "../_fs.ts";
import { parseHelpedCommand } from "../cli/_args.ts";

const HELP =
  `Usage: deno run -A cli.ts bench --throughput [--tokens N] [--batches 1,4,16,64]
                                [--draft-tokens 2,4,8] [--rounds N] [--dir DIR] [--json]

Throughput benchmark: a seeded 16-layer F16 llama (hidden 512, ~98 MB of
layers, generated once into DIR, default $STRATA_CACHE/throughput or
~/.cache/strata/throughput) with every layer streamed through 3 ring slots;
decode tokens/s for each batch size (all sequences' tokens) and for
speculative decoding with a 1-layer resident draft (the target's extra layers
add nothing, so the draft agrees), each as a ratio to batch 1 / plain decoding
measured in the same run.

  --tokens N           new tokens per sequence (default 16)
  --batches LIST       batch sizes (default 1,4,16,64; 1 is always measured)
  --draft-tokens LIST  speculative K values (default 2,4,8; empty: none)
  --rounds N           interleaved rounds; ratios are medians of per-round ratios (default 5)
  --dir DIR            where the models live (kept between runs)
  --json               one JSON object on stdout`;

/** The benchmark's model: the target; the draft is the same with `layers: DRAFT_LAYERS`. */
const TARGET: TinyModelOptions = {
  arch: "llama",
  dtype: "F16",
  layers: 16,
  hidden: 512,
  intermediate: 1408,
  heads: 8,
  kvHeads: 8,
  vocab: 512,
  zeroFrom: 1,
};
const DRAFT_LAYERS = 1;

/** One measured configuration. */
export interface ThroughputRow {
  /** "batch" or "speculative". */
  kind: "batch" | "speculative";
  /** Batch size, or K (0: plain decoding, the speculative baseline). */
  n: number;
  /** Median decode tokens/s (every sequence's tokens). */
  tokensPerS: number;
  /** Median over rounds of tokensPerS over the baseline's in the same round (batch 1 / plain). */
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

/**
 * The budget that streams every layer of `shards` through 3 slots with `o`
 * (plus `extra` bytes: a resident draft), from the all-resident plan.
 */
async function streamingBudget(
  gpu: Gpu,
  shards: string,
  o: FromPretrainedOptions,
  extra = 0,
): Promise<number> {
  const all = await AutoModel.fromPretrained(shards, {
    ...o,
    gpu,
    gpuMemory: "4GB",
  });
  const p = all.plan;
  await all.dispose();
  const layer = p.residentBytes / p.resident.length;
  return Math.floor(
    p.kvBytes + p.headBytes + p.activationBytes + 3 * layer + 65536 + extra,
  );
}

/** The median of `xs`. */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** One configuration: how to open the model and what to generate. */
interface Config {
  row: Omit<ThroughputRow, "tokensPerS" | "ratio">;
  label: string;
  opts: FromPretrainedOptions;
  prompts: number[][];
  maxNewTokens: number;
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
      rounds: { type: "string" },
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
  const rounds = Number(v.rounds ?? 5);
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new UsageError("--rounds must be a positive integer");
  }
  const say = (s: string) => v.json ? console.error(s) : console.log(s);
  const root = v.dir ?? join(cacheRoot(), "throughput");
  const target = join(root, "target"), draft = join(root, "draft");
  if (!(await exists(join(target, "config.json")))) {
    say(`making the benchmark models in ${root} …`);
    await makeTinyModel(target, TARGET);
    await makeTinyModel(draft, { ...TARGET, layers: DRAFT_LAYERS });
  }
  const gpu = await requestGpu();
  const rows: ThroughputRow[] = [];
  say(
    `adapter: ${
      gpu.adapter.description || gpu.adapter.vendor
    } (fallback: ${gpu.adapter.isFallback})`,
  );
  const prompt = (i: number) => [1, 72 + (i % 40), 101, 108, 108 + (i % 7)];
  const specTokens = 3 * tokens;
  const base: FromPretrainedOptions = {
    layerShardsSavingPath: join(root, "target-shards"),
    maxSeqLen: 8 + tokens + 1, // prompt + tokens: the caches stay small at batch 64
    ringSlots: 3,
  };
  const configs: Config[] = batches.map((B) => ({
    row: { kind: "batch", n: B },
    label: `batch ${String(B).padStart(2)}`,
    opts: { ...base, batchSize: B },
    prompts: Array.from({ length: B }, (_, i) => prompt(i)),
    maxNewTokens: tokens,
  }));
  const specBase = {
    ...base,
    maxSeqLen: 8 + specTokens + Math.max(0, ...ks) + 1,
  };
  let draftBytes = 0;
  if (ks.length > 0) {
    const draftShards = join(root, "draft-shards");
    const dm = await AutoModel.fromPretrained(draft, {
      gpu,
      layerShardsSavingPath: draftShards,
      gpuMemory: "4GB",
      maxSeqLen: specBase.maxSeqLen,
    });
    draftBytes = dm.plan.totalBytes; // all resident: what it takes from the budget
    await dm.dispose();
    configs.push({
      row: { kind: "speculative", n: 0 },
      label: "plain   ",
      opts: specBase,
      prompts: [prompt(0)],
      maxNewTokens: specTokens,
    });
    for (const K of ks) {
      configs.push({
        row: { kind: "speculative", n: K },
        label: `spec K=${K}`,
        opts: { ...specBase, draft: draftShards, draftTokens: K },
        prompts: [prompt(0)],
        maxNewTokens: specTokens,
      });
    }
  }
  // every configuration opened once with its own streaming budget; then
  // rounds over all of them, back to back (odd rounds in reverse order). The
  // machine is shared, so each ratio is taken within a round (its two runs
  // close in time) and the median over rounds is reported.
  const models: AutoModel[] = [];
  try {
    for (const c of configs) {
      const budget = await streamingBudget(
        gpu,
        target,
        c.opts,
        c.opts.draft ? draftBytes : 0,
      );
      models.push(
        await AutoModel.fromPretrained(target, {
          ...c.opts,
          gpu,
          gpuMemory: budget,
        }),
      );
    }
    const m0 = models[0];
    say(
      `model: ${m0.config.numLayers} layers, ${
        formatBytes(m0.plan.bytesStreamedPerToken)
      } streamed per pass (${m0.plan.streamed.length} of ${m0.config.numLayers} layers); medians of ${rounds} interleaved rounds`,
    );
    const tps: number[][] = configs.map(() => []);
    const ids: (number[][] | null)[] = configs.map(() => null);
    const accepted: [number, number][] = configs.map(() => [0, 0]);
    for (let r = 0; r < rounds; r++) {
      const order = [...configs.entries()];
      if (r % 2 === 1) order.reverse();
      for (const [i, c] of order) {
        const m = models[i];
        const o = { maxNewTokens: c.maxNewTokens, temperature: 0 };
        // speculative decoding runs single prompts; batches take arrays
        const out = c.row.kind === "speculative"
          ? [await m.generate(c.prompts[0], o)]
          : await m.generate(c.prompts, o);
        const s = m.lastStats!;
        tps[i].push(s.tokensPerS);
        ids[i] ??= out;
        accepted[i][0] += s.draftAccepted ?? 0;
        accepted[i][1] += s.draftProposed ?? 0;
      }
    }
    const plainAt = configs.findIndex((c) => c.row.kind === "speculative");
    for (const [i, c] of configs.entries()) {
      const spec = c.row.kind === "speculative";
      const b = spec ? plainAt : 0;
      const row: ThroughputRow = {
        ...c.row,
        tokensPerS: median(tps[i]),
        ratio: median(tps[i].map((t, r) => t / tps[b][r])),
      };
      let note = "";
      if (spec && c.row.n > 0) {
        row.acceptRate = accepted[i][0] / Math.max(1, accepted[i][1]);
        row.sameIds = JSON.stringify(ids[i]) === JSON.stringify(ids[plainAt]);
        note = `; ${accepted[i][0]}/${accepted[i][1]} accepted; ids ${
          row.sameIds ? "identical to plain" : "DIFFER from plain"
        }`;
      }
      rows.push(row);
      say(
        `${c.label}: ${row.tokensPerS.toFixed(1).padStart(8)} tokens/s  ${
          row.ratio.toFixed(2)
        }x ${spec ? "plain" : "batch 1"} (per round: ${
          tps[i].map((t, r) => (t / tps[b][r]).toFixed(2)).join(" ")
        })${note}`,
      );
    }
  } finally {
    for (const m of models) await m.dispose();
  }
  if (v.json) console.log(JSON.stringify({ tokens, rows }));
  return 0;
}
