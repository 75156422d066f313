/**
 * The mixture-of-experts benchmark (`deno task bench --moe`): a seeded
 * Mixtral-shaped model (8 experts, top-2; generated once), decoded greedily
 * in four configurations under one budget that cannot hold the experts:
 *
 * - all resident (a budget that holds everything): the compute floor;
 * - experts streamed one by one through the expert cache (the default);
 * - the same with the cache shrunk to top-k slots (every token misses);
 * - whole layers (experts included) streamed through the ring.
 *
 * For each: decode tokens/s, weight bytes moved per decoded token, experts
 * loaded per token, the cache hit rate and the router readbacks; plus the
 * ratios of bytes and tokens/s against whole-layer streaming, and the cost of
 * one mapAsync readback measured in the same run (what a per-layer router
 * readback costs on this machine).
 *
 * @module
 */
import { join } from "node:path";
import { cacheRoot } from "../engine/resolve.ts";
import { parseHelpedCommand } from "../cli/_args.ts";
import { UsageError } from "../errors.ts";
import { type Gpu, requestGpu } from "../gpu/device.ts";
import { Kernels } from "../gpu/kernels.ts";
import { Forward } from "../engine/forward.ts";
import { ShardDir } from "../format/shards.ts";
import { SafetensorsFile } from "../format/safetensors.ts";
import { expertLayouts } from "../engine/_experts.ts";
import { makeTinyModel } from "../testing/tiny_model.ts";
import { openSource } from "../split/open_source.ts";
import { splitModel } from "../split/split.ts";
import { exists } from "../_fs.ts";
import { formatBytes } from "../_units.ts";

const HELP =
  `Usage: deno run -A cli.ts bench --moe [--tokens N] [--dir DIR] [--json]

Mixture-of-experts benchmark: a seeded Mixtral-shaped F16 model (8 layers,
hidden 512, 8 experts of 1408, top-2; generated once into DIR, default
$STRATA_CACHE/bench-moe or ~/.cache/strata/bench-moe), decoded greedily all
resident, with experts streamed through the expert cache (a cache of a quarter
of the experts, and of top-k slots), and with whole layers streamed; prints
tokens/s, bytes moved per token, experts loaded per token, the cache hit rate,
and the ratios to whole-layer streaming, plus the measured cost of one
mapAsync readback.

  --tokens N   decode tokens per configuration (default 16)
  --dir DIR    where the model and its shards live (kept between runs)
  --json       one JSON object on stdout`;

const PROMPT = [1, 72, 101, 108, 108, 111];

/** One configuration's figures. */
interface Row {
  name: string;
  tokensPerS: number;
  bytesPerToken: number;
  expertsPerToken: number;
  hitRate: number;
  readbacks: number;
  peakGpuBytes: number;
  ids: number[];
}

