/**
 * The mixture-of-experts rows against each family's Hugging Face modeling
 * code, written out by hand:
 *
 * - MixtralDecoderLayer: MistralAttention-like attention (no biases),
 *   `block_sparse_moe` = MixtralSparseMoeBlock (gate, experts.{e}.w1/w2/w3);
 * - Qwen2MoeDecoderLayer: Qwen2 attention (q/k/v bias), `mlp` =
 *   Qwen2MoeSparseMoeBlock (gate, experts.{e}.*_proj, shared_expert,
 *   shared_expert_gate) on sparse layers, Qwen2MoeMLP elsewhere;
 * - Qwen3MoeDecoderLayer: Qwen3 attention (q/k norm), `mlp` =
 *   Qwen3MoeSparseMoeBlock (no shared expert) on sparse layers;
 * - sparse layers: i ∉ mlp_only_layers and (i + 1) % decoder_sparse_step == 0.
 */
import assert from "node:assert/strict";
import { ARCHITECTURES, layerSteps } from "../../lib/model/architectures.ts";
import { layerTensorNames, layerTensors } from "../../lib/model/tensors.ts";
import {
  normalizeConfig,
  validateModelConfig,
} from "../../lib/model/config.ts";
import { FormatError, UnsupportedError } from "../../lib/errors.ts";
import {
  makeTinyModel,
  tinyMoeVariants,
} from "../../lib/testing/tiny_model.ts";
import { globalTensors } from "../../lib/model/tensors.ts";
import {
  loadReferenceModel,
  referenceGreedy,
  ReferenceModel,
} from "../reference/forward.ts";
import { refRoute } from "../reference/moe.ts";

const base = {
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 100,
};

Deno.test("moe rows: steps per family", () => {
  assert.deepEqual(ARCHITECTURES.mixtral.steps[1], {
    step: "moe",
    sharedExpert: false,
  });
  assert.deepEqual(ARCHITECTURES.qwen2_moe.steps[1], {
    step: "moe",
    sharedExpert: true,
  });
  const a2 = ARCHITECTURES.qwen2_moe.steps[0];
  assert.ok(a2.step === "attention" && a2.qkvBias === true);
  const a3 = ARCHITECTURES.qwen3_moe.steps[0];
  assert.ok(a3.step === "attention" && a3.qkNorm);
  assert.equal(ARCHITECTURES.mixtral.defaults.ropeTheta, 1e6);
  assert.equal(ARCHITECTURES.mixtral.defaults.rmsNormEps, 1e-5);
});

Deno.test("moe config: defaults, sparse layers, and the manifest round trip", () => {
  const mix = normalizeConfig({ ...base, model_type: "mixtral" }, "c.json");
  assert.deepEqual(mix.moe, {
    numExperts: 8,
    topK: 2,
    expertSize: 24,
    normTopK: true,
    sharedExpertSize: 0,
    sparseStep: 1,
    mlpOnlyLayers: [],
  });
  const q3 = normalizeConfig({
    ...base,
    model_type: "qwen3_moe",
    num_experts: 6,
    num_experts_per_tok: 2,
    moe_intermediate_size: 8,
    decoder_sparse_step: 2,
    mlp_only_layers: [3],
  }, "c.json");
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => layerSteps(q3, i).map((s) => s.step)),
    [["attention", "mlp"], ["attention", "moe"], ["attention", "mlp"], [
      "attention",
      "mlp",
    ]],
  );
  assert.deepEqual(validateModelConfig(q3, "manifest.json"), q3);
  assert.deepEqual(validateModelConfig(mix, "manifest.json"), mix);
  const q2 = normalizeConfig({ ...base, model_type: "qwen2_moe" }, "c.json");
  assert.equal(q2.moe?.sharedExpertSize, 5632);
  assert.equal(q2.moe?.normTopK, false);
  assert.deepEqual(validateModelConfig(q2, "manifest.json"), q2);
  assert.throws(
    () =>
      validateModelConfig(
        { ...q3, moe: { ...q3.moe!, topK: 9 } },
        "manifest.json",
      ),
    FormatError,
  );
  assert.throws(
    () =>
      normalizeConfig({
        ...base,
        model_type: "qwen3_moe",
        num_experts: 4,
        num_experts_per_tok: 5,
      }, "c.json"),
    /c.json: num_experts_per_tok 5 exceeds num_experts 4/,
  );
  assert.throws(
    () =>
      normalizeConfig(
        { ...base, model_type: "qwen3_moe", num_experts: 300 },
        "c.json",
      ),
    UnsupportedError,
  );
  // a dense family has no moe field at all
  const dense = normalizeConfig({ ...base, model_type: "llama" }, "c.json");
  assert.equal("moe" in dense, false);
});

