/**
 * Seeded tiny checkpoints of the GLM family, in each family's own layout and
 * config keys, for tests: `glm` (GlmForCausalLM), `glm4` (Glm4ForCausalLM,
 * with and without q/k/v bias) and `chatglm` (the THUDM remote-code layout) in
 * ChatGLM2-6B, ChatGLM3-6B(-32k) and GLM-4-9B-chat configurations. Like
 * tiny_model.ts it imports nothing from the library: names and config keys
 * are written here from the families' files.
 *
 * Sizes keep every fused split on a 256-byte boundary, as real sizes do, in
 * float and q8/q4 shards alike (hidden 64, blocks of 64 and 128 rows: a row is
 * 128 or 256 bytes of float, 64 or 32 bytes of q8/q4 data and 4 bytes of
 * scales).
 *
 * ```ts ignore
 * import { makeTinyGlm, tinyGlmVariants } from "./lib/testing/tiny_glm.ts";
 * for (const v of tinyGlmVariants()) await makeTinyGlm(`/tmp/tiny/${v.name}`, v);
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { makeTinyTokenizer } from "./tiny_tokenizer.ts";
import {
  type TinyDtype,
  type TinyModel,
  type TinySpec,
  TORCH_DTYPE,
  writeTinyWeights,
} from "./tiny_model.ts";

/** The GLM layouts the maker writes. */
export type TinyGlmLayout =
  | "glm"
  | "glm4"
  | "chatglm2"
  | "chatglm3"
  | "glm4-chat";

/** One tiny GLM checkpoint to make. */
export interface TinyGlmOptions {
  /** Layout and config flavour. */
  layout: TinyGlmLayout;
  /** Precision of every tensor. */
  dtype: TinyDtype;
  /** Several safetensors files + index. */
  sharded?: boolean;
  /** q/k/v bias (glm, glm4: `attention_bias`; chatglm: `add_qkv_bias`). */
  bias?: boolean;
  /** PRNG seed (default 4321). */
  seed?: number;
  /** Decoder layers (default 2). */
  layers?: number;
  /** head_dim / kv_channels (default 32; hidden is 64, 4 heads). */
  headDim?: number;
}

/** A named variant of {@link tinyGlmVariants}. */
export interface TinyGlmVariant extends TinyGlmOptions {
  /** Short unique name. */
  name: string;
}

/**
 * The variants the issue asks for: glm; glm4 with and without bias; chatglm
 * as ChatGLM2 (no rope_ratio), ChatGLM3-32k (rope_ratio 50) and GLM-4-9B-chat
 * (rope_ratio 500, eps 1.5625e-7, sharded BF16).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tinyGlmVariants } from "./tiny_glm.ts";
 * assert.equal(tinyGlmVariants().length, 6);
 * ```
 */
export function tinyGlmVariants(): TinyGlmVariant[] {
  const v: [TinyGlmLayout, TinyDtype, boolean, boolean][] = [
    ["glm", "F16", false, true],
    ["glm4", "BF16", true, true],
    ["glm4", "F32", false, false],
    ["chatglm2", "F16", false, true],
    ["chatglm3", "F32", true, true],
    ["glm4-chat", "BF16", true, true],
  ];
  return v.map(([layout, dtype, sharded, bias]) => ({
    name: `${layout}-${dtype.toLowerCase()}-${sharded ? "sharded" : "single"}${
      bias ? "" : "-nobias"
    }`,
    layout,
    dtype,
    sharded,
    bias,
  }));
}

const D = 64, H = 4, KV = 2, F = 128, V = 300;

function config(o: TinyGlmOptions, layers: number): Record<string, unknown> {
  const bias = o.bias ?? true;
  const HD = o.headDim ?? 32;
  if (o.layout === "glm" || o.layout === "glm4") {
    const c: Record<string, unknown> = {
      architectures: [
        o.layout === "glm" ? "GlmForCausalLM" : "Glm4ForCausalLM",
      ],
      model_type: o.layout,
      attention_bias: bias,
      attention_dropout: 0.0,
      head_dim: HD,
      hidden_act: "silu",
      hidden_size: D,
      intermediate_size: F,
      max_position_embeddings: 512,
      num_attention_heads: H,
      num_hidden_layers: layers,
      num_key_value_heads: KV,
      rms_norm_eps: o.layout === "glm" ? 1.5625e-7 : 1e-5,
      rope_theta: 10000.0,
      tie_word_embeddings: false,
      torch_dtype: TORCH_DTYPE[o.dtype],
      vocab_size: V,
      eos_token_id: [2, 5],
      pad_token_id: 0,
    };
    // glm relies on GlmConfig's default partial_rotary_factor (0.5)
    if (o.layout === "glm4") c.partial_rotary_factor = 0.5;
    return c;
  }
  // THUDM configuration_chatglm.py keys
  const c: Record<string, unknown> = {
    architectures: ["ChatGLMModel"],
    model_type: "chatglm",
    add_bias_linear: false,
    add_qkv_bias: bias,
    apply_query_key_layer_scaling: true,
    apply_residual_connection_post_layernorm: false,
    attention_dropout: 0.0,
    attention_softmax_in_fp32: true,
    bias_dropout_fusion: true,
    ffn_hidden_size: F,
    fp32_residual_connection: false,
    hidden_dropout: 0.0,
    hidden_size: D,
    kv_channels: HD,
    layernorm_epsilon: o.layout === "glm4-chat" ? 1.5625e-7 : 1e-5,
    multi_query_attention: true,
    multi_query_group_num: KV,
    num_attention_heads: H,
    num_layers: layers,
    original_rope: true,
    padded_vocab_size: 320, // rows past the tokenizer's, as real checkpoints pad
    post_layer_norm: true,
    rmsnorm: true,
    seq_length: 512,
    use_cache: true,
    torch_dtype: TORCH_DTYPE[o.dtype],
    eos_token_id: o.layout === "glm4-chat" ? [2, 5, 7] : 2,
    pad_token_id: 0,
  };
  if (o.layout === "chatglm3") c.rope_ratio = 50;
  if (o.layout === "glm4-chat") c.rope_ratio = 500;
  return c;
}

