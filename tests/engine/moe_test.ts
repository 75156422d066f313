/**
 * Mixture-of-experts models in the engine against the float64 reference
 * (tests/reference/forward.ts + moe.ts): tiny Mixtral, Qwen2-MoE and
 * Qwen3-MoE checkpoints (F32, BF16, sharded) give first-step logits within
 * 1e-3 and the reference's greedy ids with every expert resident; under
 * budgets that cannot hold the experts (the expert cache streams them one by
 * one) and with whole layers streamed through the ring, the greedy ids equal
 * the all-resident run's, the peak stays under the budget, and a decoded
 * token moves at most 0.6 of the bytes whole layers would.
 */
import assert from "node:assert/strict";
import { gpuTest } from "../_gpu.ts";
import { AutoModel } from "../../lib/engine/auto_model.ts";
import { tinyMoeVariants } from "../../lib/testing/tiny_model.ts";
import {
  loadReferenceModel,
  referenceForward,
  referenceGreedy,
} from "../reference/forward.ts";
import { PROMPT, tinyShards } from "./_models.ts";
import { Forward } from "../../lib/engine/forward.ts";
import { ShardDir } from "../../lib/format/shards.ts";
import { Kernels } from "../../lib/gpu/kernels.ts";
import { SafetensorsFile } from "../../lib/format/safetensors.ts";
import { expertLayouts } from "../../lib/engine/_experts.ts";

const NEW = 10;
const LOGIT_TOL = 1e-3;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

for (const v of tinyMoeVariants()) {
  gpuTest(
    `engine moe: ${v.name}: logits and greedy ids equal the float64 reference`,
    async (g) => {
      const { hf, shards } = await tinyShards(v.name, v);
      const ref = await loadReferenceModel(hf);
      const model = await AutoModel.fromPretrained(shards, {
        gpu: g,
        gpuMemory: "1GB",
        maxSeqLen: 64,
      });
      try {
        assert.equal(model.plan.streamed.length, 0);
        const want = referenceForward(ref.weights, ref.config, PROMPT).at(-1)!;
        const got = await model.logits(PROMPT);
        const err = maxAbsDiff(got, want);
        assert.ok(err < LOGIT_TOL, `max |logit error| ${err}`);
        const ids = await model.generate(PROMPT, {
          maxNewTokens: NEW,
          temperature: 0,
        });
        const wantIds = referenceGreedy(ref.weights, ref.config, PROMPT, NEW);
        assert.deepEqual(ids, wantIds.slice(0, ids.length), v.name);
        assert.ok(
          ids.length === NEW || ref.config.eosTokenIds.includes(ids.at(-1)!),
        );
      } finally {
        await model.dispose();
      }
    },
  );
}

/** Greedy ids through a bare Forward (prefill, then one token per pass). */
async function greedy(fwd: Forward, n: number): Promise<number[]> {
  fwd.reset();
  let { topk } = await fwd.forward(PROMPT);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(topk.ids[0]);
    if (i === 0) fwd.resetStats(); // decode passes only from here
    if (i + 1 < n) ({ topk } = await fwd.forward([topk.ids[0]]));
  }
  return out;
}

