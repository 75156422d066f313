/**
 * `plan` and lib/engine/predict.ts: the bytes of a Llama-2-70B config from
 * its public shapes (hidden 8192, intermediate 28672, 64 heads, 8 KV heads,
 * 80 layers, vocab 32000) worked out by hand, the prediction from given
 * floors, the CLI on that config.json alone, and the predicted plan against
 * the plan the engine makes for a real (tiny) model.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gpu, gpuTest } from "../_gpu.ts";
import { normalizeConfig } from "../../lib/model/config.ts";
import { gpuBytes, predict } from "../../lib/engine/predict.ts";
import { AutoModel } from "../../lib/engine/auto_model.ts";
import { tinyShards } from "./_models.ts";
import { ShardDir } from "../../lib/format/shards.ts";
import { SafetensorsFile } from "../../lib/format/safetensors.ts";
import { expertLayouts } from "../../lib/engine/_experts.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** Llama-2-70B's config.json fields (public). */
const LLAMA2_70B = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 8192,
  intermediate_size: 28672,
  num_attention_heads: 64,
  num_key_value_heads: 8,
  num_hidden_layers: 80,
  vocab_size: 32000,
  max_position_embeddings: 4096,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  torch_dtype: "float16",
  hidden_act: "silu",
};

// by hand: q, o 8192x8192; k, v 1024x8192; gate, up 28672x8192; down 8192x28672; two f32 norms
const PARAMS_70B = 2 * 8192 * 8192 + 2 * 1024 * 8192 + 3 * 28672 * 8192;
const LAYER_F16 = 2 * PARAMS_70B + 2 * 8192 * 4;
// q4: per row of n columns, n/32 blocks of 16 bytes + a 2-byte scale
const LAYER_Q4 = PARAMS_70B / 32 * 18 + 2 * 8192 * 4;

