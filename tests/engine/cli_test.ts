/**
 * `run <model> --prompt-ids … --temperature 0 --json` reproduces the float64
 * reference's greedy ids for every tiny-model variant (F32/F16/BF16,
 * single/sharded, tied/untied), from the Hugging Face directory (split into
 * a cache on first use) and with a budget that streams; plus the text path
 * and usage errors.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gpu, gpuTest } from "../_gpu.ts";
import { loadReferenceModel, referenceGreedy } from "../reference/forward.ts";
import { AutoModel } from "../../lib/engine/auto_model.ts";
import { PROMPT, tempRoot, tinyShards, VARIANTS } from "./_models.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const NEW = 8;

async function run(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** A budget that holds the essentials and one layer slot (everything streams). */
async function oneLayerBudget(shards: string): Promise<number> {
  const m = await AutoModel.fromPretrained(shards, {
    gpu: gpu!,
    gpuMemory: "1GB",
    maxSeqLen: 32,
  });
  const p = m.plan;
  await m.dispose();
  return p.kvBytes + p.headBytes + p.activationBytes +
    p.residentBytes / p.resident.length + 1024;
}

for (const v of VARIANTS) {
  gpuTest(
    `cli: run ${v.name} --json reproduces the reference greedy ids`,
    async () => {
      const { hf, shards } = await tinyShards(v.name, v);
      const ref = await loadReferenceModel(hf);
      const want = referenceGreedy(ref.weights, ref.config, PROMPT, NEW);
      const cache = join(await tempRoot(), "cache");
      const budget = await oneLayerBudget(shards);
      // the HF directory: split into $STRATA_CACHE on first use; a small budget streams
      const r = await run([
        "run",
        hf,
        "--prompt-ids",
        PROMPT.join(","),
        "--max-new-tokens",
        String(NEW),
        "--temperature",
        "0",
        "--gpu-memory",
        String(budget),
        "--max-seq-len",
        "32",
        "--json",
      ], { STRATA_CACHE: cache });
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split("\n");
      assert.equal(lines.length, 1, "exactly one JSON object on stdout");
      const obj = JSON.parse(lines[0]);
      assert.deepEqual(obj.prompt_ids, PROMPT);
      const n = obj.ids.length;
      assert.deepEqual(obj.ids, want.slice(0, n));
      if (n < NEW) assert.ok(ref.config.eosTokenIds.includes(obj.ids[n - 1]));
      assert.equal(typeof obj.text, "string");
      for (
        const k of [
          "prefill_s",
          "decode_s",
          "tokens_per_s",
          "bytes_streamed_per_token",
          "read_s",
          "upload_s",
          "compute_s",
          "wall_s",
          "resident_layers",
          "streamed_layers",
          "peak_gpu_bytes",
          "stream_units_in_flight",
        ]
      ) assert.equal(typeof obj.stats[k], "number", k);
      assert.ok(obj.stats.peak_gpu_bytes <= budget);
      assert.equal(obj.stats.resident_layers, 0);
      assert.ok(obj.stats.streamed_layers > 0);
      assert.ok(obj.stats.bytes_streamed_per_token > 0);
      assert.match(r.stderr, /plan: /);
      // two whole-layer slots do not fit: the layers stream in sub-layer
      // units, with at least 2 in flight while another computes
      assert.match(r.stderr, /in \d+ sub-layer units .* through 3 slot\(s\)/);
      assert.ok(obj.stats.stream_units_in_flight >= 2);
    },
  );
}

gpuTest(
  "cli: --prompt streams text; --profile prints the layer table; bad flags are usage errors",
  async () => {
    const v = VARIANTS[0];
    const { shards } = await tinyShards(v.name, v);
    const budget = await oneLayerBudget(shards);
    const r = await run([
      "run",
      shards,
      "--prompt",
      "Once upon a time",
      "--max-new-tokens",
      "6",
      "--profile",
      "--gpu-memory",
      String(budget),
      "--max-seq-len",
      "32",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.length > 0);
    assert.match(r.stderr, /layer\s+kind\s+units\s+read ms/);
    assert.match(r.stderr, /overlap/);
    const bad = await run(["run", shards, "--max-new-tokens", "x"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^strata: error: --max-new-tokens/m);
    const small = await run([
      "run",
      shards,
      "--gpu-memory",
      "10KB",
      "--prompt-ids",
      "1",
    ]);
    assert.equal(small.code, 1);
    assert.match(small.stderr, /strata: error: GPU memory budget .* too small/);
  },
);

if (!gpu) console.log("cli tests skipped: no WebGPU adapter");
