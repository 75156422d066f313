/**
 * `strata plan`: how a model would run under a GPU memory budget, and how
 * fast, from its config and headers alone (see lib/engine/predict.ts).
 *
 * @module
 */
import { BudgetError, UsageError } from "../errors.ts";
import { ShardDir } from "../format/shards.ts";
import { SafetensorsFile } from "../format/safetensors.ts";
import { type ModelConfig, normalizeConfig } from "../model/config.ts";
import { layerTensors } from "../model/tensors.ts";
import { describePlan, parseSize } from "../engine/plan.ts";
import {
  type Floors,
  predict,
  type Prediction,
  type WeightEncoding,
} from "../engine/predict.ts";
import { measureGpuFloors, measureReadRate } from "../engine/_floors.ts";
import { openSource } from "../split/open_source.ts";
import { parseRepoId } from "../hub/repo_id.ts";
import { formatBytes } from "../_units.ts";
import { exists } from "../_fs.ts";
import { numberFlag, parseOneArgCommand } from "./_args.ts";
import { join } from "node:path";
import { parseQuantization, quantizationChoices } from "../quant/encoding.ts";

const QUANTIZE = quantizationChoices();

const HELP =
  `Usage: deno run -A cli.ts plan <model|config.json|org/name> [flags]

Prints the residency plan a model gets under a GPU memory budget (which
layers stay resident, which stream, through how many slots), the bytes read
and uploaded per token, and a prediction of seconds per token from three
floors: disk read, upload (PCIe) and compute. Needs no GPU and reads only
config.json and file headers (a hub id's config.json is downloaded).

The read floor is measured here (a warm sequential read of the model's files,
or of a temporary file); upload and compute are measured on the WebGPU
adapter when there is one (a few seconds); flags override each. With two or
more ring slots prefetch hides the read; on a GPU the pass takes the larger of
upload and compute plus the share of the shorter that an upload timed beside
a matvec leaves unhidden; on a CPU adapter (lavapipe, llvmpipe) upload and
compute share the cores and add up. A table shows the effect of q8/q4, of a
larger budget and of the batch (tokens per pass).

Mixture-of-experts models (Mixtral, Qwen2-MoE, Qwen3-MoE) are planned as the
engine plans them: the budget is split between the layers without their
experts and an expert cache. When every expert fits, none moves; otherwise
the expected cache misses are read and uploaded per token, assuming uniform
independent routing (real routing is skewed; bench --shape mixtral-8x7b
measures it), and only the chosen experts are computed. --expert-hit-rate
replaces the assumed hit rate with one measured by a run (run --json's
expert_cache_hit_rate under the same budget) for the main prediction; the
table keeps the assumption.

Flags:
  --gpu-memory SIZE     budget, e.g. 4GB (default 6 GiB: 75% of an assumed 8 GiB GPU)
  --quantize Q          projection weights as they would be split: ${QUANTIZE}
                        (default: as stored)
  --batch N             tokens per pass (default 1)
  --max-seq-len N       KV cache positions (default: as 'run': min(4096,
                        max_position_embeddings), halved down to 256 while it does not fit)
  --disk-gbps X         read floor in GB/s instead of measuring it
  --pcie-gbps Y         upload floor in GB/s instead of measuring it
  --compute-gbps Z      matvec weight bandwidth in GB/s instead of measuring it
  --expert-hit-rate R   a measured expert cache hit rate (0-1) instead of
                        uniform routing's (mixture-of-experts models)
  --no-gpu              do not touch the GPU (upload/compute unknown unless given)
  --json                print one JSON object on stdout
  -h, --help            show this help

Example:
  deno run -A cli.ts plan meta-llama/Llama-2-70b-hf --gpu-memory 4GB --disk-gbps 3 --pcie-gbps 12`;

/** What a model is, as far as `plan` needs. */
interface Loaded {
  config: ModelConfig;
  /** Encoding of the projection weights as stored. */
  encoding: WeightEncoding;
  /** Weight files for the read test (none for a bare config). */
  files: string[];
  label: string;
}

function torchEncoding(raw: Record<string, unknown>): WeightEncoding {
  const t = String(raw.torch_dtype ?? raw.dtype ?? "float16");
  return t === "bfloat16" ? "BF16" : t === "float32" ? "F32" : "F16";
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new UsageError(`${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${path}: invalid JSON: ${(e as Error).message}`);
  }
}