/** Mean milliseconds of one copy + submit + mapAsync + unmap of 256 bytes. */
async function mapAsyncMs(gpu: Gpu, rounds = 40): Promise<number> {
  const d = gpu.device;
  const src = d.createBuffer({
    size: 256,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const dst = d.createBuffer({
    size: 256,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  let total = 0;
  for (let i = 0; i < rounds + 5; i++) {
    const t0 = performance.now();
    const enc = d.createCommandEncoder();
    enc.copyBufferToBuffer(src, 0, dst, 0, 256);
    d.queue.submit([enc.finish()]);
    await dst.mapAsync(GPUMapMode.READ);
    dst.unmap();
    if (i >= 5) total += performance.now() - t0;
  }
  src.destroy();
  dst.destroy();
  return total / rounds;
}

/**
 * Runs the benchmark; returns the exit code.
 *
 * @example
 * ```ts ignore
 * import { runMoeBench } from "./moe.ts";
 * await runMoeBench(["--tokens", "4"]);
 * ```
 */
export async function runMoeBench(args: string[]): Promise<number> {
  const parsed = parseHelpedCommand({
    command: "bench",
    args,
    positionals: false,
    options: {
      moe: { type: "boolean" },
      tokens: { type: "string" },
      dir: { type: "string" },
      json: { type: "boolean" },
    },
    help: HELP,
  });
  if (parsed === null) return 0;
  const values = parsed.values;
  const tokens = Number(values.tokens ?? 16);
  if (!Number.isInteger(tokens) || tokens < 2) {
    throw new UsageError("bench --moe: --tokens must be an integer ≥ 2");
  }
  const dir = values.dir ?? join(cacheRoot(), "bench-moe");
  const hf = join(dir, "hf"), out = join(dir, "shards");
  if (!(await exists(join(out, "manifest.json")))) {
    console.error(`bench --moe: generating the model in ${dir}`);
    await makeTinyModel(hf, {
      arch: "mixtral",
      dtype: "F16",
      layers: 8,
      hidden: 512,
      heads: 8,
      kvHeads: 2,
      moe: { experts: 8, topK: 2, expertSize: 1408 },
    });
    const src = await openSource(hf);
    try {
      await splitModel(src, { out, quantize: "none" });
    } finally {
      src.close();
    }
  }
  const gpu = await requestGpu();
  const kernels = await Kernels.create(gpu);
  const shards = await ShardDir.open(out);
  const cfg = shards.config, m = cfg.moe!;
  const files = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    files.push(await SafetensorsFile.open(shards.layerPath(i)));
  }
  const ex = expertLayouts(cfg, files, gpu.limits);
  for (const f of files) f.close();

  const run = async (
    name: string,
    budget: number,
    expertStreaming = true,
  ): Promise<{ row: Row; fwd: Forward }> => {
    const fwd = await Forward.create({
      gpu,
      kernels,
      shards,
      budget,
      maxSeqLen: 128,
      maxT: 16,
      expertStreaming,
    });
    let { topk } = await fwd.forward(PROMPT);
    const ids = [topk.ids[0]];
    // one untimed decode token: T = 1 pipelines compiled, caches warm
    ({ topk } = await fwd.forward([ids[0]]));
    ids.push(topk.ids[0]);
    fwd.resetStats();
    const t0 = performance.now();
    for (let i = 2; i < tokens + 2; i++) {
      ({ topk } = await fwd.forward([ids[i - 1]]));
      ids.push(topk.ids[0]);
    }
    const s = (performance.now() - t0) / 1000;
    const e = fwd.stats.experts!;
    return {
      fwd,
      row: {
        name,
        tokensPerS: tokens / s,
        bytesPerToken: e.decodeBytesPerToken,
        expertsPerToken: e.decodeExpertsPerToken,
        hitRate: e.requested ? (e.hits + e.prefetchHits) / e.requested : 1,
        readbacks: e.readbacks / Math.max(1, e.decodeTokens),
        peakGpuBytes: fwd.peakGpuBytes,
        ids,
      },
    };
  };

  const rows: Row[] = [];
  // all resident: the compute floor; its plan sizes the other budgets
  const all = await run("all resident", 1e10);
  rows.push(all.row);
  const p = all.fwd.plan;
  await all.fwd.dispose();
  const full = p.totalBytes; // essentials + every layer without its experts
  const quarter = full + Math.floor(ex.count / 4) * ex.slotBytes;
  for (
    const [name, budget] of [
      ["experts streamed (cache 1/4)", quarter],
      ["experts streamed (top-k slots)", full + m.topK * ex.slotBytes],
    ] as const
  ) {
    const r = await run(name, budget);
    rows.push(r.row);
    await r.fwd.dispose();
  }
  const layerAll = full - p.kvBytes - p.headBytes - p.activationBytes;
  const essentials = full - layerAll;
  const wholeLayer = (layerAll + ex.totalBytes) / cfg.numLayers;
  // whole layers through the ring, under the same budget as the cached run
  const wholeBudget = Math.max(quarter, essentials + 3 * wholeLayer);
  const w = await run("whole layers streamed", wholeBudget, false);
  rows.push(w.row);
  await w.fwd.dispose();
  const readbackMs = await mapAsyncMs(gpu);

  const whole = w.row;
  const same = rows.every((r) => r.ids.join() === rows[0].ids.join());
  if (values.json) {
    console.log(JSON.stringify({
      model: {
        layers: cfg.numLayers,
        experts: m.numExperts,
        top_k: m.topK,
        expert_bytes: ex.slotBytes,
        all_experts_bytes: ex.totalBytes,
      },
      map_async_ms: readbackMs,
      same_ids: same,
      rows: rows.map((r) => ({
        name: r.name,
        tokens_per_s: r.tokensPerS,
        bytes_streamed_per_token: r.bytesPerToken,
        bytes_ratio_to_whole_layers: r.bytesPerToken / whole.bytesPerToken,
        tokens_per_s_ratio_to_whole_layers: r.tokensPerS / whole.tokensPerS,
        experts_loaded_per_token: r.expertsPerToken,
        expert_cache_hit_rate: r.hitRate,
        router_readbacks_per_token: r.readbacks,
        peak_gpu_bytes: r.peakGpuBytes,
      })),
    }));
    return same ? 0 : 1;
  }
  console.log(
    `model: ${cfg.numLayers} layers, ${m.numExperts} experts of ${
      formatBytes(ex.slotBytes)
    } (top-${m.topK}), all experts ${formatBytes(ex.totalBytes)}`,
  );
  console.log(
    "configuration                      tokens/s  MiB/token  ×whole  tok/s ×whole  experts/token  hit rate  readbacks/token",
  );
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(33)}${r.tokensPerS.toFixed(2).padStart(9)}${
        (r.bytesPerToken / 2 ** 20).toFixed(2).padStart(11)
      }${(r.bytesPerToken / whole.bytesPerToken).toFixed(2).padStart(8)}${
        (r.tokensPerS / whole.tokensPerS).toFixed(2).padStart(14)
      }${r.expertsPerToken.toFixed(2).padStart(15)}${
        r.hitRate.toFixed(2).padStart(10)
      }${r.readbacks.toFixed(1).padStart(17)}`,
    );
  }
  console.log(
    `one mapAsync readback (copy + submit + map of 256 B): ${
      readbackMs.toFixed(2)
    } ms; greedy ids identical across configurations: ${same}`,
  );
  return same ? 0 : 1;
}
