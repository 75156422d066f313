/**
 * `bench --shape`: the public shapes it knows (Mixtral-8x7B included), usage
 * errors, and the whole benchmark on a tiny dense shape and a tiny
 * mixture-of-experts shape (made, split, decoded, floors, plan's
 * prediction, expert statistics).
 */
import assert from "node:assert/strict";
import { gpuTest } from "../_gpu.ts";
import { runShapeBench, SHAPES } from "../../lib/bench/shape.ts";
import { gpuBytes } from "../../lib/engine/predict.ts";
import { normalizeConfig } from "../../lib/model/config.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

async function cli(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("bench --shape: public shapes, usage errors", async () => {
  // Llama-2-70B, Llama-3-8B and Mixtral-8x7B config.json values (public)
  assert.deepEqual(SHAPES["llama-2-70b"], {
    arch: "llama",
    hidden: 8192,
    intermediate: 28672,
    heads: 64,
    kvHeads: 8,
    vocab: 32000,
    layers: 80,
    maxPositions: 4096,
  });
  assert.deepEqual(SHAPES["llama-3-8b"], {
    arch: "llama",
    hidden: 4096,
    intermediate: 14336,
    heads: 32,
    kvHeads: 8,
    vocab: 128256,
    layers: 32,
    maxPositions: 8192,
  });
  assert.deepEqual(SHAPES["mixtral-8x7b"], {
    arch: "mixtral",
    hidden: 4096,
    intermediate: 14336,
    heads: 32,
    kvHeads: 8,
    vocab: 32000,
    layers: 32,
    maxPositions: 32768,
    moe: { experts: 8, topK: 2 },
  });
  // 8 experts of 3 x 4096 x 14336 F16: 2.8 GB per layer, plus attention
  const m = SHAPES["mixtral-8x7b"];
  const expertBytes = m.moe!.experts * 3 * m.hidden * m.intermediate * 2;
  assert.ok(expertBytes > 2.8e9 && expertBytes < 2.9e9);
  const dir = await Deno.makeTempDir();
  try {
    for (
      const [args, re] of [
        [
          ["--shape", "gpt-5"],
          /--shape must be one of llama-2-70b, llama-3-8b, mixtral-8x7b \(got gpt-5\)/,
        ],
        [
          ["--shape", "mixtral-8x7b", "--layers", "33"],
          /--layers must be 1\.\.32/,
        ],
        [
          ["--shape", "mixtral-8x7b", "--layers", "0"],
          /--layers/,
        ],
        [
          ["--shape", "llama-2-70b", "--layers", "81"],
          /--layers must be 1\.\.80/,
        ],
        [["--layers", "2"], /--layers and --gpu-memory go with --shape/],
      ] as [string[], RegExp][]
    ) {
      const r = await cli(["bench", ...args, "--dir", dir]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, re);
    }
    // nothing was made
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Runs the shape bench on `shape` (registered for the run) in a temporary
 * cache root with the kernel floor off; its printed lines and the names
 * the root holds afterwards.
 */
async function runCaptured(
  shape: string,
  o: { layers: number; budget: number; tokens: number },
): Promise<{ out: string; left: string[] }> {
  const root = await Deno.makeTempDir();
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    const code = await runShapeBench({
      shape,
      layers: o.layers,
      gpuMemory: String(o.budget),
      kernelFloor: false,
      tokens: o.tokens,
      root,
    });
    assert.equal(code, 0);
    return {
      out: lines.join("\n"),
      left: [...Deno.readDirSync(root)].map((e) => e.name),
    };
  } finally {
    console.log = log;
    delete SHAPES[shape];
    await Deno.remove(root, { recursive: true });
  }
}

gpuTest("bench --shape runs end to end on a tiny shape", async () => {
  SHAPES["tiny-test"] = {
    arch: "llama",
    hidden: 64,
    intermediate: 160,
    heads: 4,
    kvHeads: 2,
    vocab: 300,
    layers: 6,
    maxPositions: 512,
  };
  // a budget that streams: the essentials, one resident layer and 3 slots
  const cfg = normalizeConfig({
    model_type: "llama",
    hidden_size: 64,
    intermediate_size: 160,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    num_hidden_layers: 6,
    vocab_size: 300,
    head_dim: 16,
    max_position_embeddings: 512,
  }, "config.json");
  const b = gpuBytes(cfg, { encoding: "F16", maxSeqLen: 512 });
  const budget = b.kvBytesPerLayer * 6 + b.headBytes + b.activationBytes +
    4 * b.layerBytes[0] + 64;
  const { out } = await runCaptured("tiny-test", {
    layers: 6,
    budget,
    tokens: 2,
  });
  assert.match(out, /decode: [0-9.]+ s\/token under --gpu-memory/);
  assert.match(out, /1 resident \+ 5 streamed through 3 slot/);
  assert.match(out, /same ids: true/);
  assert.match(out, /≤ budget: true/);
  assert.match(out, /floors per token: read/);
  assert.match(out, /units in flight: (n\/a|\d+)/);
  assert.match(out, /plan predicts [0-9.]+ s\/token/);
  assert.doesNotMatch(out, /differs from the engine's/);
});

gpuTest(
  "bench --shape runs end to end on a tiny mixture-of-experts shape",
  async () => {
    SHAPES["tiny-moe-test"] = {
      arch: "mixtral",
      hidden: 64,
      intermediate: 96,
      heads: 4,
      kvHeads: 2,
      vocab: 300,
      layers: 2,
      maxPositions: 512,
      moe: { experts: 8, topK: 2 },
    };
    // a budget that holds everything but 3/4 of the experts: they stream
    const cfg = normalizeConfig({
      model_type: "mixtral",
      hidden_size: 64,
      intermediate_size: 96,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      num_hidden_layers: 2,
      vocab_size: 300,
      num_local_experts: 8,
      num_experts_per_tok: 2,
      max_position_embeddings: 512,
    }, "config.json");
    const b = gpuBytes(cfg, { encoding: "F16", maxSeqLen: 512 });
    const experts = 2 * 8 * 3 * 96 * 64 * 2;
    assert.equal(b.experts!.totalBytes, experts);
    const everything = b.kvBytesPerLayer * 2 + b.headBytes + b.activationBytes +
      b.layerBytes[0] + b.layerBytes[1] + experts;
    const budget = everything - Math.floor(experts * 0.6);
    const { out, left } = await runCaptured("tiny-moe-test", {
      layers: 2,
      budget,
      tokens: 4,
    });
    // the checkpoint is gone, the shards stay; no partial directory is left
    assert.deepEqual(left, ["tiny-moe-test-2l-f16-shards"]);
    assert.match(
      out,
      /making tiny-moe-test-2l-f16 in .*: [0-9.]+ [kM]B of tensors/,
    );
    assert.match(out, /intermediate 96 per expert, 8 experts, top-2/);
    assert.match(out, /decode: [0-9.]+ s\/token under --gpu-memory/);
    assert.match(out, /experts included/);
    assert.match(out, /same ids: true/);
    assert.match(out, /≤ budget: true/);
    const e = out.match(
      /experts_loaded_per_token ([0-9.]+), expert_cache_hit_rate ([0-9.]+), experts_resident false; 16 experts/,
    );
    assert.ok(e, out);
    assert.ok(Number(e[1]) > 0, "experts were loaded while decoding");
    assert.ok(Number(e[2]) < 1, "some chosen experts were not cached");
    assert.match(
      out,
      /floors per token: read [0-9]+ ms .*layer files that hold the experts/,
    );
    assert.match(out, /every expert computed/);
    assert.match(out, /units in flight: (n\/a|\d+)/);
    // plan's mixture-of-experts model from the run's floors
    const p = out.match(
      /plan predicts ([0-9.]+) s\/token from these floors \((\d+) of 16 experts cached, ([0-9.]+) loaded per token expected under uniform independent routing \(measured ([0-9.]+)\)/,
    );
    assert.ok(p, out);
    assert.ok(Number(p[1]) > 0 && Number(p[2]) < 16 && Number(p[3]) > 0);
    assert.doesNotMatch(out, /differs from the engine's/);
  },
);