async function load(what: string): Promise<Loaded> {
  let st: Deno.FileInfo | null = null;
  try {
    st = await Deno.stat(what);
  } catch {
    st = null;
  }
  if (st?.isFile && what.endsWith(".json")) {
    const raw = await readJson(what);
    return {
      config: normalizeConfig(raw, what),
      encoding: torchEncoding(raw),
      files: [],
      label: what,
    };
  }
  if (st?.isDirectory && await ShardDir.isShardDir(what)) {
    const sd = await ShardDir.open(what);
    const cfg = sd.manifest.config;
    let encoding: WeightEncoding = "F16";
    const q = sd.manifest.quantization;
    if (q !== "none") encoding = q;
    else if (cfg.numLayers > 0) {
      const f = await SafetensorsFile.open(sd.layerPath(0));
      const t = f.tensors.get(
        layerTensors(cfg, 0).find((t) => t.role === "qProj")!.name,
      );
      f.close();
      if (t?.dtype === "BF16" || t?.dtype === "F32") encoding = t.dtype;
    }
    const files = cfg.numLayers > 0
      ? Array.from({ length: cfg.numLayers }, (_, i) => sd.layerPath(i))
      : [];
    return { config: cfg, encoding, files, label: what };
  }
  if (st) {
    const src = await openSource(what);
    try {
      const cfg = normalizeConfig(src.config, what);
      const q = src.tensors.find((t) => t.name.endsWith("q_proj.weight"));
      const d = q?.dtype ?? "F16";
      return {
        config: cfg,
        encoding: d as WeightEncoding,
        files: src.sourceFiles.filter((f) => !f.endsWith(".json")),
        label: `${what} (${src.description})`,
      };
    } finally {
      src.close();
    }
  }
  if (parseRepoId(what)) {
    const { downloadSnapshot } = await import("../hub/download.ts");
    const dir = await downloadSnapshot(what, {
      only: ["config.json"],
      onProgress: () => {},
    });
    const path = join(dir, "config.json");
    if (!(await exists(path))) {
      throw new UsageError(`${what}: the repo has no config.json`);
    }
    const raw = await readJson(path);
    return {
      config: normalizeConfig(raw, path),
      encoding: torchEncoding(raw),
      files: [],
      label: `${what} (config.json)`,
    };
  }
  throw new UsageError(
    `plan: ${what} is not a file, a directory or a hub id org/name`,
  );
}

/** As `run`: the default KV length is halved (down to 256) until the plan fits. */
function fit(
  cfg: ModelConfig,
  o: Parameters<typeof predict>[1],
  seqGiven: boolean,
): Prediction {
  let maxSeqLen = o.maxSeqLen ??
    Math.min(4096, cfg.maxPositionEmbeddings || 4096);
  for (;;) {
    try {
      return predict(cfg, { ...o, maxSeqLen });
    } catch (e) {
      if (e instanceof BudgetError && !seqGiven && maxSeqLen > 256) {
        maxSeqLen = Math.max(256, Math.floor(maxSeqLen / 2));
        continue;
      }
      throw e;
    }
  }
}

const gbps = (bps?: number) =>
  bps === undefined || !Number.isFinite(bps) ? "?" : (bps / 1e9).toFixed(2);
const secs = (s: number) =>
  Number.isNaN(s)
    ? "?"
    : s < 1
    ? `${(s * 1000).toFixed(0)} ms`
    : `${s.toFixed(2)} s`;