for (const arch of ["mixtral", "qwen2_moe", "qwen3_moe"] as const) {
  const v = tinyMoeVariants().find((x) => x.arch === arch && !x.sharded)!;
  gpuTest(
    `engine moe: ${v.name}: experts streamed through the cache and whole layers through the ring = all resident`,
    async (g) => {
      const { hf, shards: dir } = await tinyShards(v.name, v);
      const shards = await ShardDir.open(dir);
      const ref = await loadReferenceModel(hf);
      const refLogits = referenceForward(ref.weights, ref.config, PROMPT).at(
        -1,
      )!;
      const kernels = await Kernels.create(g);
      const open = (budget: number, expertStreaming = true) =>
        Forward.create({
          gpu: g,
          kernels,
          shards,
          budget,
          maxSeqLen: 64,
          maxT: 16,
          expertStreaming,
        });
      const all = await open(1e9);
      const want = await greedy(all, NEW);
      assert.equal(all.stats.experts?.allResident, true);
      assert.equal(
        all.stats.experts?.readbacks,
        0,
        "no readback when resident",
      );
      const p = all.plan;
      await all.dispose();
      const cfg = shards.config, m = cfg.moe!;
      const files = [];
      for (let i = 0; i < cfg.numLayers; i++) {
        files.push(await SafetensorsFile.open(shards.layerPath(i)));
      }
      const ex = expertLayouts(cfg, files, g.limits);
      for (const f of files) f.close();
      const full = p.totalBytes; // essentials + every layer without experts
      const slot = ex.slotBytes;
      const essentials = p.kvBytes + p.headBytes + p.activationBytes;
      const layer = Math.max(
        ...p.resident.map(() => p.residentBytes / cfg.numLayers),
      );
      // [budget, expertStreaming, what]
      const cases: [number, boolean, string][] = [
        [full + m.topK * slot + 1024, true, "top-k slots, layers resident"],
        [full + Math.floor(ex.count / 2) * slot, true, "half the experts"],
        [
          essentials + 1.5 * layer + m.topK * slot,
          true,
          "layers stream too",
        ],
      ];
      let expertBytes = 0;
      for (const [budget, streaming, what] of cases) {
        const fwd = await open(budget, streaming);
        try {
          assert.ok(fwd.peakGpuBytes <= budget, `${what}: plan under budget`);
          const ids = await greedy(fwd, NEW);
          assert.deepEqual(ids, want, what);
          assert.ok(fwd.peakGpuBytes <= budget, `${what}: peak under budget`);
          const s = fwd.stats.experts!;
          assert.equal(s.allResident, false, what);
          assert.ok(s.readbacks > 0 && s.loaded > 0, what);
          assert.ok(s.decodeBytesPerToken > 0, what);
          if (expertBytes === 0) expertBytes = s.decodeBytesPerToken;
          // prefill with streamed experts runs each over its gathered rows
          fwd.reset();
          const { logits } = await fwd.forward(PROMPT, { logits: true });
          const err = maxAbsDiff(logits!, refLogits);
          assert.ok(err < LOGIT_TOL, `${what}: max |logit error| ${err}`);
          if (what === "layers stream too") {
            assert.ok(fwd.plan.streamed.length > 0, what);
          }
        } finally {
          await fwd.dispose();
        }
      }
      // whole layers (experts included) through a one-slot ring
      const bigLayer = ex.totalBytes / (ex.layouts.filter((l) => l).length) +
        layer;
      const whole = await open(essentials + bigLayer + 8192, false);
      try {
        assert.ok(whole.plan.streamed.length > 0);
        assert.deepEqual(await greedy(whole, NEW), want, "whole layers");
        const s = whole.stats;
        const wholeBytes = s.experts!.decodeBytesPerToken;
        assert.ok(wholeBytes > 0);
        // a decoded token moves at most 0.6 of what streaming whole layers moves
        assert.ok(
          expertBytes <= 0.6 * wholeBytes,
          `${expertBytes} vs ${wholeBytes} bytes per token`,
        );
      } finally {
        await whole.dispose();
      }
    },
  );
}

