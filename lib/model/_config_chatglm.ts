/**
 * ChatGLM's own config.json keys (THUDM `configuration_chatglm.py`, used by
 * ChatGLM2-6B, ChatGLM3-6B and GLM-4-9B-chat) mapped to the Hugging Face
 * keys {@link normalizeConfig} reads. ChatGLM-6B (v1) shares the model_type
 * but not the model, and is refused.
 *
 * @module
 */
import { FormatError, UnsupportedError } from "../errors.ts";

type Json = Record<string, unknown>;

/** Whether `hf` is written with ChatGLM's own keys (not already mapped). */
function isNative(hf: Json): boolean {
  return ["num_layers", "padded_vocab_size", "ffn_hidden_size"].some((k) =>
    Object.hasOwn(hf, k)
  );
}

/**
 * The Hugging Face-style config of a `model_type: chatglm` config.json, or
 * `hf` unchanged when it already uses Hugging Face keys (a shard manifest's
 * config, checked again by validateModelConfig).
 *
 * - num_layers → num_hidden_layers, ffn_hidden_size → intermediate_size,
 *   padded_vocab_size → vocab_size (the rows of the embedding and of
 *   output_layer), kv_channels → head_dim, layernorm_epsilon → rms_norm_eps,
 *   seq_length → max_position_embeddings, add_qkv_bias → attention_bias.
 * - KV heads: multi_query_group_num when multi_query_attention, else one per
 *   query head.
 * - RoPE: the first half of each head (partial_rotary_factor 0.5), base
 *   10000 · rope_ratio (as modeling_chatglm.py's forward recomputes it; the
 *   checkpoint's `rotary_pos_emb.inv_freq` ignores rope_ratio and is not
 *   used). ChatGLM2-6B-32K's different use of rope_ratio (position
 *   interpolation) cannot be told from its config and is not supported.
 *
 * @throws {UnsupportedError} for ChatGLM-6B v1 (2D RoPE, LayerNorm, GELU) and
 * switches Strata lacks (LayerNorm, linear biases, post-LN residuals).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chatglmConfig } from "./_config_chatglm.ts";
 * const hf = chatglmConfig({ model_type: "chatglm", hidden_size: 4096, num_layers: 40,
 *   num_attention_heads: 32, kv_channels: 128, multi_query_attention: true, multi_query_group_num: 2,
 *   ffn_hidden_size: 13696, padded_vocab_size: 151552, rope_ratio: 500, layernorm_epsilon: 1.5625e-7,
 *   add_qkv_bias: true, seq_length: 131072 }, "config.json");
 * assert.equal(hf.num_key_value_heads, 2);
 * assert.equal(hf.rope_theta, 5e6);
 * assert.equal(hf.partial_rotary_factor, 0.5);
 * ```
 */
export function chatglmConfig(hf: Json, file: string): Json {
  if (
    hf.position_encoding_2d !== undefined || hf.inner_hidden_size !== undefined
  ) {
    throw new UnsupportedError(
      file,
      "ChatGLM-6B (v1: 2D RoPE, LayerNorm, GELU) is not supported; ChatGLM2/3 and GLM-4 are",
    );
  }
  if (!isNative(hf)) return hf;
  const refuse = (key: string, want: unknown, what: string) => {
    if (hf[key] !== undefined && hf[key] !== want) {
      throw new UnsupportedError(
        file,
        `unsupported ${key} ${JSON.stringify(hf[key])} (${what})`,
      );
    }
  };
  refuse("rmsnorm", true, "only RMSNorm is supported");
  refuse("add_bias_linear", false, "biases on dense and the MLP");
  refuse(
    "apply_residual_connection_post_layernorm",
    false,
    "post-norm residuals",
  );
  refuse("post_layer_norm", true, "a model without its final norm");
  refuse("original_rope", true, "only the original RoPE is supported");
  const ratio = hf.rope_ratio ?? 1;
  if (typeof ratio !== "number" || !Number.isFinite(ratio) || ratio <= 0) {
    throw new FormatError(
      file,
      `rope_ratio must be a positive number, got ${JSON.stringify(ratio)}`,
    );
  }
  const heads = hf.num_attention_heads;
  const mqa = hf.multi_query_attention ?? false;
  if (typeof mqa !== "boolean") {
    throw new FormatError(
      file,
      `multi_query_attention must be a boolean, got ${JSON.stringify(mqa)}`,
    );
  }
  const out: Json = {
    model_type: "chatglm",
    hidden_act: "silu",
    hidden_size: hf.hidden_size,
    intermediate_size: hf.ffn_hidden_size,
    num_hidden_layers: hf.num_layers,
    num_attention_heads: heads,
    num_key_value_heads: mqa ? hf.multi_query_group_num : heads,
    head_dim: hf.kv_channels,
    vocab_size: hf.padded_vocab_size,
    max_position_embeddings: hf.seq_length,
    rms_norm_eps: hf.layernorm_epsilon,
    rope_theta: 10000 * ratio,
    partial_rotary_factor: 0.5,
    attention_bias: hf.add_qkv_bias,
    tie_word_embeddings: hf.tie_word_embeddings,
    bos_token_id: hf.bos_token_id,
    eos_token_id: hf.eos_token_id,
    pad_token_id: hf.pad_token_id,
  };
  // absent keys take the row's defaults
  for (const [k, v] of Object.entries(out)) if (v === undefined) delete out[k];
  return out;
}
