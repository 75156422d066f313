/**
 * The benchmark at a real model's shapes (`deno task bench --shape
 * llama-2-70b --layers 2`): a seeded F16 model with that model's layer
 * dimensions and vocabulary but only `--layers` decoder layers, made once in
 * the bench cache (streamed to disk tensor by tensor, with progress) and
 * split there (the split's speed against its floor is printed), then decoded
 * greedily under `--gpu-memory`. It reports seconds per token, the read,
 * upload and compute floors measured in the same run, the streaming units in
 * flight, and what `plan` (lib/engine/predict.ts) predicts from those floors.
 *
 * `--shape mixtral-8x7b` makes a Mixtral checkpoint (8 experts of 14336,
 * top-2: 2.8 GB of experts per F16 layer) through the same maker as the
 * tests' tiny Mixtral models; the run streams experts through the expert
 * cache, and the report adds the expert statistics of `run --json`
 * (`experts_loaded_per_token`, `expert_cache_hit_rate`, `experts_resident`).
 * Its floors are those of the expert bytes moved per decoded token, and
 * `plan`'s prediction (lib/engine/predict.ts: the engine's expert cache,
 * expected loads under uniform routing) is printed from them.
 *
 * @module
 */
import { join } from "node:path";
import { UsageError } from "../errors.ts";
import { type Gpu, requestGpu } from "../gpu/device.ts";
import { AutoModel } from "../engine/auto_model.ts";
import { parseSize, type ResidencyPlan } from "../engine/plan.ts";
import { predict } from "../engine/predict.ts";
import { type GpuFloors, gpuFloors } from "../engine/_floors.ts";
import { mapFile } from "../engine/_mmap.ts";
import { gpuUploadTarget, pieceWriter } from "../engine/_upload.ts";
import { expertLayouts } from "../engine/_experts.ts";
import { moeJsonStats } from "../engine/moe_stats.ts";
import { ShardDir } from "../format/shards.ts";
import { SafetensorsFile } from "../format/safetensors.ts";
import type { ModelConfig } from "../model/config.ts";
import { openSource } from "../split/open_source.ts";
import { splitModel } from "../split/split.ts";
import { formatBytes } from "../_units.ts";
import {
  makeTinyModel,
  tinyModelBytes,
  type TinyModelOptions,
} from "../testing/tiny_model.ts";
import { exists } from "../_fs.ts";

/** A public model's shapes, as the benchmark makes it. */
export interface Shape {
  /** The architecture of the made checkpoint (its config.json `model_type`). */
  arch: "llama" | "mixtral";
  /** hidden_size. */
  hidden: number;
  /** intermediate_size (of one expert in a mixture-of-experts model). */
  intermediate: number;
  /** num_attention_heads. */
  heads: number;
  /** num_key_value_heads. */
  kvHeads: number;
  /** vocab_size. */
  vocab: number;
  /** The real model's num_hidden_layers (the most `--layers` allows). */
  layers: number;
  /** The real model's max_position_embeddings (the KV length `run` would choose: min(4096, this)). */
  maxPositions: number;
  /** Mixture of experts: num_local_experts and num_experts_per_tok. */
  moe?: { experts: number; topK: number };
}

/** The public shapes the benchmark can make (decoder layer and vocabulary). */
export const SHAPES: Record<string, Shape> = {
  "llama-2-70b": {
    arch: "llama",
    hidden: 8192,
    intermediate: 28672,
    heads: 64,
    kvHeads: 8,
    vocab: 32000,
    layers: 80,
    maxPositions: 4096,
  },
  "llama-3-8b": {
    arch: "llama",
    hidden: 4096,
    intermediate: 14336,
    heads: 32,
    kvHeads: 8,
    vocab: 128256,
    layers: 32,
    maxPositions: 8192,
  },
  // rope_theta 1e6 and rms_norm_eps 1e-5 as the maker's Mixtral config
  "mixtral-8x7b": {
    arch: "mixtral",
    hidden: 4096,
    intermediate: 14336,
    heads: 32,
    kvHeads: 8,
    vocab: 32000,
    layers: 32,
    maxPositions: 32768,
    moe: { experts: 8, topK: 2 },
  },
};

const PROMPT = [1, 72, 101, 108, 108, 111];