/**
 * Runs `plan` with command-line `args`; returns the exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "./plan.ts";
 * await main(["llama-2-70b/config.json", "--gpu-memory", "4GB", "--no-gpu"]);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const cmd = parseOneArgCommand({
    command: "plan",
    args,
    options: {
      "gpu-memory": { type: "string" },
      quantize: { type: "string" },
      batch: { type: "string" },
      "max-seq-len": { type: "string" },
      "disk-gbps": { type: "string" },
      "pcie-gbps": { type: "string" },
      "compute-gbps": { type: "string" },
      "expert-hit-rate": { type: "string" },
      "no-gpu": { type: "boolean" },
      json: { type: "boolean" },
    },
    help: HELP,
    what: "model, config.json or org/name",
  });
  if (cmd === null) return 0;
  const { values: v, arg } = cmd;
  const quantize = parseQuantization(v.quantize, "plan: --quantize");
  const budget = parseSize(v["gpu-memory"] ?? 6 * 2 ** 30);
  const batch = numberFlag("batch", v.batch, { int: true, min: 1 }) ?? 1;
  const maxSeqLen = numberFlag("max-seq-len", v["max-seq-len"], {
    int: true,
    min: 1,
  });
  const given = (f: string) => {
    const x = numberFlag(f, v[f as "disk-gbps"], { int: false, min: 0 });
    return x === undefined ? undefined : x * 1e9;
  };
  const expertHitRate = numberFlag("expert-hit-rate", v["expert-hit-rate"], {
    int: false,
    min: 0,
  });
  if (expertHitRate !== undefined && expertHitRate > 1) {
    throw new UsageError(
      `plan: --expert-hit-rate is a fraction of the chosen experts, from 0 to 1, got '${
        v["expert-hit-rate"]
      }'`,
    );
  }
  const m = await load(arg);
  const cfg = m.config;
  if (expertHitRate !== undefined && !cfg.moe) {
    throw new UsageError(
      `plan: --expert-hit-rate is for mixture-of-experts models; ${m.label} has no experts`,
    );
  }
  const encoding: WeightEncoding = quantize === "none"
    ? m.encoding
    : quantize as WeightEncoding;

  // floors: given, else measured
  const floors: Floors = {};
  const how: Record<string, string> = {};
  floors.readBps = given("disk-gbps");
  how.read = "given";
  if (floors.readBps === undefined) {
    floors.readBps = await measureReadRate(m.files);
    how.read = m.files.length
      ? "measured: warm sequential read of the model's files"
      : "measured: warm sequential read of a temporary file";
  }
  floors.uploadBps = given("pcie-gbps");
  floors.computeBps = given("compute-gbps");
  how.upload = floors.uploadBps !== undefined ? "given" : "unknown";
  how.compute = floors.computeBps !== undefined ? "given" : "unknown";
  let adapter: string | null = null;
  if (
    !v["no-gpu"] &&
    (floors.uploadBps === undefined || floors.computeBps === undefined)
  ) {
    // the upload is measured at the size of this plan's slot, from a layer
    // file; experts as the expert store uploads one (mapped when it can be)
    const probe = fit(
      cfg,
      { ...{ encoding, maxSeqLen, floors: {} }, budget, batch },
      maxSeqLen !== undefined,
    );
    const slot = probe.plan.slotBytes;
    const g = await measureGpuFloors(encoding, {
      bytes: slot || undefined,
      file: m.files[0],
      expertBytes: probe.experts?.expertBytes,
    });
    if (g) {
      adapter = g.adapter;
      floors.cpuAdapter = g.cpuAdapter;
      floors.overlap = g.overlap;
      if (floors.uploadBps === undefined && g.expertUploadBps) {
        floors.expertUploadBps = g.expertUploadBps;
        how.expertUpload = `measured on ${g.adapter}: writeBuffer of a ${
          formatBytes(Math.min(probe.experts!.expertBytes, 1 << 30))
        } expert in 1 MiB pieces${
          m.files.length ? " from a mapped layer file" : ""
        }, as the expert store uploads an expert`;
      }
      if (floors.uploadBps === undefined) {
        floors.uploadBps = g.uploadBps;
        how.upload = `measured on ${g.adapter}: writeBuffer of ${
          formatBytes(Math.min(slot || 64 << 20, 1 << 30))
        } in 1 MiB pieces${m.files.length ? " from a mapped layer file" : ""}`;
      }
      if (floors.computeBps === undefined) {
        floors.computeBps = g.computeBps;
        how.compute = `measured on ${g.adapter}: ${encoding} matvec 4096x4096`;
      }
    }
  }

  const base = { encoding, maxSeqLen, floors };
  const main = fit(
    cfg,
    { ...base, budget, batch, expertHitRate },
    maxSeqLen !== undefined,
  );
  // the table: encodings x budgets, then batches
  const encs: WeightEncoding[] = [
    ...new Set([m.encoding, "q8", "q4"] as WeightEncoding[]),
  ];
  const rows: {
    encoding: WeightEncoding;
    budget: number;
    batch: number;
    p: Prediction | null;
  }[] = [];
  const row = (e: WeightEncoding, b: number, n: number) => {
    let p: Prediction | null = null;
    try {
      p = fit(
        cfg,
        { ...base, encoding: e, budget: b, batch: n },
        maxSeqLen !== undefined,
      );
    } catch (err) {
      if (!(err instanceof BudgetError)) throw err;
    }
    rows.push({ encoding: e, budget: b, batch: n, p });
  };
  for (const e of encs) for (const k of [1, 2, 4]) row(e, budget * k, batch);
  for (const n of [4, 16]) if (n !== batch) row(encoding, budget, n);

  if (v.json) {
    const pj = (p: Prediction) => ({
      resident: p.plan.resident.length,
      streamed: p.plan.streamed.length,
      slots: p.plan.slots,
      slot_bytes: p.plan.slotBytes,
      total_bytes: p.plan.totalBytes,
      kv_bytes: p.plan.kvBytes,
      streamed_bytes_per_token: p.streamedBytesPerToken,
      compute_bytes_per_pass: p.computeBytesPerPass,
      read_s: p.readS,
      upload_s: p.uploadS,
      compute_s: p.computeS,
      overlapped: p.overlapped,
      seconds_per_token: p.secondsPerToken,
      unknown: p.unknown,
      max_seq_len: p.maxSeqLen,
      ...(p.experts
        ? {
          experts: {
            count: p.experts.count,
            per_layer: p.experts.perLayer,
            top_k: p.experts.topK,
            sparse_layers: p.experts.sparseLayers,
            expert_bytes: p.experts.expertBytes,
            cached: p.experts.cached,
            all_resident: p.experts.allResident,
            cache_bytes: p.experts.cacheBytes,
            expected_hit_rate: p.experts.hitRate,
            expected_loaded_per_pass: p.experts.loadedPerPass,
            expected_bytes_per_pass: p.experts.bytesPerPass,
            computed_per_layer: p.experts.computedPerLayer,
            load_s: p.expertLoadS,
            routing: p.experts.routing === "given"
              ? "given: --expert-hit-rate"
              : "uniform independent (assumed)",
          },
        }
        : {}),
    });
    console.log(JSON.stringify({
      model: m.label,
      architecture: cfg.architecture,
      layers: cfg.numLayers,
      encoding,
      budget,
      batch,
      floors: {
        read_gbps: (floors.readBps ?? NaN) / 1e9,
        upload_gbps: (floors.uploadBps ?? NaN) / 1e9,
        expert_upload_gbps: cfg.moe
          ? (floors.expertUploadBps ?? floors.uploadBps ?? NaN) / 1e9
          : undefined,
        compute_gbps: (floors.computeBps ?? NaN) / 1e9,
        cpu_adapter: floors.cpuAdapter ?? null,
        overlap: floors.overlap ?? null,
        adapter,
        how,
      },
      plan: pj(main),
      table: rows.map((r) => ({
        encoding: r.encoding,
        budget: r.budget,
        batch: r.batch,
        ...(r.p ? pj(r.p) : { fits: false }),
      })),
    }));
    return 0;
  }
  const p = main;
  const ex = p.experts;
  const out: string[] = [];
  out.push(
    `model: ${m.label}: ${cfg.architecture}, ${cfg.numLayers} layers, hidden ${cfg.hiddenSize}, intermediate ${cfg.intermediateSize}, ${cfg.numHeads} heads (${cfg.numKvHeads} KV), vocab ${cfg.vocabSize}${
      cfg.moe
        ? `, ${cfg.moe.numExperts} experts of ${cfg.moe.expertSize}, top-${cfg.moe.topK}${
          cfg.moe.sharedExpertSize
            ? `, a shared expert of ${cfg.moe.sharedExpertSize}`
            : ""
        } (${ex?.sparseLayers ?? 0} sparse layers)`
        : ""
    }; weights ${encoding}`,
  );
  out.push(
    describePlan(p.plan) + (ex ? " (the layers without their experts)" : ""),
  );
  if (ex) {
    const f2 = (x: number) => x.toFixed(2);
    const share = `${formatBytes(ex.cacheBytes)} of the ${
      formatBytes(budget)
    } budget; the plan above has the rest`;
    out.push(
      `experts: ${ex.count} of ${formatBytes(ex.expertBytes)}, ${
        ex.allResident
          ? `all resident (${share}): none moves, every one is computed`
          : `${ex.cached} of ${ex.count} cached (${share}; ${
            f2(ex.cachedPerLayer)
          } of ${ex.perLayer} per sparse layer); per pass ${
            f2(ex.chosenPerLayer)
          } chosen per sparse layer, expected hit rate ${f2(ex.hitRate)}, ${
            f2(ex.loadedPerPass)
          } experts loaded (${formatBytes(ex.bytesPerPass)}), ${
            ex.routing === "given"
              ? "from the hit rate given (--expert-hit-rate)"
              : "assuming uniform independent routing (real routing is skewed: bench --shape mixtral-8x7b measures it; --expert-hit-rate takes a measured rate)"
          }`
      }`,
    );
  }
  const ring = p.plan.bytesStreamedPerToken / p.batch;
  out.push(
    `bytes per token: ${
      formatBytes(p.streamedBytesPerToken)
    } read and uploaded${
      ex && !ex.allResident
        ? ` (${formatBytes(ring)} through the ring, ${
          formatBytes(ex.bytesPerPass / p.batch)
        } of experts expected)`
        : ""
    }, ${
      formatBytes(p.computeBytesPerPass / p.batch)
    } of weights computed over` + (p.batch > 1 ? ` (batch ${p.batch})` : "") +
      (ex && !ex.allResident
        ? ` (of the experts, the ${
          ex.computedPerLayer.toFixed(2)
        } chosen per sparse layer)`
        : ""),
  );
  out.push(
    `floors: read ${gbps(floors.readBps)} GB/s (${how.read}); upload ${
      gbps(floors.uploadBps)
    } GB/s (${how.upload}); ${
      cfg.moe
        ? `expert upload ${
          gbps(floors.expertUploadBps ?? floors.uploadBps)
        } GB/s (${
          how.expertUpload ??
            (how.upload === "given"
              ? "given: --pcie-gbps"
              : floors.uploadBps !== undefined
              ? "taken as the upload above: not measured as the expert store uploads an expert"
              : "unknown")
        }); `
        : ""
    }compute ${gbps(floors.computeBps)} GB/s (${how.compute})`,
  );
  out.push(
    `per pass: read ${secs(p.readS)}, upload ${secs(p.uploadS)}, compute ${
      secs(p.computeS)
    }; ${
      !p.overlapped
        ? "one slot: they add up"
        : floors.cpuAdapter
        ? "prefetch overlaps the read; on a CPU adapter upload and compute share the cores and the queue: they add up"
        : floors.overlap
        ? `prefetch overlaps them: the largest, plus ${
          (floors.overlap * 100).toFixed(0)
        }% of the shorter of upload and compute (measured: an upload beside a matvec)`
        : "prefetch overlaps them (the largest counts)"
    }${
      p.expertLoadS > 0
        ? `; the expert loads (${
          secs(p.expertLoadS)
        } of the read and upload) wait on each sparse layer's router and add to the pass (one router readback per sparse layer not counted; bench --shape mixtral-8x7b measures how close the expert store's loads come)`
        : ""
    }`,
  );
  out.push(
    `predicted: ${p.unknown.length ? "at least " : ""}${
      secs(p.secondsPerToken)
    }/token (${(1 / p.secondsPerToken).toFixed(3)} tokens/s; KV cache ${
      p.plan.kvBytes ? formatBytes(p.plan.kvBytes) : "0 B"
    } for ${p.maxSeqLen} positions)${
      p.unknown.length
        ? `; unknown: ${p.unknown.join(", ")} (pass --pcie-gbps/--compute-gbps)`
        : ""
    }`,
  );
  out.push("");
  out.push(
    "encoding  budget      batch  resident+streamed  slots  " +
      (cfg.moe ? "experts cached  " : "") + "streamed/token  s/token",
  );
  for (const r of rows) {
    const left = `${r.encoding.padEnd(8)}  ${
      formatBytes(r.budget).padEnd(10)
    }  ${String(r.batch).padStart(5)}  `;
    if (!r.p) {
      out.push(left + "does not fit");
      continue;
    }
    const q = r.p;
    const cached = q.experts
      ? (q.experts.allResident
        ? "all"
        : `${q.experts.cached}/${q.experts.count}`).padStart(14) + "  "
      : "";
    out.push(
      left +
        `${
          `${q.plan.resident.length}+${q.plan.streamed.length}`.padStart(17)
        }  ${String(q.plan.slots).padStart(5)}  ${cached}${
          formatBytes(q.streamedBytesPerToken).padStart(14)
        }  ${secs(q.secondsPerToken).padStart(7)}`,
    );
  }
  console.log(out.join("\n"));
  return 0;
}
