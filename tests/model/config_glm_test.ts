// GLM configs: the defaults of GlmConfig / Glm4Config (partial_rotary_factor
// 0.5, attention_bias true, head_dim 128, eps 1.5625e-7) and ChatGLM's own
// keys mapped (KV groups from multi_query_group_num, head_dim = kv_channels,
// rope base 10000 · rope_ratio, eps = layernorm_epsilon, vocab =
// padded_vocab_size); ChatGLM-6B v1 and unsupported switches refused.
import assert from "node:assert/strict";
import {
  normalizeConfig,
  rotaryDim,
  validateModelConfig,
} from "../../lib/model/config.ts";
import { FormatError, UnsupportedError } from "../../lib/errors.ts";

const GLM4_9B_CHAT = {
  model_type: "chatglm",
  architectures: ["ChatGLMModel"],
  add_bias_linear: false,
  add_qkv_bias: true,
  apply_residual_connection_post_layernorm: false,
  ffn_hidden_size: 13696,
  hidden_size: 4096,
  kv_channels: 128,
  layernorm_epsilon: 1.5625e-7,
  multi_query_attention: true,
  multi_query_group_num: 2,
  num_attention_heads: 32,
  num_hidden_layers: 40,
  num_layers: 40,
  original_rope: true,
  padded_vocab_size: 151552,
  post_layer_norm: true,
  rmsnorm: true,
  rope_ratio: 500,
  seq_length: 131072,
  eos_token_id: [151329, 151336, 151338],
  pad_token_id: 151329,
};

Deno.test("config: chatglm keys (GLM-4-9B-chat) map to the model's sizes; the manifest form round-trips", () => {
  const cfg = normalizeConfig(GLM4_9B_CHAT, "config.json");
  assert.equal(cfg.architecture, "chatglm");
  assert.equal(cfg.numLayers, 40);
  assert.equal(cfg.intermediateSize, 13696);
  assert.equal(cfg.numKvHeads, 2); // multi_query_group_num
  assert.equal(cfg.headDim, 128); // kv_channels
  assert.equal(cfg.vocabSize, 151552); // padded_vocab_size
  assert.equal(cfg.rmsNormEps, 1.5625e-7);
  assert.equal(cfg.ropeTheta, 5e6); // 10000 · rope_ratio
  assert.equal(rotaryDim(cfg), 64); // first half of each head
  assert.equal(cfg.attentionBias, true);
  assert.equal(cfg.tieWordEmbeddings, false);
  assert.equal(cfg.maxPositionEmbeddings, 131072);
  assert.deepEqual(cfg.eosTokenIds, [151329, 151336, 151338]);
  assert.deepEqual(validateModelConfig(cfg, "manifest.json"), cfg);
  // ChatGLM2: no rope_ratio (base 10000), eps 1e-5; without MQA one KV head per query head
  const v2 = normalizeConfig({
    ...GLM4_9B_CHAT,
    rope_ratio: undefined,
    layernorm_epsilon: 1e-5,
    multi_query_attention: false,
    padded_vocab_size: 65024,
    eos_token_id: 2,
    pad_token_id: 0,
  }, "config.json");
  assert.equal(v2.ropeTheta, 10000);
  assert.equal(v2.numKvHeads, 32);
});

Deno.test("config: ChatGLM-6B v1 and unsupported chatglm switches are refused by name", () => {
  const v1 = {
    model_type: "chatglm",
    hidden_size: 4096,
    inner_hidden_size: 16384,
    num_layers: 28,
    num_attention_heads: 32,
    position_encoding_2d: true,
    vocab_size: 130528,
  };
  assert.throws(
    () => normalizeConfig(v1, "m/config.json"),
    (e) =>
      e instanceof UnsupportedError &&
      /m\/config\.json: ChatGLM-6B \(v1.*not supported/.test(e.message),
  );
  for (
    const [k, v] of [
      ["rmsnorm", false],
      ["add_bias_linear", true],
      ["apply_residual_connection_post_layernorm", true],
      ["post_layer_norm", false],
    ] as const
  ) {
    assert.throws(
      () => normalizeConfig({ ...GLM4_9B_CHAT, [k]: v }, "config.json"),
      (e) => e instanceof UnsupportedError && e.message.includes(k),
      k,
    );
  }
  assert.throws(
    () => normalizeConfig({ ...GLM4_9B_CHAT, rope_ratio: -1 }, "config.json"),
    FormatError,
  );
});

Deno.test("config: glm and glm4 take GlmConfig's defaults (partial rotary 0.5, bias, head_dim 128)", () => {
  for (const model_type of ["glm", "glm4"]) {
    const cfg = normalizeConfig({
      model_type,
      hidden_size: 4096,
      intermediate_size: 13696,
      num_hidden_layers: 40,
      num_attention_heads: 32,
      num_key_value_heads: 2,
      vocab_size: 151552,
    }, "config.json");
    assert.equal(cfg.partialRotaryFactor, 0.5);
    assert.equal(rotaryDim(cfg), 64);
    assert.equal(cfg.attentionBias, true);
    assert.equal(cfg.headDim, 128);
    assert.equal(cfg.rmsNormEps, 1.5625e-7);
    assert.deepEqual(validateModelConfig(cfg, "manifest.json"), cfg);
  }
});