/**
 * The most streaming units read or uploaded while another computes
 * (`stream_units_in_flight` of `run --json`), where the run's stats have it.
 */
function unitsInFlight(stats: object): number | undefined {
  const forward = (stats as { forward?: object }).forward;
  for (const o of [stats, forward]) {
    if (!o) continue;
    const r = o as Record<string, unknown>;
    for (const k of ["unitsInFlight", "streamUnitsInFlight"]) {
      if (typeof r[k] === "number") return r[k] as number;
    }
  }
  return undefined;
}

/** Options of {@link runShapeBench}. */
export interface ShapeBenchOptions {
  /** A key of {@link SHAPES}. */
  shape: string;
  /** Decoder layers to make. */
  layers: number;
  /** Budget, e.g. "4GB". */
  gpuMemory: string;
  /** Decode tokens to time. */
  tokens: number;
  /** The bench cache directory. */
  root: string;
  /** Also measure the matvec kernel alone, the compute floor `plan` uses (default true; slow on a CPU adapter). */
  kernelFloor?: boolean;
  /** KV cache positions (default: what `run` chooses for the real model, min(4096, its max_position_embeddings)). */
  maxSeqLen?: number;
}

/** A progress callback printing `label: done of total GB (p %, rate)` on stderr at each tenth. */
function tenths(label: string): (done: number, total: number) => void {
  let shown = 0;
  const t0 = performance.now();
  return (done, total) => {
    const k = total > 0 ? Math.floor((10 * done) / total) : 10;
    if (k <= shown) return;
    shown = k;
    const s = (performance.now() - t0) / 1000;
    console.error(
      `${label}: ${formatBytes(done, 1000)} of ${formatBytes(total, 1000)} (${
        Math.round((100 * done) / total)
      } %, ${(done / s / 1e9).toFixed(2)} GB/s)`,
    );
  };
}

/**
 * Makes the shape's checkpoint (into a `.partial` directory renamed when
 * complete, so an interrupted run is never taken for a made model) and
 * splits it into `shards`, printing the disk it needs and the split's speed
 * against its floor; the checkpoint is removed afterwards.
 */
async function makeShards(
  make: TinyModelOptions,
  dirs: { name: string; hf: string; shards: string },
): Promise<void> {
  const { name, hf, shards } = dirs;
  if (!(await exists(join(hf, "config.json")))) {
    const bytes = tinyModelBytes(make);
    console.log(
      `making ${name} in ${hf}: ${formatBytes(bytes, 1000)} of tensors; about ${
        formatBytes(2 * bytes, 1000)
      } of disk while it is split (the checkpoint and its shards; the checkpoint is removed after) …`,
    );
    const part = `${hf}.partial`;
    await Deno.remove(part, { recursive: true }).catch(() => {});
    await makeTinyModel(part, { ...make, onProgress: tenths("making") });
    await Deno.rename(part, hf);
  }
  const src = await openSource(hf);
  try {
    let last = null as
      | null
      | Parameters<
        NonNullable<Parameters<typeof splitModel>[1]["onProgress"]>
      >[0];
    const show = tenths("splitting");
    await splitModel(src, {
      out: shards,
      measureFloor: true,
      onProgress: (p) => {
        last = p;
        show(
          p.sourceBytesDone ?? p.bytesDone,
          p.sourceBytesTotal ?? p.bytesTotal,
        );
      },
    });
    const p = last!;
    const rate = (p.sourceBytesDone ?? 0) / (p.seconds ?? 1);
    console.log(
      `split: ${formatBytes(p.sourceBytesTotal ?? 0, 1000)} in ${
        (p.seconds ?? 0).toFixed(1)
      } s = ${(rate / 1e9).toFixed(2)} GB/s` +
        (p.floor
          ? `, ${(rate / p.floor.bps).toFixed(2)}× its floor ${
            (p.floor.bps / 1e9).toFixed(2)
          } GB/s (warm read ${
            (p.floor.readBps / 1e9).toFixed(2)
          }, fdatasync'd write ${(p.floor.writeBps / 1e9).toFixed(2)} GB/s)`
          : ""),
    );
  } finally {
    src.close();
  }
  // the shards are all the benchmark needs from now on
  await Deno.remove(hf, { recursive: true }).catch(() => {});
}