async function cli(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("predict: Llama-2-70B layer bytes and the 4 GB plan from the public shapes", () => {
  const cfg = normalizeConfig(LLAMA2_70B, "config.json");
  const b = gpuBytes(cfg, { encoding: "F16", maxSeqLen: 512 });
  assert.equal(b.layerBytes.length, 80);
  assert.equal(b.layerBytes[0], LAYER_F16); // 1.71 GB
  assert.equal(gpuBytes(cfg, { encoding: "q4" }).layerBytes[7], LAYER_Q4);
  assert.equal(b.headBytes, 32000 * 8192 * 2 + 8192 * 4);
  assert.equal(b.kvBytesPerLayer, 2 * 512 * 8 * 128 * 4);

  const floors = { readBps: 2e9, uploadBps: 8e9, computeBps: 20e9 };
  // without prefetch (one slot): two 1.71 GB slots would not fit beside the
  // 0.52 GB head anyway; one whole-layer slot, nothing resident
  const p = predict(cfg, {
    encoding: "F16",
    budget: 4e9,
    maxSeqLen: 512,
    floors,
    slots: 1,
  });
  assert.equal(p.plan.slots, 1);
  assert.equal(p.plan.unit, "layer");
  assert.equal(p.plan.resident.length, 0);
  assert.equal(p.streamedBytesPerToken, 80 * LAYER_F16);
  assert.equal(p.overlapped, false);
  const streamed = 80 * LAYER_F16;
  const computed = streamed + b.headBytes;
  const expected = streamed / 2e9 + streamed / 8e9 + computed / 20e9;
  assert.ok(Math.abs(p.secondsPerToken - expected) < 1e-9 * expected);
  assert.deepEqual(p.unknown, []);

  // a budget with room for 3 slots overlaps: the largest floor counts
  const big = predict(cfg, {
    encoding: "F16",
    budget: 12e9,
    maxSeqLen: 512,
    floors,
  });
  assert.equal(big.plan.slots, 3);
  assert.ok(big.overlapped);
  assert.ok(
    Math.abs(big.secondsPerToken - big.streamedBytesPerToken / 2e9) <
      1e-9 * big.secondsPerToken,
  );
  // batch 4 shares the streamed bytes; on a GPU the compute of a pass stays
  const b4 = predict(cfg, {
    encoding: "F16",
    budget: 4e9,
    maxSeqLen: 512,
    floors,
    batch: 4,
    slots: 1,
  });
  assert.ok(Math.abs(b4.secondsPerToken - expected / 4) < 1e-9 * expected);
  // on a CPU adapter the compute grows with the batch
  const cpu = predict(cfg, {
    encoding: "F16",
    budget: 4e9,
    maxSeqLen: 512,
    floors: { ...floors, cpuAdapter: true },
    batch: 4,
    slots: 1,
  });
  assert.ok(cpu.secondsPerToken > b4.secondsPerToken);
  // q4 streams 18/64 of the bytes
  const q4 = predict(cfg, {
    encoding: "q4",
    budget: 4e9,
    maxSeqLen: 512,
    floors,
  });
  assert.ok(q4.streamedBytesPerToken < 0.3 * p.streamedBytesPerToken);
  // unknown floors give a lower bound and say so
  const lb = predict(cfg, {
    encoding: "F16",
    budget: 4e9,
    maxSeqLen: 512,
    floors: { readBps: 2e9 },
    slots: 1,
  });
  assert.deepEqual(lb.unknown, ["upload", "compute"]);
  assert.ok(Math.abs(lb.secondsPerToken - streamed / 2e9) < 1e-9 * streamed);
});

// by hand, the engine's grouping (lib/engine/_units.ts) packed up to the
// largest group: attention norm + q, k, v, o; MLP norm + gate; up; down
const UNITS_F16 = [
  2 * (2 * 8192 * 8192 + 2 * 1024 * 8192) + 8192 * 4,
  2 * 28672 * 8192 + 8192 * 4,
  2 * 28672 * 8192,
  2 * 28672 * 8192,
];

Deno.test("predict: Llama-2-70B streams in sub-layer units under 4 GB, as the engine plans", () => {
  const cfg = normalizeConfig(LLAMA2_70B, "config.json");
  const b = gpuBytes(cfg, { encoding: "F16", maxSeqLen: 512 });
  assert.equal(UNITS_F16.reduce((a, x) => a + x, 0), LAYER_F16);
  for (const u of b.unitBytes!) assert.deepEqual(u, UNITS_F16);
  const floors = { readBps: 2e9, uploadBps: 8e9, computeBps: 20e9 };
  const p = predict(cfg, {
    encoding: "F16",
    budget: 4e9,
    maxSeqLen: 512,
    floors,
  });
  // two 1.71 GB whole-layer slots do not fit beside the head; 3 unit slots do
  assert.equal(p.plan.unit, "matrices");
  assert.equal(p.plan.slots, 3);
  assert.equal(p.plan.slotBytes, UNITS_F16[1]);
  assert.equal(p.plan.resident.length, 0);
  assert.equal(p.plan.streamedUnits, 80 * 4);
  assert.equal(p.streamedBytesPerToken, 80 * LAYER_F16);
  assert.ok(p.overlapped);
  // on a GPU, prefetch overlaps read, upload and compute: the largest counts
  const streamed = 80 * LAYER_F16;
  assert.ok(Math.abs(p.secondsPerToken - streamed / 2e9) < 1e-9 * streamed);
  // on a CPU adapter upload and compute share the cores and the queue: the
  // read hides, upload and compute add up (whatever overlap was measured)
  const cpuFloors = {
    readBps: 20e9,
    uploadBps: 8e9,
    computeBps: 20e9,
    cpuAdapter: true,
  };
  const o = { encoding: "F16" as const, budget: 4e9, maxSeqLen: 512 };
  const cpu = predict(cfg, { ...o, floors: cpuFloors });
  const computed = streamed + b.headBytes;
  const [up, comp] = [streamed / 8e9, computed / 20e9];
  assert.ok(Math.abs(cpu.secondsPerToken - (up + comp)) < 1e-9 * (up + comp));
  const cpuProbed = predict(cfg, {
    ...o,
    floors: { ...cpuFloors, overlap: 0.3 },
  });
  assert.equal(cpuProbed.secondsPerToken, cpu.secondsPerToken);
  // on a GPU a measured overlap adds that share of the shorter of the two
  // (read 20 GB/s: the upload, then the compute, count)
  const gpuFloors = { readBps: 20e9, uploadBps: 8e9, computeBps: 20e9 };
  const g0 = predict(cfg, { ...o, floors: gpuFloors });
  assert.ok(Math.abs(g0.secondsPerToken - Math.max(up, comp)) < 1e-9 * up);
  const g3 = predict(cfg, { ...o, floors: { ...gpuFloors, overlap: 0.3 } });
  const want = Math.max(up, comp) + 0.3 * Math.min(up, comp);
  assert.ok(Math.abs(g3.secondsPerToken - want) < 1e-9 * want);
  // q4 units (18/64 of the bytes, scales aligned per matrix) and a q4 plan
  const q4 = gpuBytes(cfg, { encoding: "q4", maxSeqLen: 512 });
  assert.equal(q4.unitBytes![0]!.reduce((a, x) => a + x, 0), LAYER_Q4);
  assert.equal(q4.unitBytes![0]!.length, 4);
});

Deno.test("plan CLI runs on a Llama-2-70B config.json alone", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "config.json");
    await Deno.writeTextFile(path, JSON.stringify(LLAMA2_70B));
    const flags = [
      "--gpu-memory",
      "4GB",
      "--disk-gbps",
      "2",
      "--pcie-gbps",
      "8",
      "--compute-gbps",
      "20",
      "--max-seq-len",
      "512",
    ];
    const r = await cli(["plan", path, ...flags]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /streamed layers 0-79 \(80\) in 320 sub-layer units .* through 3 slot\(s\)/,
    );
    assert.match(r.stdout, /^q4 /m);
    const j = await cli(["plan", path, ...flags, "--json"]);
    assert.equal(j.code, 0, j.stderr);
    const o = JSON.parse(j.stdout);
    assert.equal(o.layers, 80);
    assert.equal(o.encoding, "F16");
    assert.equal(o.plan.streamed_bytes_per_token, 80 * LAYER_F16);
    const streamed = 80 * LAYER_F16;
    // units through 3 slots: prefetch overlaps, the slowest floor (the disk) counts
    const expected = Math.max(
      streamed / 2e9,
      streamed / 8e9,
      (streamed + 32000 * 8192 * 2 + 8192 * 4) / 20e9,
    );
    assert.ok(Math.abs(o.plan.seconds_per_token - expected) < 1e-6 * expected);
    // the table: q8 and q4, 2x and 4x the budget, batches 4 and 16
    const encs = new Set(o.table.map((r: { encoding: string }) => r.encoding));
    assert.deepEqual([...encs], ["F16", "q8", "q4"]);
    assert.equal(o.table.length, 11);
    const q4 = o.table.find((r: { encoding: string; budget: number }) =>
      r.encoding === "q4" && r.budget === 4e9
    );
    assert.ok(q4.seconds_per_token < o.plan.seconds_per_token);
    // q4 on the command line
    const q = await cli(["plan", path, ...flags, "--quantize", "q4", "--json"]);
    assert.equal(
      JSON.parse(q.stdout).plan.streamed_bytes_per_token % LAYER_Q4,
      0,
    );
    // any packed encoding of the registry: q4k stores 144 bytes per 256 weights
    const k = await cli([
      "plan",
      path,
      ...flags,
      "--quantize",
      "q4k",
      "--json",
    ]);
    assert.equal(k.code, 0, k.stderr);
    const ko = JSON.parse(k.stdout);
    assert.equal(ko.encoding, "q4k");
    assert.equal(
      ko.plan.streamed_bytes_per_token %
        (PARAMS_70B / 256 * 144 + 2 * 8192 * 4),
      0,
    );
    // errors: one line, non-zero
    for (
      const bad of [
        ["plan"],
        ["plan", path, "--gpu-memory", "lots"],
        ["plan", path, "--quantize", "q3", "--no-gpu"],
        [
          "plan",
          path,
          "--gpu-memory",
          "100MB",
          "--max-seq-len",
          "512",
          "--no-gpu",
        ],
        ["plan", join(dir, "nope.json"), "--no-gpu"],
      ]
    ) {
      const e = await cli(bad);
      assert.equal(e.code, 1, e.stderr);
      assert.equal(e.stderr.trim().split("\n").length, 1, e.stderr);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

gpuTest(
  "predicted plan equals the engine's plan for a real model",
  async () => {
    const { shards } = await tinyShards("predict-llama", {
      arch: "llama",
      dtype: "F16",
      layers: 4,
    });
    for (const budget of [1e9, 0]) {
      const m = await AutoModel.fromPretrained(shards, {
        gpu: gpu!,
        gpuMemory: budget || "1GB",
        maxSeqLen: 64,
      });
      let b = budget;
      if (!b) {
        // just room for the essentials, one resident layer and 3 slots
        const p = m.plan;
        const layer = p.residentBytes / p.resident.length;
        b = p.kvBytes + p.headBytes + p.activationBytes + 4 * layer + 16;
        await m.dispose();
        const s = await AutoModel.fromPretrained(shards, {
          gpu: gpu!,
          gpuMemory: b,
          maxSeqLen: 64,
        });
        const want = predict(s.config, {
          encoding: "F16",
          budget: b,
          maxSeqLen: 64,
          floors: {},
        }).plan;
        assert.deepEqual(want, s.plan);
        await s.dispose();
        continue;
      }
      const want = predict(m.config, {
        encoding: "F16",
        budget: b,
        maxSeqLen: 64,
        floors: {},
      }).plan;
      assert.deepEqual(want, m.plan);
      await m.dispose();
    }
    // room for the essentials and one layer: two whole-layer slots do not
    // fit, so the layers stream in sub-layer units, sized alike
    const roomy = await AutoModel.fromPretrained(shards, {
      gpu: gpu!,
      gpuMemory: "1GB",
      maxSeqLen: 64,
    });
    const r = roomy.plan;
    const b = r.kvBytes + r.headBytes + r.activationBytes +
      r.residentBytes / r.resident.length + 16;
    await roomy.dispose();
    const u = await AutoModel.fromPretrained(shards, {
      gpu: gpu!,
      gpuMemory: b,
      maxSeqLen: 64,
    });
    try {
      assert.equal(u.plan.unit, "matrices");
      const want = predict(u.config, {
        encoding: "F16",
        budget: b,
        maxSeqLen: 64,
        floors: {},
      }).plan;
      assert.deepEqual(want, u.plan);
    } finally {
      await u.dispose();
    }
  },
);

// A tiny Mixtral config, worked out by hand: hidden 64, 4 heads of 16
// (2 KV heads), 4 experts of 128, top-2, 2 layers, vocab 100, F16.
const TINY_MIXTRAL = {
  architectures: ["MixtralForCausalLM"],
  model_type: "mixtral",
  hidden_size: 64,
  intermediate_size: 128,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  num_hidden_layers: 2,
  num_local_experts: 4,
  num_experts_per_tok: 2,
  vocab_size: 100,
  max_position_embeddings: 64,
  tie_word_embeddings: false,
  torch_dtype: "float16",
};
// one expert: gate, up [128, 64] and down [64, 128] in F16
const TINY_EXPERT = 3 * 128 * 64 * 2;
// a layer without its experts: two f32 norms, q, o [64, 64], k, v [32, 64]
// in F16, the router [4, 64] in F16 (a matrix, never quantized)
const TINY_LAYER = 2 * 64 * 4 + 2 * 64 * 64 * 2 + 2 * 32 * 64 * 2 + 4 * 64 * 2;
// final norm (f32) + lm_head [100, 64] F16
const TINY_HEAD = 64 * 4 + 100 * 64 * 2;

Deno.test("predict moe: every expert fits: nothing of them moves, every one is computed", () => {
  const cfg = normalizeConfig(TINY_MIXTRAL, "config.json");
  const b = gpuBytes(cfg, { encoding: "F16", maxSeqLen: 64 });
  assert.deepEqual(b.layerBytes, [TINY_LAYER, TINY_LAYER]);
  assert.equal(b.headBytes, TINY_HEAD);
  assert.deepEqual(b.experts, {
    perLayer: 4,
    topK: 2,
    sparseLayers: 2,
    expertBytes: TINY_EXPERT,
    count: 8,
    totalBytes: 8 * TINY_EXPERT,
  });
  const floors = { readBps: 1e9, uploadBps: 2e9, computeBps: 1e10 };
  const p = predict(cfg, {
    encoding: "F16",
    budget: 1e9,
    maxSeqLen: 64,
    floors,
  });
  assert.equal(p.experts!.allResident, true);
  assert.equal(p.experts!.cached, 8);
  assert.equal(p.experts!.bytesPerPass, 0);
  assert.equal(p.streamedBytesPerToken, 0);
  assert.deepEqual([p.plan.resident, p.plan.streamed], [[0, 1], []]);
  // the engine's GPU-side path computes every expert when all are resident
  const compute = 2 * TINY_LAYER + TINY_HEAD + 2 * 4 * TINY_EXPERT;
  assert.equal(p.computeBytesPerPass, compute);
  assert.equal(p.expertLoadS, 0);
  assert.ok(Math.abs(p.secondsPerToken - compute / 1e10) < 1e-15);
});

Deno.test("predict moe: some experts fit: expected loads under uniform routing, top-k computed", () => {
  const cfg = normalizeConfig(TINY_MIXTRAL, "config.json");
  const floors = {
    readBps: 1e9,
    uploadBps: 2e9,
    expertUploadBps: 5e8,
    computeBps: 1e10,
  };
  const o = { encoding: "F16" as const, maxSeqLen: 64, floors };
  // everything but the experts, all resident (the budget's first share)
  const full = predict(cfg, { ...o, budget: 1e9 }).plan.totalBytes;
  // room for 3 expert slots beside it
  const budget = full + 3 * TINY_EXPERT + 100;
  const p = predict(cfg, { ...o, budget });
  const ex = p.experts!;
  assert.deepEqual([ex.allResident, ex.cached, ex.cacheBytes], [
    false,
    3,
    3 * TINY_EXPERT,
  ]);
  assert.deepEqual([p.plan.resident, p.plan.streamed], [[0, 1], []]);
  // by hand: 1.5 cached per layer of 4; a chosen expert misses with
  // probability 1 - 1.5/4; 2 chosen per layer, 2 layers
  const miss = 1 - 1.5 / 4;
  const bytes = 2 * 2 * miss * TINY_EXPERT;
  assert.ok(Math.abs(ex.bytesPerPass - bytes) < 1e-6);
  assert.ok(Math.abs(p.streamedBytesPerToken - bytes) < 1e-6);
  // top-k experts computed, not all 4
  const compute = 2 * TINY_LAYER + TINY_HEAD + 2 * 2 * TINY_EXPERT;
  assert.ok(Math.abs(p.computeBytesPerPass - compute) < 1e-6);
  // nothing streams through the ring: compute, then the expert loads (read
  // and upload from the heap) wait on the router and add up
  const s = compute / 1e10 + bytes / 1e9 + bytes / 5e8;
  assert.ok(Math.abs(p.secondsPerToken - s) < 1e-12, `${p.secondsPerToken}`);
  // batch 4: the distinct experts among 4 tokens' top-2 of 4, per layer
  const q = predict(cfg, { ...o, budget, batch: 4 });
  const chosen = 4 * (1 - (1 - 2 / 4) ** 4);
  assert.ok(Math.abs(q.experts!.chosenPerLayer - chosen) < 1e-12);
  const qBytes = 2 * chosen * miss * TINY_EXPERT;
  assert.ok(Math.abs(q.streamedBytesPerToken - qBytes / 4) < 1e-6);
  // a CPU adapter computes each token's own top-2
  const c = predict(cfg, {
    ...o,
    budget,
    batch: 4,
    floors: { ...floors, cpuAdapter: true },
  });
  assert.ok(Math.abs(c.computeS - 4 * compute / 1e10) < 1e-12);
  // a measured hit rate replaces the assumed one (bytes by hand again)
  const h = predict(cfg, { ...o, budget, expertHitRate: 0.9 });
  assert.equal(h.experts!.routing, "given");
  assert.equal(p.experts!.routing, "uniform");
  const hBytes = 2 * 2 * (1 - 0.9) * TINY_EXPERT;
  assert.ok(Math.abs(h.streamedBytesPerToken - hBytes) < 1e-6);
  // every expert resident: nothing to hit or miss, the rate is not used
  const r = predict(cfg, { ...o, budget: 1e9, expertHitRate: 0.5 });
  assert.deepEqual([r.experts!.hitRate, r.experts!.routing], [1, "uniform"]);
});

Deno.test("predict moe: qwen2_moe counts its shared expert, qwen3_moe its dense layers", () => {
  const base = {
    hidden_size: 64,
    intermediate_size: 256,
    moe_intermediate_size: 32,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    num_hidden_layers: 2,
    num_experts: 4,
    num_experts_per_tok: 2,
    vocab_size: 100,
    max_position_embeddings: 64,
    tie_word_embeddings: false,
  };
  const floors = {};
  const q2 = normalizeConfig({
    ...base,
    model_type: "qwen2_moe",
    shared_expert_intermediate_size: 96,
  }, "config.json");
  const expert = 3 * 32 * 64 * 2;
  const b2 = gpuBytes(q2, { encoding: "F16", maxSeqLen: 64 });
  assert.equal(b2.experts!.expertBytes, expert);
  // the shared expert (gate, up [96, 64], down [64, 96] F16, its gate [1, 64]
  // F16, aligned to 256 bytes) is part of the layer: always computed, never
  // in the expert cache
  const shared = 3 * 96 * 64 * 2 + 64 * 4;
  const q3 = normalizeConfig(
    { ...base, model_type: "qwen3_moe", mlp_only_layers: [0] },
    "config.json",
  );
  const b3 = gpuBytes(q3, { encoding: "F16", maxSeqLen: 64 });
  // layer 0 is dense (an MLP of 256): only layer 1 routes
  assert.deepEqual([b3.experts!.sparseLayers, b3.experts!.count], [1, 4]);
  const dense = 3 * 256 * 64 * 2;
  const router = 4 * 64 * 2;
  assert.equal(b3.layerBytes[0] - b3.layerBytes[1], dense - router);
  // qwen2: two f32 norms, q, o [64, 64] and k, v [32, 64] F16, their f32
  // biases (each aligned to 256 bytes), the router, the shared expert
  const attn2 = 2 * 256 + 2 * 64 * 64 * 2 + 2 * 32 * 64 * 2 + 3 * 256;
  assert.deepEqual(b2.layerBytes, [
    attn2 + router + shared,
    attn2 + router + shared,
  ]);
  const p = predict(q2, {
    encoding: "F16",
    budget: predict(q2, { encoding: "F16", budget: 1e9, maxSeqLen: 64, floors })
      .plan.totalBytes + 2 * expert + 100,
    maxSeqLen: 64,
    floors,
  });
  assert.deepEqual([p.experts!.cached, p.experts!.computedPerLayer], [2, 2]);
  assert.equal(
    p.computeBytesPerPass,
    b2.layerBytes[0] + b2.layerBytes[1] + b2.headBytes + 2 * 2 * expert,
  );
});

gpuTest(
  "predicted plan and expert cache equal the engine's for a real mixture-of-experts model",
  async () => {
    const { shards } = await tinyShards("predict-mixtral", {
      arch: "mixtral",
      dtype: "F16",
      layers: 2,
    });
    const sd = await ShardDir.open(shards);
    const cfg = sd.config;
    const files = [];
    for (let i = 0; i < cfg.numLayers; i++) {
      files.push(await SafetensorsFile.open(sd.layerPath(i)));
    }
    const ex = expertLayouts(cfg, files, gpu!.limits);
    for (const f of files) f.close();
    const o = { encoding: "F16" as const, maxSeqLen: 64, floors: {} };
    const all = predict(cfg, { ...o, budget: 1e9 });
    // the experts laid out from the config alone as the engine lays them out
    assert.deepEqual(
      [all.experts!.expertBytes, all.experts!.totalBytes, all.experts!.count],
      [ex.slotBytes, ex.totalBytes, ex.count],
    );
    const a = all.plan;
    const full = a.totalBytes;
    const layer = a.residentBytes / a.resident.length;
    // all resident; 3 expert slots beside the layers; top-k slots, layers stream
    const tight = a.kvBytes + a.headBytes + a.activationBytes + 1.5 * layer +
      2 * ex.slotBytes;
    for (const budget of [1e9, full + 3 * ex.slotBytes + 100, tight]) {
      const m = await AutoModel.fromPretrained(shards, {
        gpu: gpu!,
        gpuMemory: budget,
        maxSeqLen: 64,
      });
      try {
        const p = predict(cfg, { ...o, budget });
        assert.deepEqual(p.plan, m.plan, `budget ${budget}`);
        assert.equal(p.experts!.allResident, budget === 1e9);
        if (budget === tight) {
          assert.ok(p.plan.streamed.length > 0);
          assert.equal(p.experts!.cached, 2);
        }
      } finally {
        await m.dispose();
      }
    }
  },
);

/** Mixtral-8x7B's config.json fields (public). */
const MIXTRAL_8X7B = {
  architectures: ["MixtralForCausalLM"],
  model_type: "mixtral",
  hidden_size: 4096,
  intermediate_size: 14336,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  num_hidden_layers: 32,
  num_local_experts: 8,
  num_experts_per_tok: 2,
  vocab_size: 32000,
  max_position_embeddings: 32768,
  rope_theta: 1e6,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
};

Deno.test("plan CLI on a Mixtral-8x7B config.json: the expert cache and the expected expert loads", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "config.json");
    await Deno.writeTextFile(path, JSON.stringify(MIXTRAL_8X7B));
    const flags = [
      "--disk-gbps",
      "2",
      "--pcie-gbps",
      "8",
      "--compute-gbps",
      "20",
      "--max-seq-len",
      "512",
    ];
    // one expert: gate, up [14336, 4096], down [4096, 14336], BF16
    const expert = 3 * 14336 * 4096 * 2;
    for (const gb of [4, 16]) {
      const r = await cli(["plan", path, "--gpu-memory", `${gb}GB`, ...flags]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /8 experts of 14336, top-2 \(32 sparse layers\)/);
      assert.match(r.stdout, /of 256 cached .*uniform independent routing/);
      assert.match(
        r.stdout,
        /^encoding .*experts cached/m,
      );
      const j = await cli([
        "plan",
        path,
        "--gpu-memory",
        `${gb}GB`,
        ...flags,
        "--json",
      ]);
      assert.equal(j.code, 0, j.stderr);
      const p = JSON.parse(j.stdout).plan;
      const ex = p.experts;
      assert.deepEqual([ex.count, ex.expert_bytes, ex.top_k], [256, expert, 2]);
      assert.equal(ex.all_resident, false);
      // the cache holds what the budget leaves beside every layer's
      // non-expert part (resident: nothing goes through the ring)
      assert.equal(p.streamed, 0);
      assert.ok(p.total_bytes + ex.cached * expert <= gb * 1e9);
      assert.ok(p.total_bytes + (ex.cached + 1) * expert > gb * 1e9);
      // uniform routing: 2 chosen of 8 per layer, a miss with probability
      // 1 - (cached / 32) / 8, 32 layers
      const bytes = 32 * 2 * (1 - ex.cached / 32 / 8) * expert;
      assert.ok(Math.abs(p.streamed_bytes_per_token - bytes) < 1);
      // read (2 GB/s) and upload (8 GB/s, given) of the loads after the
      // compute, which counts 2 experts per layer, not 8
      assert.ok(Math.abs(ex.load_s - (bytes / 2e9 + bytes / 8e9)) < 1e-9);
      const compute = p.compute_bytes_per_pass;
      assert.ok(compute < 32 * 3 * expert && compute > 32 * 2 * expert);
      assert.ok(
        Math.abs(p.seconds_per_token - (compute / 20e9 + ex.load_s)) < 1e-9,
      );
    }
    // a measured hit rate: the main prediction's loads follow it
    const given = await cli([
      "plan",
      path,
      "--gpu-memory",
      "4GB",
      ...flags,
      "--expert-hit-rate",
      "0.75",
      "--json",
    ]);
    assert.equal(given.code, 0, given.stderr);
    const gp = JSON.parse(given.stdout).plan;
    assert.equal(gp.experts.routing, "given: --expert-hit-rate");
    assert.equal(gp.experts.expected_hit_rate, 0.75);
    assert.ok(
      Math.abs(gp.streamed_bytes_per_token - 32 * 2 * 0.25 * expert) < 1,
    );
    const text = await cli([
      "plan",
      path,
      "--gpu-memory",
      "4GB",
      ...flags,
      "--expert-hit-rate",
      "0.75",
    ]);
    assert.match(text.stdout, /from the hit rate given \(--expert-hit-rate\)/);
    // errors stay one line: a bad expert count, a budget too small, a hit
    // rate above 1, a hit rate for a dense model
    const dense = join(dir, "dense.json");
    await Deno.writeTextFile(
      dense,
      JSON.stringify({
        ...MIXTRAL_8X7B,
        model_type: "mistral",
        architectures: ["MistralForCausalLM"],
        num_local_experts: undefined,
        num_experts_per_tok: undefined,
      }),
    );
    for (
      const [args, re] of [
        [["plan", path, "--expert-hit-rate", "1.5", "--no-gpu"], /from 0 to 1/],
        [
          ["plan", dense, "--expert-hit-rate", "0.5", "--no-gpu"],
          /has no experts/,
        ],
      ] as const
    ) {
      const e = await cli([...args]);
      assert.equal(e.code, 1, e.stderr);
      assert.equal(e.stderr.trim().split("\n").length, 1, e.stderr);
      assert.match(e.stderr, re);
    }
    const bad = join(dir, "bad.json");
    await Deno.writeTextFile(
      bad,
      JSON.stringify({ ...MIXTRAL_8X7B, num_experts_per_tok: 9 }),
    );
    for (
      const args of [
        ["plan", bad, "--no-gpu"],
        [
          "plan",
          path,
          "--gpu-memory",
          "1GB",
          "--max-seq-len",
          "512",
          "--no-gpu",
        ],
      ]
    ) {
      const e = await cli(args);
      assert.equal(e.code, 1, e.stderr);
      assert.equal(e.stderr.trim().split("\n").length, 1, e.stderr);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
