/**
 * The engine benchmark (`deno task bench`): a generated model big enough
 * that streaming dominates (24 layers, ~0.54 GB F16, from the seeded maker),
 * a budget that keeps a third of the layers resident and streams the rest,
 * decode tokens/s with prefetch on and off, and the floor measured in the
 * same run: the time to read + upload the streamed bytes alone (the reader
 * ring with no compute) and the compute alone (the same model all resident).
 *
 * @module
 */
import { join } from "node:path";
import { cacheRoot } from "../engine/resolve.ts";
import { UsageError } from "../errors.ts";
import { requestGpu } from "../gpu/device.ts";
import { AutoModel } from "../engine/auto_model.ts";
import { ShardDir } from "../format/shards.ts";
import { SafetensorsFile } from "../format/safetensors.ts";
import { layerTensors } from "../model/tensors.ts";
import { layoutOf, readImage, type TensorLayout } from "../engine/_layout.ts";
import { gpuUploadTarget, LayerReader } from "../engine/reader.ts";
import { canMap } from "../engine/_mmap.ts";
import { formatBytes } from "../_units.ts";
import { makeTinyModel } from "../testing/tiny_model.ts";
import { exists } from "../_fs.ts";
import { numberFlag, parseHelpedCommand } from "../cli/_args.ts";
import { Tracer } from "../engine/trace.ts";
import {
  passTimeline,
  streamOverlap,
  timelineSvg,
  tracePasses,
} from "./timeline.ts";

const HELP =
  `Usage: deno run -A cli.ts bench [--engine] [--tokens N] [--resident N] [--dir DIR]
                                [--svg FILE] [--trace FILE]
       deno run -A cli.ts bench --shape llama-2-70b|llama-3-8b|mixtral-8x7b --layers N [--gpu-memory 4GB] [--tokens N] [--dir DIR]

Engine benchmark: a 24-layer ~0.54 GB F16 llama (seeded, generated once into
DIR, default $STRATA_CACHE/bench or ~/.cache/strata/bench), a budget keeping
--resident layers (default 4) on the GPU and streaming the rest through 3 slots;
prints decode tokens/s with prefetch on and off and the floor measured in the
same run (read+upload alone, compute alone), and the cost of tracing (the
same streaming model with --trace's recorder on). Writes an SVG timeline of
one decoded token (read, upload and compute lanes per layer, with the floor
lines) beside the numbers.

  --tokens N     decode tokens per configuration (default 10)
  --resident N   resident layers under the budget (default 4)
  --dir DIR      where the model and its shards live (kept between runs)
  --svg FILE     where the timeline picture goes (default DIR/timeline.svg)
  --trace FILE   also write the traced run's Chrome trace-event JSON (Perfetto)

At a real model's shapes (--shape): a seeded F16 model with that model's
layer and vocabulary sizes but --layers decoder layers, made and split once
in DIR (the split's GB/s against its floor is printed), decoded under
--gpu-memory (default 4GB); prints s/token, the read, upload and compute
floors of the same run, units in flight and what 'plan' predicts from them.
mixtral-8x7b streams its experts through the expert cache and adds
experts_loaded_per_token, expert_cache_hit_rate and experts_resident; plan's
prediction for it assumes uniform routing (expected against measured expert
loads are printed).

  --shape NAME     llama-2-70b (1.7 GB per F16 layer), llama-3-8b (0.4 GB per layer,
                   a 1 GB embedding) or mixtral-8x7b (2.9 GB per layer, 2.8 GB of it
                   8 experts)
  --layers N       decoder layers to make (default 2: ~4.5 GB on disk for llama-2-70b,
                   ~6.3 GB for mixtral-8x7b, twice that while it is split)
  --gpu-memory S   the budget (default 4GB)`;

const PROMPT = [1, 72, 101, 108, 108, 111];

/**
 * Runs the engine benchmark; returns the exit code.
 *
 * @example
 * ```ts ignore
 * import { runEngineBench } from "./engine.ts";
 * await runEngineBench(["--tokens", "4"]);
 * ```
 */