/** Reads `files` once, as the engine's reads see the page cache: bytes and seconds. */
async function readAll(files: string[]): Promise<{ bytes: number; s: number }> {
  const buf = new Uint8Array(64 << 20);
  let bytes = 0;
  const t0 = performance.now();
  for (const p of files) {
    const f = await Deno.open(p, { read: true });
    try {
      for (;;) {
        const n = await f.read(buf);
        if (n === null) break;
        bytes += n;
      }
    } finally {
      f.close();
    }
  }
  return { bytes, s: (performance.now() - t0) / 1000 };
}

/**
 * Seconds to upload `bytes` into a `slotBytes` GPU buffer as the engine
 * does, timed on the second pass (the mapping's page tables and the slot
 * warm, as in the engine's steady state): 1 MiB writeBuffer pieces from the
 * mapped layer `file`, submitted every 16 MiB, as the reader uploads a layer
 * or a unit and the expert store an expert (a slot is an expert then).
 */
async function uploadSeconds(gpu: Gpu, o: {
  bytes: number;
  slotBytes: number;
  file: string;
}): Promise<number> {
  const { slotBytes } = o;
  // (experts moved per token is a mean: whole 4-byte words)
  const streamed = Math.ceil(o.bytes / 4) * 4;
  if (slotBytes <= 0 || streamed <= 0) return 0;
  const chunk = 64 << 20;
  const target = gpuUploadTarget(gpu.device);
  const slot = target.create(Math.ceil(slotBytes / 256) * 256, "bench-slot");
  const size = (await Deno.stat(o.file)).size;
  // from the mapped layer file where it can be mapped (a heap buffer
  // uploads several times slower on lavapipe)
  const mapped = size >= chunk ? mapFile(o.file, size) : null;
  const src = mapped?.bytes ?? new Uint8Array(chunk);
  if (!mapped) src.fill(1);
  const q = gpu.device.queue;
  let uploadS = 0;
  try {
    for (let pass = 0; pass < 2; pass++) {
      await q.onSubmittedWorkDone();
      const u0 = performance.now();
      let at = 0; // where in src the next chunk comes from
      for (let done = 0; done < streamed;) {
        // one slot's upload, as the reader's (1 MiB pieces, submitted
        // every 16 MiB)
        const up = pieceWriter(target, slot, slotBytes);
        for (let off = 0; off < slotBytes && done < streamed; off += chunk) {
          const n = Math.min(chunk, slotBytes - off, streamed - done);
          if (at + n > src.length) at = 0;
          up(off, src.subarray(at, at + n));
          done += n;
          at += n;
        }
        q.submit([]);
      }
      await q.onSubmittedWorkDone();
      uploadS = (performance.now() - u0) / 1000;
    }
  } finally {
    slot.destroy();
    mapped?.unmap();
  }
  return uploadS;
}

/** The experts of a made model: their slot bytes, count and sparse layers (null for a dense model). */
async function expertsOf(
  cfg: ModelConfig,
  sd: ShardDir,
  gpu: Gpu,
): Promise<{ slotBytes: number; count: number; sparseLayers: number } | null> {
  if (!cfg.moe) return null;
  const files: SafetensorsFile[] = [];
  try {
    for (let i = 0; i < cfg.numLayers; i++) {
      files.push(await SafetensorsFile.open(sd.layerPath(i)));
    }
    const ex = expertLayouts(cfg, files, gpu.limits);
    return {
      slotBytes: ex.slotBytes,
      count: ex.count,
      sparseLayers: ex.layouts.filter((l) => l !== null).length,
    };
  } finally {
    for (const f of files) f.close();
  }
}

/**
 * Prints what `plan` predicts for a dense model from this run's floors, and
 * from plan's own probes (`kernel`), against the measured s/token.
 */
