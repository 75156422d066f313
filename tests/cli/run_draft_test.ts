/**
 * `run <model> --draft MODEL|ngram [--draft-tokens K] --json`: the float64
 * reference's greedy ids (speculative decoding changes no greedy id), with
 * `draft_proposed` / `draft_accepted` in the stats; a draft model that
 * predicts the target gets nearly all its proposals accepted.
 */
import assert from "node:assert/strict";
import { gpuTest } from "../_gpu.ts";
import { loadReferenceModel, referenceGreedy } from "../reference/forward.ts";
import { tinyShards, VARIANTS } from "../engine/_models.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const NEW = 12;
const PROMPT = [1, 72, 101, 108, 108, 111];
const base = { ...VARIANTS[0], kvHeads: 4, seed: 77, vocab: 320 }; // 1280-byte logits rows: top-k binds them in place

async function run(args: string[]) {
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

gpuTest(
  "cli: run --draft (a model, ngram) --json keeps the greedy ids",
  async () => {
    const t = await tinyShards("spec-target", {
      ...base,
      layers: 4,
      zeroFrom: 1,
    });
    const d = await tinyShards("spec-draft", { ...base, layers: 1 });
    const ref = await loadReferenceModel(t.hf);
    const want = referenceGreedy(ref.weights, ref.config, PROMPT, NEW);
    for (const draft of [d.shards, "ngram"]) {
      const r = await run([
        "run",
        t.shards,
        "--prompt-ids",
        PROMPT.join(","),
        "--draft",
        draft,
        "--draft-tokens",
        "3",
        "--max-new-tokens",
        String(NEW),
        "--temperature",
        "0",
        "--max-seq-len",
        "64",
        "--json",
      ]);
      assert.equal(r.code, 0, r.stderr);
      const obj = JSON.parse(r.stdout);
      assert.deepEqual(obj.ids, want.slice(0, obj.ids.length), draft);
      assert.ok(obj.stats.draft_proposed >= obj.stats.draft_accepted);
      if (draft !== "ngram") {
        assert.ok(obj.stats.draft_proposed > 0);
        assert.ok(obj.stats.draft_accepted >= 0.9 * obj.stats.draft_proposed);
      }
    }
    const bad = await run([
      "run",
      t.shards,
      "--draft-tokens",
      "3",
    ]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--draft-tokens needs --draft/);
  },
);