function specs(o: TinyGlmOptions, layers: number): TinySpec[] {
  const bias = o.bias ?? true;
  const HD = o.headDim ?? 32;
  const q = H * HD, kv = KV * HD;
  const s: TinySpec[] = [];
  const add = (name: string, shape: number[], kind: TinySpec["kind"]) =>
    s.push({ name, shape, kind });
  if (o.layout === "glm" || o.layout === "glm4") {
    add("model.embed_tokens.weight", [V, D], "embed");
    for (let i = 0; i < layers; i++) {
      const p = `model.layers.${i}.`;
      add(p + "input_layernorm.weight", [D], "norm");
      for (const [x, n] of [["q", q], ["k", kv], ["v", kv]] as const) {
        add(`${p}self_attn.${x}_proj.weight`, [n, D], "proj");
        if (bias) add(`${p}self_attn.${x}_proj.bias`, [n], "bias");
      }
      add(p + "self_attn.o_proj.weight", [D, q], "proj");
      if (o.layout === "glm4") {
        add(p + "post_self_attn_layernorm.weight", [D], "norm");
      }
      add(p + "post_attention_layernorm.weight", [D], "norm");
      add(p + "mlp.gate_up_proj.weight", [2 * F, D], "proj");
      add(p + "mlp.down_proj.weight", [D, F], "proj");
      if (o.layout === "glm4") {
        add(p + "post_mlp_layernorm.weight", [D], "norm");
      }
    }
    add("model.norm.weight", [D], "norm");
    add("lm_head.weight", [V, D], "proj");
    return s;
  }
  const Vp = 320;
  add("transformer.embedding.word_embeddings.weight", [Vp, D], "embed");
  // real checkpoints carry it (base 10000, ignoring rope_ratio): unused
  add("transformer.rotary_pos_emb.inv_freq", [HD / 4], "norm");
  for (let i = 0; i < layers; i++) {
    const p = `transformer.encoder.layers.${i}.`;
    add(p + "input_layernorm.weight", [D], "norm");
    add(p + "self_attention.query_key_value.weight", [q + 2 * kv, D], "proj");
    if (bias) {
      add(p + "self_attention.query_key_value.bias", [q + 2 * kv], "bias");
    }
    add(p + "self_attention.dense.weight", [D, q], "proj");
    add(p + "post_attention_layernorm.weight", [D], "norm");
    add(p + "mlp.dense_h_to_4h.weight", [2 * F, D], "proj");
    add(p + "mlp.dense_4h_to_h.weight", [D, F], "proj");
  }
  add("transformer.encoder.final_layernorm.weight", [D], "norm");
  add("transformer.output_layer.weight", [Vp, D], "proj");
  return s;
}

/**
 * Writes a tiny GLM-family checkpoint into `dir`: config.json in the
 * family's own keys, seeded safetensors and, for glm/glm4 (whose hub repos
 * ship one), a tokenizer.json.
 *
 * @example
 * ```ts ignore
 * import { makeTinyGlm } from "./tiny_glm.ts";
 * await makeTinyGlm("/tmp/glm4", { layout: "glm4", dtype: "BF16", sharded: true });
 * ```
 */
export async function makeTinyGlm(
  dir: string,
  o: TinyGlmOptions,
): Promise<TinyModel> {
  const layers = o.layers ?? 2;
  const cfg = config(o, layers);
  await Deno.mkdir(dir, { recursive: true });
  const writeJson = (name: string, v: unknown) =>
    Deno.writeTextFile(join(dir, name), JSON.stringify(v, null, 2) + "\n");
  await writeJson("config.json", cfg);
  if (o.layout === "glm" || o.layout === "glm4") {
    const tok = makeTinyTokenizer(V);
    await writeJson("tokenizer.json", tok.tokenizerJson);
    await writeJson("tokenizer_config.json", tok.tokenizerConfig);
  }
  const w = await writeTinyWeights(dir, specs(o, layers), {
    dtype: o.dtype,
    seed: o.seed ?? 4321,
    sharded: o.sharded,
    shards: 3,
  });
  return { dir, config: cfg, dtype: o.dtype, ...w };
}