function printPrediction(cfg: ModelConfig, o: {
  budget: number;
  maxSeqLen: number;
  plan: ResidencyPlan;
  streamed: number;
  seconds: { read: number; upload: number; compute: number };
  computeBytes: number;
  kernel: GpuFloors | null;
  measured: number;
}): void {
  const { budget, maxSeqLen, streamed, kernel: g } = o;
  const floors = {
    readBps: streamed > 0 ? streamed / o.seconds.read : undefined,
    uploadBps: streamed > 0 ? streamed / o.seconds.upload : undefined,
  };
  const pred = predict(cfg, {
    encoding: "F16",
    budget,
    maxSeqLen,
    floors: {
      ...floors,
      computeBps: o.computeBytes / o.seconds.compute,
      cpuAdapter: g?.cpuAdapter,
      overlap: g?.overlap,
    },
  });
  const kernelPred = g &&
    predict(cfg, {
      encoding: "F16",
      budget,
      maxSeqLen,
      floors: {
        readBps: floors.readBps,
        uploadBps: g.uploadBps,
        computeBps: g.computeBps,
        cpuAdapter: g.cpuAdapter,
        overlap: g.overlap,
      },
    });
  if (
    pred.plan.resident.length !== o.plan.resident.length ||
    pred.plan.slots !== o.plan.slots
  ) {
    console.log(
      `note: plan's residency (${pred.plan.resident.length} resident, ${pred.plan.slots} slots) differs from the engine's`,
    );
  }
  const ratio = (p: number) => (o.measured / p).toFixed(2);
  console.log(
    `plan predicts ${
      pred.secondsPerToken.toFixed(2)
    } s/token from these floors (${
      !pred.overlapped
        ? "one slot: their sum"
        : g?.cpuAdapter
        ? "overlapped on a CPU adapter: read, or upload + compute (they share the cores and the queue)"
        : g?.overlap
        ? `overlapped: the largest, plus ${
          (g.overlap * 100).toFixed(0)
        }% of the shorter of upload and compute (measured)`
        : "overlapped: the largest"
    }) → measured/predicted ${ratio(pred.secondsPerToken)}${
      kernelPred
        ? `; from plan's own probes (upload ${
          (g!.uploadBps / 1e9).toFixed(2)
        } GB/s, matvec ${(g!.computeBps / 1e9).toFixed(2)} GB/s) ${
          kernelPred.secondsPerToken.toFixed(2)
        } s/token → ${ratio(kernelPred.secondsPerToken)}`
        : ""
    }`,
  );
}

/**
 * Runs the shape benchmark; prints its report and returns the exit code.
 *
 * @throws {UsageError} for an unknown shape or a layer count the real model does not have.
 * @example
 * ```ts ignore
 * import { runShapeBench } from "./shape.ts";
 * await runShapeBench({ shape: "llama-2-70b", layers: 2, gpuMemory: "4GB", tokens: 3, root: "/tmp/bench" });
 * ```
 */
