import assert from "node:assert/strict";
import {
  normalizeConfig,
  validateModelConfig,
} from "../../lib/model/config.ts";
import { architectureOf } from "../../lib/model/architectures.ts";
import {
  globalTensors,
  layerIndexOf,
  layerTensorNames,
  layerTensors,
} from "../../lib/model/tensors.ts";
import { FormatError, UnsupportedError } from "../../lib/errors.ts";

const base = {
  model_type: "llama",
  hidden_size: 64,
  intermediate_size: 172,
  num_hidden_layers: 5,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  vocab_size: 512,
};

Deno.test("normalizeConfig: llama defaults follow LlamaConfig", () => {
  const c = normalizeConfig(base, "config.json");
  assert.equal(c.architecture, "llama");
  assert.equal(c.headDim, 8);
  assert.equal(c.numKvHeads, 4);
  assert.equal(c.ropeTheta, 10000);
  assert.equal(c.rmsNormEps, 1e-6);
  assert.equal(c.maxPositionEmbeddings, 2048);
  assert.equal(c.tieWordEmbeddings, false);
  assert.equal(c.partialRotaryFactor, 1);
  assert.equal(c.ropeScaling, null);
  assert.equal(c.bosTokenId, null);
  assert.deepEqual(c.eosTokenIds, []);
  assert.equal(c.attentionBias, false);
});

Deno.test("normalizeConfig: kv heads default to heads; eos array; bos", () => {
  const c = normalizeConfig(
    {
      ...base,
      vocab_size: 128256,
      num_key_value_heads: undefined,
      eos_token_id: [128001, 128009],
      bos_token_id: 128000,
    },
    "c.json",
  );
  assert.equal(c.numKvHeads, 8);
  assert.deepEqual(c.eosTokenIds, [128001, 128009]);
  assert.equal(c.bosTokenId, 128000);
  assert.deepEqual(
    normalizeConfig({ ...base, eos_token_id: 2 }, "c").eosTokenIds,
    [2],
  );
});

Deno.test("normalizeConfig: llama3 rope scaling (rope_type and legacy type)", () => {
  const rs = {
    rope_type: "llama3",
    factor: 8,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 8192,
  };
  const c = normalizeConfig(
    { ...base, rope_theta: 500000, rope_scaling: rs },
    "c",
  );
  assert.deepEqual(c.ropeScaling, {
    type: "llama3",
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  });
  assert.equal(c.ropeTheta, 500000);
  const lin = normalizeConfig({
    ...base,
    rope_scaling: { type: "linear", factor: 2 },
  }, "c");
  assert.deepEqual(lin.ropeScaling, { type: "linear", factor: 2 });
  const dyn = normalizeConfig({
    ...base,
    rope_scaling: { type: "dynamic", factor: 4 },
  }, "c");
  assert.deepEqual(dyn.ropeScaling, { type: "dynamic", factor: 4 });
  const def = normalizeConfig({
    ...base,
    rope_scaling: { rope_type: "default" },
  }, "c");
  assert.equal(def.ropeScaling, null);
  // transformers v5 style rope_parameters
  const v5 = normalizeConfig({
    ...base,
    rope_parameters: { rope_type: "default", rope_theta: 1e6 },
  }, "c");
  assert.equal(v5.ropeTheta, 1e6);
  assert.equal(v5.ropeScaling, null);
});

Deno.test("normalizeConfig: qwen3 head_dim and qwen2 biases", () => {
  const q3 = normalizeConfig(
    { ...base, model_type: "qwen3", head_dim: 32, tie_word_embeddings: true },
    "c",
  );
  assert.equal(q3.headDim, 32);
  assert.equal(q3.tieWordEmbeddings, true);
  assert.equal(
    normalizeConfig({ ...base, model_type: "qwen3" }, "c").headDim,
    128,
  ); // Qwen3Config default
  const names = layerTensorNames(q3, 3);
  assert.equal(names.qNorm, "model.layers.3.self_attn.q_norm.weight");
  assert.equal(names.qBias, undefined);
  const qn = layerTensors(q3, 0).find((t) => t.role === "qNorm");
  assert.deepEqual(qn?.shape, [32]);
  assert.deepEqual(layerTensors(q3, 0).find((t) => t.role === "qProj")?.shape, [
    256,
    64,
  ]);
  assert.deepEqual(layerTensors(q3, 0).find((t) => t.role === "oProj")?.shape, [
    64,
    256,
  ]);

  const q2 = normalizeConfig({ ...base, model_type: "qwen2" }, "c");
  const n2 = layerTensorNames(q2, 0);
  assert.equal(n2.qBias, "model.layers.0.self_attn.q_proj.bias");
  assert.equal(n2.vBias, "model.layers.0.self_attn.v_proj.bias");
  assert.equal(n2.oBias, undefined);
  assert.equal(n2.qNorm, undefined);
  assert.deepEqual(
    architectureOf(q2).steps.map((s) => s.step === "attention" && s.qkvBias),
    [true, false],
  );

  const ll = normalizeConfig(base, "c");
  assert.equal(layerTensorNames(ll, 0).qBias, undefined);
  const llb = normalizeConfig({ ...base, attention_bias: true }, "c");
  assert.equal(
    layerTensorNames(llb, 0).oBias,
    "model.layers.0.self_attn.o_proj.bias",
  );
  const mi = normalizeConfig({
    ...base,
    model_type: "mistral",
    attention_bias: true,
  }, "c");
  assert.equal(layerTensorNames(mi, 0).qBias, undefined);
  assert.equal(layerTensors(ll, 0).length, 9);
});

