/**
 * The benchmark at a real model's shapes (`deno task bench --shape
 * llama-2-70b --layers 2`): a seeded F16 model with that model's layer
 * dimensions and vocabulary but only `--layers` decoder layers, made once in
 * the bench cache and split there (the split's speed against its floor is
 * printed), then decoded greedily under `--gpu-memory`. It reports seconds
 * per token, the read, upload and compute floors measured in the same run,
 * and what `plan` (lib/engine/predict.ts) predicts from those floors.
 *
 * @module
 */
import { join } from "node:path";
import { UnsupportedError, UsageError } from "../errors.ts";
import { requestGpu } from "../gpu/device.ts";
import { AutoModel } from "../engine/auto_model.ts";
import { parseSize } from "../engine/plan.ts";
import { predict } from "../engine/predict.ts";
import { gpuFloors } from "../engine/_floors.ts";
import { mapFile } from "../engine/_mmap.ts";
import { ShardDir } from "../format/shards.ts";
import { openSource } from "../split/open_source.ts";
import { splitModel } from "../split/split.ts";
import { formatBytes } from "../_units.ts";
import { makeTinyModel } from "../testing/tiny_model.ts";
import { exists } from "../_fs.ts";

/** The public shapes the benchmark can make (decoder layer and vocabulary). */
export const SHAPES: Record<string, {
  hidden: number;
  intermediate: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  layers: number;
  /** The real model's max_position_embeddings (the KV length `run` would choose: min(4096, this)). */
  maxPositions: number;
}> = {
  "llama-2-70b": {
    hidden: 8192,
    intermediate: 28672,
    heads: 64,
    kvHeads: 8,
    vocab: 32000,
    layers: 80,
    maxPositions: 4096,
  },
  "llama-3-8b": {
    hidden: 4096,
    intermediate: 14336,
    heads: 32,
    kvHeads: 8,
    vocab: 128256,
    layers: 32,
    maxPositions: 8192,
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
  /** A key of {@link SHAPES} (or "mixtral-8x7b", refused). */
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

/**
 * Runs the shape benchmark; prints its report and returns the exit code.
 *
 * @throws {UnsupportedError} for mixtral-8x7b (the shape bench makes dense models only; see `bench --moe`).
 * @example
 * ```ts ignore
 * import { runShapeBench } from "./shape.ts";
 * await runShapeBench({ shape: "llama-2-70b", layers: 2, gpuMemory: "4GB", tokens: 3, root: "/tmp/bench" });
 * ```
 */
export async function runShapeBench(o: ShapeBenchOptions): Promise<number> {
  if (o.shape === "mixtral-8x7b") {
    throw new UnsupportedError(
      "--shape mixtral-8x7b",
      "the shape bench does not make mixture-of-experts models yet (8 experts of 7B shapes: 2.8 GB of experts per F16 layer); `bench --moe` measures expert streaming against whole layers on a smaller Mixtral-shaped model, and --shape llama-2-70b or llama-3-8b measures dense layers",
    );
  }
  const s = SHAPES[o.shape];
  if (!s) {
    throw new UsageError(
      `--shape must be one of ${
        [...Object.keys(SHAPES), "mixtral-8x7b"].join(", ")
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
    if (!(await exists(join(hf, "model.safetensors")))) {
      console.log(`making ${name} in ${hf} …`);
      await makeTinyModel(hf, {
        arch: "llama",
        dtype: "F16",
        layers: o.layers,
        hidden: s.hidden,
        intermediate: s.intermediate,
        heads: s.heads,
        kvHeads: s.kvHeads,
        vocab: s.vocab,
      });
    }
    const src = await openSource(hf);
    try {
      let last = null as
        | null
        | Parameters<
          NonNullable<Parameters<typeof splitModel>[1]["onProgress"]>
        >[0];
      await splitModel(src, {
        out: shards,
        measureFloor: true,
        onProgress: (p) => (last = p),
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
  const sd = await ShardDir.open(shards);
  const cfg = sd.manifest.config;
  const budget = parseSize(o.gpuMemory);
  const maxSeqLen = o.maxSeqLen ?? Math.min(4096, s.maxPositions);
  const gpu = await requestGpu();
  const adapter = gpu.adapter.description || gpu.adapter.vendor;
  console.log(
    `model: ${o.shape} shapes, ${o.layers} of ${s.layers} layers (hidden ${s.hidden}, intermediate ${s.intermediate}, ${s.heads} heads, ${s.kvHeads} KV heads, vocab ${s.vocab}), F16; adapter ${adapter}`,
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
  const streamed = plan.bytesStreamedPerToken;

  // 3. read and upload alone, same run: the streamed layers' files read once
  // (the page-cache state the engine saw), then written to a slot-sized GPU
  // buffer with writeBuffer in 1 MiB pieces from the mapped file, submitted
  // every 16 MiB as the reader does
  const files = plan.streamed.map((i) => sd.layerPath(i));
  const chunk = 64 << 20;
  const piece = 1 << 20; // writeBuffer in 1 MiB pieces, as the engine's bench
  const buf = new Uint8Array(chunk);
  let readBytes = 0;
  const r0 = performance.now();
  for (const p of files) {
    const f = await Deno.open(p, { read: true });
    try {
      for (;;) {
        const n = await f.read(buf);
        if (n === null) break;
        readBytes += n;
      }
    } finally {
      f.close();
    }
  }
  const readS = (performance.now() - r0) / 1000;
  let uploadS = 0;
  if (plan.slotBytes > 0) {
    const slot = gpu.device.createBuffer({
      size: Math.ceil(plan.slotBytes / 256) * 256,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
    // from the mapped layer file where it can be mapped, as the engine
    // uploads (a heap buffer uploads several times slower on lavapipe)
    const size = (await Deno.stat(files[0])).size;
    const mapped = size >= chunk ? mapFile(files[0], size) : null;
    const src = mapped?.bytes ?? buf;
    // timed on the second pass, as plan's probe (the mapping's page tables
    // warm, as in the engine's steady state)
    for (let pass = 0; pass < 2; pass++) {
      let at = 0; // where in src the next chunk comes from
      await gpu.device.queue.onSubmittedWorkDone();
      const u0 = performance.now();
      for (let done = 0; done < streamed;) {
        for (
          let off = 0;
          off < plan.slotBytes && done < streamed;
          off += chunk
        ) {
          const n = Math.min(chunk, plan.slotBytes - off, streamed - done);
          if (at + n > src.length) at = 0;
          for (let k = 0; k < n; k += piece) {
            gpu.device.queue.writeBuffer(
              slot,
              off + k,
              src as Uint8Array<ArrayBuffer>,
              at + k,
              Math.min(piece, n - k),
            );
            // as the reader: a large upload is submitted every 16 MiB
            if (plan.slotBytes > 32 << 20 && ((off + k) >> 20) % 16 === 15) {
              gpu.device.queue.submit([]);
            }
          }
          done += n;
          at += n;
        }
        gpu.device.queue.submit([]);
      }
      await gpu.device.queue.onSubmittedWorkDone();
      uploadS = (performance.now() - u0) / 1000;
    }
    slot.destroy();
    mapped?.unmap();
  }
  // 4. what `plan` measures on its own: the F16 matvec kernel's bandwidth
  const g = o.kernelFloor === false ? null : await gpuFloors(gpu, "F16", {
    bytes: plan.slotBytes || undefined,
    file: files[0],
  });
  gpu.device.destroy();

  const computeS = all.perToken;
  const computeBytes = predict(cfg, {
    encoding: "F16",
    budget,
    maxSeqLen,
    floors: {},
  }).computeBytesPerPass;
  const floors = {
    readBps: streamed > 0 ? streamed / readS : undefined,
    uploadBps: streamed > 0 ? streamed / uploadS : undefined,
  };
  // the prediction from this run's floors, and plan's own (kernel) compute floor
  const pred = predict(cfg, {
    encoding: "F16",
    budget,
    maxSeqLen,
    floors: {
      ...floors,
      computeBps: computeBytes / computeS,
      cpuAdapter: g?.cpuAdapter,
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
      },
    });
  const ms = (x: number) => `${(x * 1000).toFixed(0)} ms`;
  const same = pred.plan.resident.length === plan.resident.length &&
    pred.plan.slots === plan.slots;
  if (!same) {
    console.log(
      `note: plan's residency (${pred.plan.resident.length} resident, ${pred.plan.slots} slots) differs from the engine's`,
    );
  }
  console.log("");
  console.log(
    `decode: ${run.perToken.toFixed(2)} s/token under --gpu-memory ${
      formatBytes(budget)
    } (${plan.resident.length} resident + ${plan.streamed.length} streamed through ${plan.slots} slot(s), ${
      formatBytes(streamed)
    }/token; peak ${formatBytes(run.stats.peakGpuBytes)} ≤ budget: ${
      run.stats.peakGpuBytes <= budget
    }); all resident ${all.perToken.toFixed(2)} s/token; same ids: ${
      JSON.stringify(run.ids) === JSON.stringify(all.ids)
    } ${JSON.stringify(run.ids)}`,
  );
  const fs = run.stats.forward;
  console.log(
    `  per pass: waited on reads ${ms(fs.readWaitS / fs.passes)}, writeBuffer ${
      ms(fs.uploadS / fs.passes)
    }`,
  );
  const gb = (n: number, s: number) => (n / s / 1e9).toFixed(2);
  console.log(
    `floors per token: read ${ms(readS)} (${
      gb(readBytes, readS)
    } GB/s over the streamed layer files), upload ${ms(uploadS)} (${
      streamed ? gb(streamed, uploadS) : "-"
    } GB/s writeBuffer), compute ${ms(computeS)} (all resident; ${
      gb(computeBytes, computeS)
    } GB/s of weights${
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
  console.log(
    `plan predicts ${
      pred.secondsPerToken.toFixed(2)
    } s/token from these floors (${
      !pred.overlapped
        ? "one slot: their sum"
        : g?.cpuAdapter
        ? "overlapped on a CPU adapter: read, or the larger of upload and compute + half the smaller"
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
  console.log(
    `bench wall time ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  return 0;
}