export async function runShapeBench(o: ShapeBenchOptions): Promise<number> {
  const s = SHAPES[o.shape];
  if (!s) {
    throw new UsageError(
      `--shape must be one of ${
        Object.keys(SHAPES).join(", ")
      } (got ${o.shape})`,
    );
  }
  if (!Number.isInteger(o.layers) || o.layers < 1 || o.layers > s.layers) {
    throw new UsageError(`--layers must be 1..${s.layers}`);
  }
  const t0 = performance.now();
  const name = `${o.shape}-${o.layers}l-f16`;
  const hf = join(o.root, name);
  const shards = join(o.root, `${name}-shards`);
  if (!(await exists(join(shards, "manifest.json")))) {
    await makeShards({
      arch: s.arch,
      dtype: "F16",
      layers: o.layers,
      hidden: s.hidden,
      intermediate: s.intermediate,
      heads: s.heads,
      kvHeads: s.kvHeads,
      vocab: s.vocab,
      maxPositions: s.maxPositions,
      moe: s.moe &&
        {
          experts: s.moe.experts,
          topK: s.moe.topK,
          expertSize: s.intermediate,
        },
    }, { name, hf, shards });
  }
  const sd = await ShardDir.open(shards);
  const cfg = sd.manifest.config;
  const budget = parseSize(o.gpuMemory);
  const maxSeqLen = o.maxSeqLen ?? Math.min(4096, s.maxPositions);
  const gpu = await requestGpu();
  const adapter = gpu.adapter.description || gpu.adapter.vendor;
  console.log(
    `model: ${o.shape} shapes, ${o.layers} of ${s.layers} layers (hidden ${s.hidden}, intermediate ${s.intermediate}${
      s.moe ? ` per expert, ${s.moe.experts} experts, top-${s.moe.topK}` : ""
    }, ${s.heads} heads, ${s.kvHeads} KV heads, vocab ${s.vocab}), F16, KV cache ${maxSeqLen} positions; adapter ${adapter}`,
  );

  /** Greedy decode, best s/token of two timed runs after a warm-up. */
  const decode = async (gpuMemory: number, log: boolean) => {
    const m = await AutoModel.fromPretrained(shards, {
      gpu,
      gpuMemory,
      maxSeqLen,
      log: log ? (l) => console.log(l) : undefined,
    });
    let ids: number[] = [];
    let perToken = Infinity;
    let stats = null as AutoModel["lastStats"];
    try {
      await m.generate(PROMPT, { maxNewTokens: 2, temperature: 0 }); // warm-up
      for (let r = 0; r < 2; r++) {
        ids = await m.generate(PROMPT, {
          maxNewTokens: o.tokens,
          temperature: 0,
        });
        const st = m.lastStats!;
        const t = st.decodeS / (ids.length - 1);
        if (t < perToken) {
          perToken = t;
          stats = st;
        }
      }
    } finally {
      await m.dispose();
    }
    return { plan: m.plan, ids, perToken, stats: stats! };
  };
  // 1. compute alone: everything resident (room to spare), then 2. under the budget
  const all = await decode(64 * 2 ** 30, false);
  const run = await decode(budget, true);
  const plan = run.plan;
  // MoE: the experts stream on their own, through the expert cache
  const ex = await expertsOf(cfg, sd, gpu);
  const moe = run.stats.forward.experts;
  const expertsStream = ex !== null && moe !== undefined && !moe.allResident;
  // weight bytes read and uploaded per decoded token: the ring's (the
  // plan's), and with experts those moved per decoded token (measured)
  const streamed = run.stats.bytesStreamedPerToken;

  // 3. read and upload alone, same run: the files the streamed bytes come
  // from read once (the page-cache state the engine saw), then the streamed
  // bytes written to a slot-sized GPU buffer as the engine writes them
  const layers = expertsStream
    ? Array.from({ length: cfg.numLayers }, (_, i) => i)
    : plan.streamed;
  const files = layers.map((i) => sd.layerPath(i));
  const read = await readAll(files);
  const readS = ex ? streamed * read.s / Math.max(1, read.bytes) : read.s;
  const uploadS = await uploadSeconds(gpu, {
    bytes: streamed,
    slotBytes: ex ? ex.slotBytes : plan.slotBytes,
    file: files[0] ?? sd.layerPath(0),
  });
  // 4. what `plan` measures on its own: the F16 matvec kernel's bandwidth
  const g = o.kernelFloor === false ? null : await gpuFloors(gpu, "F16", {
    bytes: (ex ? ex.slotBytes : plan.slotBytes) || undefined,
    file: files[0],
  });
  gpu.device.destroy();

  // the weight bytes a pass computes over: every layer and the head (with
  // experts, the all-resident run computes every expert of every layer)
  const computeS = all.perToken;
  const computeBytes = predict(cfg, {
    encoding: "F16",
    budget: ex ? 64 * 2 ** 30 : budget,
    maxSeqLen,
    floors: {},
  }).computeBytesPerPass;
  const ms = (x: number) => `${(x * 1000).toFixed(0)} ms`;
  const gb = (n: number, s: number) => (n / s / 1e9).toFixed(2);
  console.log("");
  console.log(
    `decode: ${run.perToken.toFixed(2)} s/token under --gpu-memory ${
      formatBytes(budget)
    } (${plan.resident.length} resident + ${plan.streamed.length} streamed through ${plan.slots} slot(s), ${
      formatBytes(streamed)
    }/token${ex ? " moved, experts included" : ""}; peak ${
      formatBytes(run.stats.peakGpuBytes)
    } ≤ budget: ${run.stats.peakGpuBytes <= budget}); all resident ${
      all.perToken.toFixed(2)
    } s/token; same ids: ${
      JSON.stringify(run.ids) === JSON.stringify(all.ids)
    } ${JSON.stringify(run.ids)}`,
  );
  const fs = run.stats.forward;
  console.log(
    `  per pass: waited on reads ${ms(fs.readWaitS / fs.passes)}, writeBuffer ${
      ms(fs.uploadS / fs.passes)
    }`,
  );
  if (moe) {
    const j = moeJsonStats(moe);
    console.log(
      `experts (run --json): experts_loaded_per_token ${
        (j.experts_loaded_per_token as number).toFixed(2)
      }, expert_cache_hit_rate ${
        (j.expert_cache_hit_rate as number).toFixed(2)
      }, experts_resident ${j.experts_resident}; ${ex?.count} experts of ${
        formatBytes(ex?.slotBytes ?? 0)
      }, router readbacks ${
        (moe.readbacks / Math.max(1, fs.passes)).toFixed(1)
      } per pass; expert loads waited ${
        ms(moe.loadWaitS)
      } in the timed call (its prefill and ${moe.decodeTokens} decode passes)`,
    );
  }
  console.log(
    `floors per token: ${
      streamed === 0
        ? "read and upload 0 ms (nothing streams)"
        : `read ${ms(readS)} (${gb(read.bytes, read.s)} GB/s over the ${
          expertsStream
            ? "layer files that hold the experts"
            : "streamed layer files"
        }), upload ${ms(uploadS)} (${gb(streamed, uploadS)} GB/s writeBuffer)`
    }, compute ${ms(computeS)} (all resident; ${
      gb(computeBytes, computeS)
    } GB/s of weights${ex ? ", every expert computed" : ""}${
      g
        ? `; the 4096x4096 F16 matvec alone: ${
          (g.computeBps / 1e9).toFixed(2)
        } GB/s`
        : ""
    })`,
  );
  const units = unitsInFlight(run.stats);
  console.log(
    `units in flight: ${
      units === undefined
        ? "n/a (the run's stats have no stream_units_in_flight)"
        : units
    }`,
  );
  const ratio = (p: number) => (run.perToken / p).toFixed(2);
  if (ex && moe) {
    // plan's mixture-of-experts model from these floors: the expert loads
    // (read, then an upload from the mapped file) add to the compute of the
    // chosen experts
    const floors = {
      readBps: read.bytes / read.s,
      uploadBps: streamed > 0 ? streamed / uploadS : undefined,
      expertUploadBps: streamed > 0 ? streamed / uploadS : undefined,
      computeBps: computeBytes / computeS,
      cpuAdapter: g?.cpuAdapter,
      overlap: g?.overlap,
    };
    const pred = predict(cfg, { encoding: "F16", budget, maxSeqLen, floors });
    const pe = pred.experts!;
    const j = moeJsonStats(moe);
    // the same with the run's measured hit rate (plan --expert-hit-rate)
    const given = pe.allResident ? null : predict(cfg, {
      encoding: "F16",
      budget,
      maxSeqLen,
      floors,
      expertHitRate: j.expert_cache_hit_rate as number,
    });
    console.log(
      `plan predicts ${
        pred.secondsPerToken.toFixed(2)
      } s/token from these floors (${
        pe.allResident
          ? "every expert resident: the compute"
          : `${pe.cached} of ${pe.count} experts cached, ${
            pe.loadedPerPass.toFixed(2)
          } loaded per token expected under uniform independent routing (measured ${
            (j.experts_loaded_per_token as number).toFixed(2)
          }); their read and upload add to the compute`
      }) → measured/predicted ${ratio(pred.secondsPerToken)}${
        given
          ? `; with the run's hit rate ${
            (j.expert_cache_hit_rate as number).toFixed(2)
          } (plan --expert-hit-rate) ${
            given.secondsPerToken.toFixed(2)
          } s/token → ${ratio(given.secondsPerToken)}`
          : ""
      }${
        pe.allResident !== moe.allResident
          ? "; note: plan's expert residency differs from the engine's"
          : ""
      }`,
    );
  } else {
    printPrediction(cfg, {
      budget,
      maxSeqLen,
      plan,
      streamed,
      seconds: { read: readS, upload: uploadS, compute: computeS },
      computeBytes,
      kernel: g,
      measured: run.perToken,
    });
  }
  console.log(
    `bench wall time ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  return 0;
}
