/**
 * `bench --shape`: the public shapes it knows, a clear refusal for
 * mixtral-8x7b (the shape bench makes dense models only), usage errors, and
 * the whole benchmark on a tiny shape (made, split, decoded, floors, plan).
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

Deno.test("bench --shape: public shapes, mixtral refused, usage errors", async () => {
  // Llama-2-70B and Llama-3-8B config.json values (public)
  assert.deepEqual(SHAPES["llama-2-70b"], {
    hidden: 8192,
    intermediate: 28672,
    heads: 64,
    kvHeads: 8,
    vocab: 32000,
    layers: 80,
    maxPositions: 4096,
  });
  assert.deepEqual(SHAPES["llama-3-8b"], {
    hidden: 4096,
    intermediate: 14336,
    heads: 32,
    kvHeads: 8,
    vocab: 128256,
    layers: 32,
    maxPositions: 8192,
  });
  const dir = await Deno.makeTempDir();
  try {
    for (
      const [args, re] of [
        [
          ["--shape", "mixtral-8x7b"],
          /does not make mixture-of-experts models yet .*bench --moe/,
        ],
        [
          ["--shape", "gpt-5"],
          /--shape must be one of llama-2-70b, llama-3-8b/,
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

gpuTest("bench --shape runs end to end on a tiny shape", async () => {
  SHAPES["tiny-test"] = {
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
  const root = await Deno.makeTempDir();
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    const code = await runShapeBench({
      shape: "tiny-test",
      layers: 6,
      gpuMemory: String(budget),
      kernelFloor: false,
      tokens: 2,
      root,
    });
    assert.equal(code, 0);
  } finally {
    console.log = log;
    delete SHAPES["tiny-test"];
    await Deno.remove(root, { recursive: true });
  }
  const out = lines.join("\n");
  assert.match(out, /decode: [0-9.]+ s\/token under --gpu-memory/);
  assert.match(out, /1 resident \+ 5 streamed through 3 slot/);
  assert.match(out, /same ids: true/);
  assert.match(out, /≤ budget: true/);
  assert.match(out, /floors per token: read/);
  assert.match(out, /units in flight: (n\/a|\d+)/);
  assert.match(out, /plan predicts [0-9.]+ s\/token/);
  assert.doesNotMatch(out, /differs from the engine's/);
});
