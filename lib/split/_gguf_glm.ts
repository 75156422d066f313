/**
 * The GLM family in GGUF files as llama.cpp's convert_hf_to_gguf.py writes
 * them (`chatglm`, `glm4`): which Strata row, and the tensor names.
 *
 * @module
 */
import type { GgufFile } from "../format/gguf.ts";

/**
 * The Strata family of a GGUF architecture. llama.cpp writes ChatGLM2/3 and
 * GLM-4-9B-chat (fused `attn_qkv`) and glm-4-9b-chat-hf (`attn_q/k/v`) both as
 * `chatglm`; the first keep the `chatglm` row, the second the `glm` row.
 */
export function ggufModelType(g: GgufFile, arch: string): string {
  if (arch !== "chatglm") return arch;
  return g.tensors.has("blk.0.attn_qkv.weight") ? "chatglm" : "glm";
}

/** glm/glm4 names that differ from llama's (llama.cpp's tensor_mapping.py): fused ffn_up, GLM-4-0414's post norms. */
const GLM_LAYER_NAMES: Record<string, string> = {
  "ffn_up": "mlp.gate_up_proj",
  "post_attention_norm": "post_self_attn_layernorm",
  "post_ffw_norm": "post_mlp_layernorm",
};

const CHATGLM_GLOBAL: Record<string, string> = {
  "token_embd.weight": "transformer.embedding.word_embeddings.weight",
  "output_norm.weight": "transformer.encoder.final_layernorm.weight",
  "output.weight": "transformer.output_layer.weight",
};
const CHATGLM_LAYER: Record<string, string> = {
  "attn_norm": "input_layernorm",
  "attn_qkv": "self_attention.query_key_value",
  "attn_output": "self_attention.dense",
  "ffn_norm": "post_attention_layernorm",
  "ffn_up": "mlp.dense_h_to_4h",
  "ffn_down": "mlp.dense_4h_to_h",
};

/** THUDM names of a llama.cpp `chatglm` tensor with a fused `attn_qkv`. */
function chatglmTensorName(name: string): string | null {
  if (name in CHATGLM_GLOBAL) return CHATGLM_GLOBAL[name];
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(name);
  if (!m || !(m[2] in CHATGLM_LAYER)) return null;
  return `transformer.encoder.layers.${m[1]}.${CHATGLM_LAYER[m[2]]}.${m[3]}`;
}

/**
 * The Hugging Face class of each GLM row a GGUF file can become.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GLM_CLASSES } from "./_gguf_glm.ts";
 * assert.equal(GLM_CLASSES.chatglm, "ChatGLMModel");
 * ```
 */
export const GLM_CLASSES: Readonly<Record<string, string>> = {
  chatglm: "ChatGLMModel",
  glm: "GlmForCausalLM",
  glm4: "Glm4ForCausalLM",
};

/**
 * The Hugging Face name of a tensor of a GLM-row GGUF file (`mt`: chatglm,
 * glm or glm4), or null; `llamaNames` maps the layer parts glm shares with
 * llama.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { glmTensorName } from "./_gguf_glm.ts";
 * assert.equal(glmTensorName("blk.2.ffn_up.weight", "chatglm", {}),
 *   "transformer.encoder.layers.2.mlp.dense_h_to_4h.weight");
 * assert.equal(glmTensorName("blk.0.post_ffw_norm.weight", "glm4", {}),
 *   "model.layers.0.post_mlp_layernorm.weight");
 * ```
 */
export function glmTensorName(
  name: string,
  mt: string,
  llamaNames: Readonly<Record<string, string>>,
): string | null {
  if (mt === "chatglm") return chatglmTensorName(name);
  const globals: Record<string, string> = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
  };
  if (name in globals) return globals[name];
  const names = { ...llamaNames, ...GLM_LAYER_NAMES };
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(name);
  if (!m || !(m[2] in names)) return null;
  return `model.layers.${m[1]}.${names[m[2]]}.${m[3]}`;
}

/**
 * The config.json fields a GLM GGUF file adds: `rope.dimension_count` is
 * head_dim · partial_rotary_factor (0.5 in every real file; the base is
 * already 10000 · rope_ratio), and q/k/v biases when the file has them.
 *
 * @example
 * ```ts ignore
 * Object.assign(cfg, ggufGlmConfig(g, "chatglm", 0.5));
 * ```
 */
export function ggufGlmConfig(
  g: GgufFile,
  arch: string,
  partialRotaryFactor: number,
): Record<string, unknown> {
  if (arch !== "chatglm" && arch !== "glm4") return {};
  return {
    partial_rotary_factor: partialRotaryFactor,
    attention_bias: g.tensors.has("blk.0.attn_qkv.bias") ||
      g.tensors.has("blk.0.attn_q.bias"),
  };
}