Deno.test("globalTensors: lm_head only when untied", () => {
  const c = normalizeConfig(base, "c");
  assert.deepEqual(globalTensors(c).map((t) => t.name), [
    "model.embed_tokens.weight",
    "model.norm.weight",
    "lm_head.weight",
  ]);
  const t = normalizeConfig({ ...base, tie_word_embeddings: true }, "c");
  assert.deepEqual(globalTensors(t).map((t) => t.role), ["embed", "finalNorm"]);
  assert.equal(layerIndexOf("model.layers.7.self_attn.q_proj.weight"), 7);
  assert.equal(layerIndexOf("lm_head.weight"), null);
});

Deno.test("normalizeConfig: errors name the file and the problem", () => {
  const cases: [
    unknown,
    RegExp,
    typeof FormatError | typeof UnsupportedError,
  ][] = [
    [
      { ...base, model_type: "falcon" },
      /^m\.json: unsupported architecture falcon$/,
      UnsupportedError,
    ],
    [{ ...base, model_type: undefined }, /missing model_type/, FormatError],
    [
      { ...base, hidden_size: 0 },
      /hidden_size must be a positive integer/,
      FormatError,
    ],
    [
      { ...base, hidden_size: "64" },
      /hidden_size must be a positive integer/,
      FormatError,
    ],
    [
      { ...base, num_hidden_layers: 2.5 },
      /num_hidden_layers must be a positive integer/,
      FormatError,
    ],
    [
      { ...base, num_hidden_layers: 2 ** 40 },
      /num_hidden_layers 1099511627776 is implausibly large/,
      FormatError,
    ],
    [{ ...base, vocab_size: undefined }, /missing vocab_size/, FormatError],
    [
      { ...base, num_key_value_heads: 3 },
      /does not divide num_attention_heads/,
      FormatError,
    ],
    [
      { ...base, num_attention_heads: 7, num_key_value_heads: 7 },
      /does not divide hidden_size/,
      FormatError,
    ],
    [
      { ...base, rms_norm_eps: -1 },
      /rms_norm_eps must be a positive number/,
      FormatError,
    ],
    [
      { ...base, tie_word_embeddings: "yes" },
      /tie_word_embeddings must be a boolean/,
      FormatError,
    ],
    [
      { ...base, eos_token_id: [2, -1] },
      /eos_token_id must be a non-negative integer/,
      FormatError,
    ],
    [
      { ...base, rope_scaling: { type: "yarn", factor: 4 } },
      /unsupported rope_scaling type "yarn"/,
      UnsupportedError,
    ],
    [
      { ...base, rope_scaling: { type: "linear" } },
      /rope_scaling.factor must be a positive number/,
      FormatError,
    ],
    [
      { ...base, rope_scaling: { rope_type: "llama3", factor: 8 } },
      /low_freq_factor/,
      FormatError,
    ],
    [
      { ...base, hidden_act: "gelu" },
      /unsupported hidden_act gelu/,
      UnsupportedError,
    ],
    [{ ...base, partial_rotary_factor: 0.1 }, /rotary dimension/, FormatError],
    [[1, 2], /config must be a JSON object/, FormatError],
    [null, /config must be a JSON object/, FormatError],
  ];
  for (const [hf, re, cls] of cases) {
    assert.throws(() => normalizeConfig(hf, "m.json"), (e: unknown) => {
      assert.ok(e instanceof cls, `${re}: got ${e}`);
      assert.match((e as Error).message, re);
      assert.match((e as Error).message, /^m\.json: /);
      return true;
    });
  }
});

Deno.test("normalizeConfig: bos, eos and pad ids must lie inside the vocabulary", () => {
  for (
    const [field, value, re] of [
      [
        "bos_token_id",
        512,
        /c\.json: bos_token_id 512 is outside the vocabulary \(vocab_size 512\)/,
      ],
      ["eos_token_id", [2, 600], /eos_token_id 600 is outside the vocabulary/],
      ["pad_token_id", 2 ** 31, /pad_token_id 2147483648 is outside/],
      ["pad_token_id", -1, /pad_token_id must be a non-negative integer/],
    ] as const
  ) {
    assert.throws(
      () => normalizeConfig({ ...base, [field]: value }, "c.json"),
      (e) => e instanceof FormatError && re.test(e.message),
    );
  }
  assert.equal(
    normalizeConfig({ ...base, bos_token_id: 511, pad_token_id: null }, "c")
      .bosTokenId,
    511,
  );
});

Deno.test("validateModelConfig: a manifest's config passes the config.json rules", () => {
  const good = normalizeConfig(
    { ...base, bos_token_id: 1, eos_token_id: 2 },
    "c",
  );
  assert.deepEqual(validateModelConfig(good, "m.json"), good);
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { hiddenSize: 2 ** 31 },
      /config\.hiddenSize 2147483648 is implausibly large/,
    ],
    [{ vocabSize: -5 }, /config\.vocabSize must be a positive integer, got -5/],
    [{ bosTokenId: 512 }, /config\.bosTokenId 512 is outside the vocabulary/],
    [{ eosTokenIds: [9999] }, /config\.eosTokenIds 9999 is outside/],
    [{ numKvHeads: 3 }, /does not divide/],
    [{ headDim: 9 }, /config\.headDim 9 is inconsistent|rotary/],
    [{ numLayers: undefined }, /config\.numLayers is missing/],
    [{ extra: 1 }, /config\.extra is not a config field/],
    [{ architecture: "falcon" }, /unsupported architecture falcon/],
    [{ ropeScaling: { type: "llama3", factor: 8 } }, /low_freq_factor/],
  ];
  for (const [patch, re] of cases) {
    assert.throws(
      () => validateModelConfig({ ...good, ...patch }, "m.json"),
      (e) =>
        (e instanceof FormatError || e instanceof UnsupportedError) &&
        e.message.startsWith("m.json: ") && re.test(e.message),
      String(re),
    );
  }
});