Deno.test("moe tensors: one tensor per expert and role, each expert contiguous", () => {
  const cfg = normalizeConfig({
    ...base,
    model_type: "qwen2_moe",
    num_experts: 3,
    num_experts_per_tok: 2,
    moe_intermediate_size: 8,
    shared_expert_intermediate_size: 12,
  }, "c.json");
  const t = layerTensors(cfg, 2);
  const p = "model.layers.2.mlp.";
  const moe = t.slice(t.findIndex((x) => x.role === "router"));
  assert.deepEqual(moe.map((x) => [x.name, x.shape, x.expert]), [
    [p + "gate.weight", [3, 16], undefined],
    [p + "shared_expert.gate_proj.weight", [12, 16], undefined],
    [p + "shared_expert.up_proj.weight", [12, 16], undefined],
    [p + "shared_expert.down_proj.weight", [16, 12], undefined],
    [p + "shared_expert_gate.weight", [1, 16], undefined],
    ...[0, 1, 2].flatMap((e) => [
      [p + `experts.${e}.gate_proj.weight`, [8, 16], e],
      [p + `experts.${e}.up_proj.weight`, [8, 16], e],
      [p + `experts.${e}.down_proj.weight`, [16, 8], e],
    ]),
  ]);
  assert.equal(layerTensorNames(cfg, 2).expertGate, undefined);
  const mix = normalizeConfig({
    ...base,
    model_type: "mixtral",
    num_local_experts: 2,
  }, "c.json");
  assert.deepEqual(
    layerTensors(mix, 0).filter((x) => x.expert === 1).map((x) => x.name),
    ["w1", "w3", "w2"].map((w) =>
      `model.layers.0.block_sparse_moe.experts.1.${w}.weight`
    ),
  );
});

Deno.test("moe reference: Mixtral's softmax over the top-k logits is softmax, top-k, renormalize", () => {
  let s = 3;
  const r = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 6 - 3;
  const cfg = (arch: string, normTopK: boolean) =>
    ({
      architecture: arch,
      moe: { numExperts: 7, topK: 3, normTopK },
    }) as never;
  for (let n = 0; n < 50; n++) {
    const logits = Float64Array.from({ length: 7 }, r);
    const a = refRoute(logits, cfg("mixtral", true));
    const b = refRoute(logits, cfg("qwen3_moe", true));
    assert.deepEqual(a.experts, b.experts);
    for (let j = 0; j < 3; j++) {
      assert.ok(Math.abs(a.weights[j] - b.weights[j]) < 1e-12);
    }
    // without renormalization the weights sum to less than one
    const c = refRoute(logits, cfg("qwen3_moe", false));
    assert.ok(c.weights.reduce((x, y) => x + y, 0) < 1 - 1e-9);
  }
});

Deno.test("moe reference: every tiny MoE variant loads, matches the table, and uses many experts", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "strata-moe-ref-" });
  try {
    for (const v of tinyMoeVariants()) {
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
        v.name,
      );
      if (v.dtype !== "F32" || v.sharded) continue;
      const m = new ReferenceModel(weights, config);
      const used = new Set<string>();
      for (const t of [1, 72, 101, 108, 111, 44, 32, 119, 5, 9]) {
        m.step(t);
        m.routes.forEach((r, l) => {
          for (const e of r?.experts ?? []) used.add(`${l}.${e}`);
        });
      }
      const sparse = m.routes.filter((r) => r !== null).length;
      assert.ok(sparse > 0);
      // the prompt reaches most experts of every sparse layer
      assert.ok(
        used.size >= sparse * config.moe!.numExperts * 0.6,
        `${v.name}: ${used.size} experts used`,
      );
      const ids = referenceGreedy(weights, config, [1, 5, 9], 4);
      for (const id of ids) assert.ok(id >= 0 && id < config.vocabSize);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