export async function runEngineBench(args: string[]): Promise<number> {
  const parsed = parseHelpedCommand({
    command: "bench",
    args,
    positionals: false,
    options: {
      engine: { type: "boolean" },
      tokens: { type: "string" },
      resident: { type: "string" },
      dir: { type: "string" },
      svg: { type: "string" },
      trace: { type: "string" },
      shape: { type: "string" },
      layers: { type: "string" },
      "gpu-memory": { type: "string" },
    },
    help: HELP,
  });
  if (parsed === null) return 0;
  const v = parsed.values;
  const root = v.dir ?? join(cacheRoot(), "bench");
  if (v.shape !== undefined) {
    const { runShapeBench } = await import("./shape.ts");
    const layers = numberFlag("layers", v.layers ?? "2", {
      int: true,
      min: 1,
    })!;
    return await runShapeBench({
      shape: v.shape,
      layers,
      gpuMemory: v["gpu-memory"] ?? "4GB",
      tokens: numberFlag("tokens", v.tokens ?? "3", { int: true, min: 2 })!,
      root,
    });
  }
  if (v.layers !== undefined || v["gpu-memory"] !== undefined) {
    throw new UsageError("--layers and --gpu-memory go with --shape");
  }
  const tokens = Number(v.tokens ?? 10);
  const residentWanted = Number(v.resident ?? 4);
  if (!Number.isInteger(tokens) || tokens < 2) {
    throw new UsageError("--tokens must be an integer >= 2");
  }
  if (
    !Number.isInteger(residentWanted) || residentWanted < 0 ||
    residentWanted > 23
  ) {
    throw new UsageError("--resident must be 0..23");
  }
  const hf = join(root, "llama-bench-f16");
  const shards = join(root, "llama-bench-f16-shards");
  const t0 = performance.now();
  if (
    !(await exists(join(hf, "config.json"))) &&
    !(await exists(join(shards, "manifest.json")))
  ) {
    console.log(`making the benchmark model in ${hf} …`);
    await makeTinyModel(hf, {
      arch: "llama",
      dtype: "F16",
      size: "bench",
    });
  }
  const gpu = await requestGpu();
  console.log(
    `adapter: ${
      gpu.adapter.description || gpu.adapter.vendor
    } (fallback: ${gpu.adapter.isFallback})`,
  );

  // 1. compute alone: everything resident
  const all = await AutoModel.fromPretrained(
    await exists(join(shards, "manifest.json")) ? shards : hf,
    {
      gpu,
      layerShardsSavingPath: shards,
      gpuMemory: "8GB",
      maxSeqLen: 256,
    },
  );
  const p = all.plan;
  const cfg = all.config;
  // the shards are all the benchmark needs from now on
  await Deno.remove(hf, { recursive: true }).catch(() => {});
  console.log(
    `model: ${cfg.numLayers} layers, hidden ${cfg.hiddenSize}, intermediate ${cfg.intermediateSize}, ${
      formatBytes(p.residentBytes)
    } of layers (F16)`,
  );
  // the streaming budget: essentials + `resident` layers + 3 slots (+ 64 KiB:
  // room for the tracer's timestamp buffers, so the traced run plans alike)
  const layer = p.residentBytes / p.resident.length;
  const budget = Math.floor(
    p.kvBytes + p.headBytes + p.activationBytes + (residentWanted + 3) * layer +
      65536,
  );
  const on = await AutoModel.fromPretrained(shards, {
    gpu,
    gpuMemory: budget,
    maxSeqLen: 256,
    ringSlots: 3,
  });
  const off = await AutoModel.fromPretrained(shards, {
    gpu,
    gpuMemory: budget,
    maxSeqLen: 256,
    prefetch: false,
    ringSlots: 3,
  });
  // the same streaming model, traced: the cost of tracing, and the picture
  const tracer = new Tracer();
  const traced = await AutoModel.fromPretrained(shards, {
    gpu,
    gpuMemory: budget,
    maxSeqLen: 256,
    ringSlots: 3,
    trace: tracer,
  });
  const streamedBytes = on.plan.bytesStreamedPerToken;
  const streamedLayers = on.plan.streamed;

  // read + upload alone: the reader ring over the same streamed layers, no compute
  const sd = await ShardDir.open(shards);
  const files: SafetensorsFile[] = [];
  const layouts: TensorLayout[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    const f = await SafetensorsFile.open(sd.layerPath(i));
    files.push(f);
    layouts.push(
      layoutOf(
        f,
        layerTensors(cfg, i).map((t) => t.name),
        gpu.limits.maxStorageBufferBindingSize,
      ),
    );
  }
  const slotBytes = Math.max(...streamedLayers.map((i) => layouts[i].bytes));
  // the ring as the engine uses it: reading the files (STRATA_NO_MMAP or no
  // FFI) or uploading straight from their memory maps (see lib/io/_mmap.ts)
  const mapped = canMap();
  const makeReader = (mmap: boolean) =>
    LayerReader.create({
      target: gpuUploadTarget(gpu.device),
      files,
      layouts,
      resident: [],
      streamed: streamedLayers,
      slots: 3,
      slotBytes,
      mmap,
    });
  const readers = [await makeReader(false)];
  if (mapped) readers.push(await makeReader(true));
  const ioPass = async (reader: LayerReader<GPUBuffer>) => {
    for (const i of streamedLayers) {
      await reader.acquire(i);
      gpu.device.queue.submit([]); // as the engine does per layer: flushes the pending writes
      await reader.release(i);
    }
    reader.pump();
    await gpu.device.queue.onSubmittedWorkDone();
  };

  // rounds interleave the configurations so that background load hits them alike; best of ROUNDS each
  const ROUNDS = 3;
  type Best = {
    perToken: number;
    stats: NonNullable<AutoModel["lastStats"]>;
    ids: number[];
  };
  const best: Record<string, Best | null> = {
    all: null,
    on: null,
    off: null,
    traced: null,
  };
  const measure = async (key: string, m: AutoModel) => {
    const ids = await m.generate(PROMPT, {
      maxNewTokens: tokens,
      temperature: 0,
    });
    const st = m.lastStats!;
    const perToken = st.decodeS / (ids.length - 1);
    if (!best[key] || perToken < best[key]!.perToken) {
      best[key] = { perToken, stats: st, ids };
    }
  };
  for (const m of [all, on, off, traced]) {
    await m.generate(PROMPT, { maxNewTokens: 2, temperature: 0 }); // warm-up
  }
  for (const reader of readers) await ioPass(reader);
  const ioAlone = readers.map(() => Infinity); // [read path, mapped path]
  for (let r = 0; r < ROUNDS; r++) {
    await measure("all", all);
    await measure("on", on);
    await measure("off", off);
    await measure("traced", traced);
    for (let k = 0; k < readers.length; k++) {
      const a = performance.now();
      await ioPass(readers[k]);
      ioAlone[k] = Math.min(ioAlone[k], (performance.now() - a) / 1000);
    }
  }
  // the floor of the path the engine took
  const ioS = ioAlone[mapped ? 1 : 0];
  const computeS = best.all!.perToken;
  const allIds = best.all!.ids;
  const planLine =
    `${on.plan.resident.length} resident + ${on.plan.streamed.length} streamed (${
      formatBytes(streamedBytes)
    }/token), peak ${
      formatBytes(
        Math.max(best.on!.stats.peakGpuBytes, best.off!.stats.peakGpuBytes),
      )
    } ≤ budget ${formatBytes(budget)}`;
  const res = (b: Best) => ({
    perToken: b.perToken,
    ids: b.ids,
    upload: b.stats.forward.uploadS / b.stats.forward.passes,
    wait: b.stats.forward.readWaitS / b.stats.forward.passes,
  });
  const results = { on: res(best.on!), off: res(best.off!) };
  const tracedPerToken = best.traced!.perToken;
  // one traced generate for the picture and the trace file
  tracer.clear();
  await traced.generate(PROMPT, { maxNewTokens: 4, temperature: 0 });
  const doc = tracer.toJSON();
  const overlap = streamOverlap(doc);
  for (const reader of readers) await reader.destroy();
  await all.dispose();
  await on.dispose();
  await off.dispose();
  await traced.dispose();

  // read alone and upload alone
  const img = new Uint8Array(slotBytes);
  let readS = 0;
  {
    const a = performance.now();
    for (const i of streamedLayers) await readImage(files[i], layouts[i], img);
    readS = (performance.now() - a) / 1000;
  }
  const slot = gpu.device.createBuffer({
    size: slotBytes,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
  });
  let uploadS = 0;
  {
    await gpu.device.queue.onSubmittedWorkDone();
    const a = performance.now();
    for (const i of streamedLayers) {
      for (let off = 0; off < layouts[i].bytes; off += 1 << 20) {
        const n = Math.min(1 << 20, layouts[i].bytes - off);
        gpu.device.queue.writeBuffer(slot, off, img.buffer, off, n);
      }
      gpu.device.queue.submit([]);
    }
    await gpu.device.queue.onSubmittedWorkDone();
    uploadS = (performance.now() - a) / 1000;
  }
  slot.destroy();
  for (const f of files) f.close();

  const rOn = results.on, rOff = results.off;
  const floor = Math.max(ioS, computeS);
  const ms = (s: number) => `${(s * 1000).toFixed(0)} ms`;
  console.log(`budget ${formatBytes(budget)}: ${planLine}`);
  console.log(
    `same ids with prefetch on/off and all resident: ${
      JSON.stringify(rOn.ids) === JSON.stringify(rOff.ids) &&
      JSON.stringify(rOn.ids) === JSON.stringify(allIds)
    }`,
  );
  console.log("");
  console.log(
    `decode, prefetch on : ${ms(rOn.perToken)}/token  ${
      (1 / rOn.perToken).toFixed(2)
    } tokens/s` +
      `  (writeBuffer ${
        ms(rOn.upload)
      }/pass on the JS thread, waited on reads ${ms(rOn.wait)}/pass)`,
  );
  console.log(
    `decode, prefetch off: ${ms(rOff.perToken)}/token  ${
      (1 / rOff.perToken).toFixed(2)
    } tokens/s` +
      `  → prefetch speed-up ${(rOff.perToken / rOn.perToken).toFixed(2)}x`,
  );
  if (mapped) {
    console.log(
      `floor, upload alone from the memory-mapped files (ring, no compute; what the engine does here): ${
        ms(ioAlone[1])
      }/token`,
    );
  }
  console.log(
    `floor, read+upload alone (ring reading the files, no compute${
      mapped ? "; the engine's path with STRATA_NO_MMAP=1" : ""
    }): ${ms(ioAlone[0])}/token for ${formatBytes(streamedBytes)}` +
      `  (read alone ${ms(readS)} = ${
        (streamedBytes / readS / 1e9).toFixed(2)
      } GB/s, writeBuffer alone ${ms(uploadS)} = ${
        (streamedBytes / uploadS / 1e9).toFixed(2)
      } GB/s)`,
  );
  console.log(`floor, compute alone (all resident): ${ms(computeS)}/token`);
  console.log(
    `wall per token / max(read+upload, compute) = ${ms(rOn.perToken)} / ${
      ms(floor)
    } = ${(rOn.perToken / floor).toFixed(2)}  (prefetch off: ${
      (rOff.perToken / floor).toFixed(2)
    }; sum of floors ${ms(ioS + computeS)})`,
  );
  console.log(
    `tracing (timeline recorder on, GPU compute timed by ${tracer.gpuTiming}): ${
      ms(tracedPerToken)
    }/token vs ${ms(rOn.perToken)} untraced = ${
      ((tracedPerToken / rOn.perToken - 1) * 100).toFixed(1)
    }% overhead; upload or read of layer l+1 overlapping compute of layer l: ${overlap.overlapping}/${overlap.pairs} streamed pairs`,
  );
  const decodes = tracePasses(doc).filter((p) => p.name === "decode");
  const pick = decodes[decodes.length - 1];
  if (pick) {
    const svgPath = v.svg ?? join(root, "timeline.svg");
    const svg = timelineSvg(passTimeline(doc, pick.pass), {
      title: `One decoded token (step ${pick.step}): ${cfg.numLayers}-layer ${
        formatBytes(p.residentBytes)
      } F16 llama, ${traced.plan.resident.length} resident + ${traced.plan.streamed.length} streamed through 3 slots`,
      note: `strata bench on ${
        gpu.adapter.description || gpu.adapter.vendor || "WebGPU"
      }${
        gpu.adapter.isFallback ? " (software)" : ""
      }; GPU compute timed by ${tracer.gpuTiming}; upload${
        mapped ? " from the memory-mapped files" : " after a read"
      }; floors measured in the same run`,
      floors: [
        { label: "read+upload floor", ms: ioS * 1000 },
        { label: "compute floor", ms: computeS * 1000 },
      ],
    });
    await Deno.writeTextFile(svgPath, svg);
    console.log(`timeline of one decoded token: ${svgPath}`);
  }
  if (v.trace) {
    await tracer.write(v.trace);
    console.log(
      `trace (Chrome trace-event JSON, open in ui.perfetto.dev): ${v.trace}`,
    );
  }
  console.log(
    `bench wall time ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  return 0;
}