for (
  const v of tinyMoeVariants().filter((x) => x.dtype === "BF16" || x.sharded)
) {
  gpuTest(
    `engine moe: ${v.name}: experts streamed through top-k cache slots = the float64 reference`,
    async (g) => {
      const { hf, shards: dir } = await tinyShards(v.name, v);
      const ref = await loadReferenceModel(hf);
      const shards = await ShardDir.open(dir);
      const cfg = shards.config;
      const files = [];
      for (let i = 0; i < cfg.numLayers; i++) {
        files.push(await SafetensorsFile.open(shards.layerPath(i)));
      }
      const ex = expertLayouts(cfg, files, g.limits);
      for (const f of files) f.close();
      const kernels = await Kernels.create(g);
      const probe = await Forward.create({
        gpu: g,
        kernels,
        shards,
        budget: 1e9,
        maxSeqLen: 64,
        maxT: 16,
      });
      const full = probe.plan.totalBytes;
      await probe.dispose();
      const fwd = await Forward.create({
        gpu: g,
        kernels,
        shards,
        budget: full + cfg.moe!.topK * ex.slotBytes,
        maxSeqLen: 64,
        maxT: 16,
      });
      try {
        const { logits } = await fwd.forward(PROMPT, { logits: true });
        const want = referenceForward(ref.weights, ref.config, PROMPT).at(-1)!;
        const err = maxAbsDiff(logits!, want);
        assert.ok(err < LOGIT_TOL, `max |logit error| ${err}`);
        const ids = await greedy(fwd, NEW);
        const wantIds = referenceGreedy(ref.weights, ref.config, PROMPT, NEW);
        assert.deepEqual(ids, wantIds);
        assert.equal(fwd.stats.experts!.allResident, false);
        assert.ok(fwd.stats.experts!.loaded > 0);
      } finally {
        await fwd.dispose();
      }
    },
  );
}

gpuTest(
  "engine moe: q8 experts (resident and streamed) equal the reference of the q8 shards",
  async (g) => {
    const v = tinyMoeVariants().find((x) => x.arch === "qwen2_moe")!;
    const { shards: dir } = await tinyShards(v.name, v, "q8");
    const ref = await loadReferenceModel(dir);
    const want = referenceGreedy(ref.weights, ref.config, PROMPT, NEW);
    const shards = await ShardDir.open(dir);
    const kernels = await Kernels.create(g);
    for (const budget of [1e9, 530_000]) {
      const fwd = await Forward.create({
        gpu: g,
        kernels,
        shards,
        budget,
        maxSeqLen: 64,
        maxT: 16,
      });
      try {
        const ids = await greedy(fwd, NEW);
        assert.deepEqual(ids, want.slice(0, ids.length), `budget ${budget}`);
        assert.equal(fwd.stats.experts!.allResident, budget === 1e9);
      } finally {
        await fwd.dispose();
      }
    }
  },
);

gpuTest(
  "cli moe: run --json reports experts_loaded_per_token, expert_cache_hit_rate and bytes_streamed_per_token; --profile the expert table",
  async () => {
    const v = tinyMoeVariants().find((x) => x.arch === "mixtral")!;
    const { hf, shards } = await tinyShards(v.name, v);
    const ref = await loadReferenceModel(hf);
    const want = referenceGreedy(ref.weights, ref.config, PROMPT, 6);
    const cli = new URL("../../cli.ts", import.meta.url).pathname;
    const run = async (budget: string) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          cli,
          "run",
          shards,
          "--prompt-ids",
          PROMPT.join(","),
          "--max-new-tokens",
          "6",
          "--temperature",
          "0",
          "--json",
          "--profile",
          "--max-seq-len",
          "64",
          "--gpu-memory",
          budget,
        ],
        env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      return { json: JSON.parse(new TextDecoder().decode(out.stdout)), stderr };
    };
    const big = await run("1GB");
    assert.deepEqual(big.json.ids, want);
    assert.equal(big.json.stats.experts_resident, true);
    assert.equal(big.json.stats.expert_cache_hit_rate, 1);
    assert.equal(big.json.stats.router_readbacks, 0);
    // a budget just above the all-resident one without the experts: they stream
    const p = big.json.stats.peak_gpu_bytes as number;
    const small = await run(String(p - 60_000));
    const s = small.json.stats;
    assert.deepEqual(small.json.ids, want);
    assert.equal(s.experts_resident, false);
    assert.ok(s.experts_loaded_per_token > 0);
    assert.ok(s.expert_cache_hit_rate >= 0 && s.expert_cache_hit_rate <= 1);
    assert.ok(s.bytes_streamed_per_token > 0);
    assert.ok(s.peak_gpu_bytes <= p - 60_000);
    assert.match(
      small.stderr,
      /layer {2}chosen {2}loaded {6}bytes {2}hit rate/,
    );
  },
);
