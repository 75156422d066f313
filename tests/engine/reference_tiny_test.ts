// The reference forward pass on every seeded tiny model: the architecture
// table's names and shapes match what the fixture maker wrote, and
// property checks of the features stories260K does not exercise (GQA head
// mapping, q/k norm, biases, RoPE table agreement with lib/model/rope.ts).
import assert from "node:assert/strict";
import { makeTinyModel, tinyVariants } from "../../lib/testing/tiny_model.ts";
import { globalTensors, layerTensors } from "../../lib/model/tensors.ts";
import { type ModelConfig, normalizeConfig } from "../../lib/model/config.ts";
import { ropeInvFreq } from "../../lib/model/rope.ts";
import {
  loadReferenceModel,
  referenceForward,
  referenceGreedy,
  refInvFreq,
  type RefTensor,
} from "../reference/forward.ts";

const tmp = await Deno.makeTempDir({ prefix: "strata-ref-" });
const variants = tinyVariants();

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

Deno.test("reference: every tiny variant loads, matches the table, and runs", async () => {
  try {
    for (const v of variants) {
      const dir = `${tmp}/${v.name}`;
      await makeTinyModel(dir, v);
      const { config, weights } = await loadReferenceModel(dir);
      const expected = new Map<string, number[]>();
      for (let i = 0; i < config.numLayers; i++) {
        for (const t of layerTensors(config, i)) expected.set(t.name, t.shape);
      }
      for (const t of globalTensors(config)) expected.set(t.name, t.shape);
      assert.deepEqual(
        [...weights.keys()].sort(),
        [...expected.keys()].sort(),
        `${v.name}: tensor names`,
      );
      for (const [name, shape] of expected) {
        assert.equal(
          weights.get(name)!.length,
          shape.reduce((a, b) => a * b, 1),
          `${v.name}: ${name}`,
        );
      }
      const ids = referenceGreedy(weights, config, [1, 5, 9], 4);
      assert.equal(ids.length, 4);
      for (const id of ids) assert.ok(id >= 0 && id < config.vocabSize);
      const logits = referenceForward(weights, config, [1, 5, 9]);
      for (const l of logits) {
        assert.ok(l.every(Number.isFinite), `${v.name}: finite logits`);
      }
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

// A small random model built in memory.
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
}

function randomModel(hf: Record<string, unknown>, seed = 7) {
  const cfg = normalizeConfig(
    { vocab_size: 50, num_hidden_layers: 2, ...hf },
    "mem",
  );
  const r = rng(seed);
  const w = new Map<string, RefTensor>();
  const fill = (shape: number[], norm: boolean) =>
    Float64Array.from(
      { length: shape.reduce((a, b) => a * b, 1) },
      () => norm ? 1 + 0.2 * r() : r(),
    );
  for (let i = 0; i < cfg.numLayers; i++) {
    for (const t of layerTensors(cfg, i)) {
      w.set(t.name, fill(t.shape, /norm/.test(t.role)));
    }
  }
  for (const t of globalTensors(cfg)) {
    w.set(t.name, fill(t.shape, t.role === "finalNorm"));
  }
  return { cfg, w };
}

const TOKENS = [1, 7, 3, 42, 9, 9, 0];

Deno.test("reference: GQA equals MHA with each kv head repeated for its group", () => {
  // 4 query heads, 2 kv heads: query heads 0,1 read kv head 0; 2,3 read kv head 1
  const base = {
    model_type: "llama",
    hidden_size: 16,
    intermediate_size: 24,
    num_attention_heads: 4,
    num_key_value_heads: 2,
  };
  const { cfg, w } = randomModel(base);
  const mha: ModelConfig = { ...cfg, numKvHeads: 4 };
  const w2 = new Map(w);
  const hd = cfg.headDim, D = cfg.hiddenSize;
  for (let l = 0; l < cfg.numLayers; l++) {
    for (const p of ["k_proj", "v_proj"]) {
      const name = `model.layers.${l}.self_attn.${p}.weight`;
      const src = w.get(name)!;
      const dst = new Float64Array(4 * hd * D);
      for (let h = 0; h < 4; h++) {
        dst.set(
          src.subarray(
            Math.floor(h / 2) * hd * D,
            (Math.floor(h / 2) + 1) * hd * D,
          ),
          h * hd * D,
        );
      }
      w2.set(name, dst);
    }
  }
  const a = referenceForward(w, cfg, TOKENS),
    b = referenceForward(w2, mha, TOKENS);
  for (let t = 0; t < TOKENS.length; t++) {
    assert.ok(maxAbsDiff(a[t], b[t]) < 1e-12);
  }
});

Deno.test("reference: qwen3 q/k norm makes the output invariant to scaling q_proj and k_proj", () => {
  const hf = {
    model_type: "qwen3",
    hidden_size: 16,
    intermediate_size: 24,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 8,
  };
  const { cfg, w } = randomModel(hf);
  const w2 = new Map(w);
  for (let l = 0; l < cfg.numLayers; l++) {
    for (const p of ["q_proj", "k_proj"]) {
      const name = `model.layers.${l}.self_attn.${p}.weight`;
      w2.set(name, w.get(name)!.map((x) => x * 3.5));
    }
  }
  const a = referenceForward(w, cfg, TOKENS),
    b = referenceForward(w2, cfg, TOKENS);
  // eps makes it not exactly invariant; 1e-6 is far below the change without the norm
  for (let t = 0; t < TOKENS.length; t++) {
    assert.ok(maxAbsDiff(a[t], b[t]) < 1e-4);
  }
  // without q/k norm (llama) the same scaling changes the logits
  const { cfg: c2, w: w3 } = randomModel({ ...hf, model_type: "llama" });
  const w4 = new Map(w3);
  for (let l = 0; l < c2.numLayers; l++) {
    const name = `model.layers.${l}.self_attn.q_proj.weight`;
    w4.set(name, w3.get(name)!.map((x) => x * 3.5));
  }
  const c = referenceForward(w3, c2, TOKENS),
    d = referenceForward(w4, c2, TOKENS);
  assert.ok(maxAbsDiff(c[TOKENS.length - 1], d[TOKENS.length - 1]) > 1e-3);
});

Deno.test("reference: qwen2 biases are used (zero biases equal llama without them)", () => {
  const hf = {
    hidden_size: 16,
    intermediate_size: 24,
    num_attention_heads: 4,
    num_key_value_heads: 2,
  };
  const { cfg, w } = randomModel({ ...hf, model_type: "qwen2" });
  const { cfg: cl } = randomModel({ ...hf, model_type: "llama" });
  const zero = new Map(w), nobias = new Map(w);
  for (const k of w.keys()) {
    if (k.endsWith(".bias")) {
      zero.set(k, new Float64Array(w.get(k)!.length));
      nobias.delete(k);
    }
  }
  const a = referenceForward(zero, cfg, TOKENS),
    b = referenceForward(nobias, cl, TOKENS);
  for (let t = 0; t < TOKENS.length; t++) {
    assert.ok(maxAbsDiff(a[t], b[t]) === 0);
  }
  const c = referenceForward(w, cfg, TOKENS);
  assert.ok(maxAbsDiff(a[TOKENS.length - 1], c[TOKENS.length - 1]) > 1e-3);
});

Deno.test("reference: its own RoPE table agrees with lib/model/rope.ts", () => {
  const base = normalizeConfig({
    model_type: "llama",
    hidden_size: 256,
    intermediate_size: 8,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    vocab_size: 8,
    max_position_embeddings: 1024,
    rope_theta: 500000,
  }, "mem");
  const scalings: ModelConfig["ropeScaling"][] = [
    null,
    { type: "linear", factor: 4 },
    { type: "dynamic", factor: 2 },
    {
      type: "llama3",
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 256,
    },
    {
      type: "llama3",
      factor: 32,
      lowFreqFactor: 2,
      highFreqFactor: 8,
      originalMaxPositionEmbeddings: 8192,
    },
  ];
  for (const ropeScaling of scalings) {
    for (const partialRotaryFactor of [1, 0.5, 0.25]) {
      const cfg = { ...base, ropeScaling, partialRotaryFactor };
      for (const len of [10, 1024, 5000]) {
        const a = ropeInvFreq(cfg, len), b = refInvFreq(cfg, len);
        assert.equal(a.length, b.length);
        for (let j = 0; j < a.length; j++) {
          assert.ok(
            Math.abs(a[j] - b[j]) <= 1e-12 * b[j],
            `${JSON.stringify(ropeScaling)} ${j}`,
          );
        }
      }
    }
  }
});
