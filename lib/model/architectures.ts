/**
 * The architecture table: one row per model family. Everything that differs
 * between llama, mistral, qwen2 and qwen3 is data here: the steps of the
 * decoder layer (which projections are fused, which biases and norms exist,
 * the RoPE style), the tensor names and the config defaults. The engine runs
 * a row's steps in order (lib/engine/_steps.ts), so a new family is a new
 * row, not a fork.
 *
 * ## The step vocabulary
 *
 * A decoder layer is a list of residual blocks; each step is one block
 * `x += post(body(norm(x)))`:
 *
 * - {@link AttentionStep}: `norm` = the role `attnNorm`; body = q, k, v
 *   projections (`qkv: "separate"`, or `"fused"`: one `[q; k; v]` matrix
 *   split by rows), optional biases, optional per-head q/k RMSNorm, RoPE
 *   (`rope`: `"rotate-half"` pairs (j, j + R/2), `"interleaved"` pairs
 *   (2j, 2j + 1); the rotated fraction R / headDim is the config's
 *   `partialRotaryFactor`), causal GQA attention over the KV cache, o_proj
 *   (+ bias); `postNorm` = the role `attnPostNorm`.
 * - {@link MlpStep}: `norm` = `mlpNorm`; body = down(silu(gate) · up) with gate
 *   and up from two matrices (`gateUp: "separate"`) or one `[gate; up]` matrix
 *   split by rows (`"fused"`); `postNorm` = `mlpPostNorm`.
 *
 * - {@link MoeStep}: `norm` = `mlpNorm`; body = routed experts: a router
 *   picks the top-k of E experts per token (lib/model/moe_config.ts), each a
 *   SwiGLU MLP of its own (`expertGate`/`expertUp`/`expertDown`, one tensor
 *   per expert: `{e}` in the name template), mixed by the router's weights;
 *   plus an optional shared expert scaled by sigmoid(xb · `sharedExpertGate`ᵀ)
 *   (Qwen2-MoE). Its runner is lib/engine/_moe_step.ts; the loop over steps
 *   does not change. Dense layers between sparse ones
 *   (`decoder_sparse_step`, `mlp_only_layers`) run `mlp` ({@link layerSteps}).
 *
 * @module
 */

import type { Architecture, ModelConfig } from "./model_config.ts";
import { isSparseLayer } from "./moe_config.ts";

/** Where a bias comes from: always present, never present, or `attention_bias` in config.json. */
export type BiasRule = boolean | "attention_bias";

/** How RoPE pairs the rotated dimensions of a head: (j, j + R/2) or (2j, 2j + 1). */
export type RopeStyle = "rotate-half" | "interleaved";

/** Separate projections, or one matrix whose row blocks are the parts in a fixed order. */
export type Fusion = "separate" | "fused";

/**
 * The attention block: xb = rmsnorm(x) · attnNorm; q, k, v = xb · Wᵀ (+ b);
 * optional per-head rmsnorm of q and k; RoPE on q and k; att = softmax(q kᵀ /
 * √hd) v (causal, GQA); xb = att · Woᵀ (+ bo); optional xb = rmsnorm(xb) ·
 * attnPostNorm; x += xb.
 */
export interface AttentionStep {
  /** The step kind. */
  readonly step: "attention";
  /** `q_proj`/`k_proj`/`v_proj`, or one `[q; k; v]` matrix ([(H + 2·KV)·hd, D]). */
  readonly qkv: Fusion;
  /** Whether the q/k/v projections carry a bias. */
  readonly qkvBias: BiasRule;
  /** Whether the output projection carries a bias. */
  readonly oBias: BiasRule;
  /** Per-head RMSNorm of q and k (over hd) before RoPE. */
  readonly qkNorm: boolean;
  /** How RoPE pairs dimensions. */
  readonly rope: RopeStyle;
  /** RMSNorm of the block's output before the residual add. */
  readonly postNorm: boolean;
}

/**
 * The gated MLP block: xb = rmsnorm(x) · mlpNorm; hb = silu(xb · Wgᵀ) ·
 * (xb · Wuᵀ); xb = hb · Wdᵀ; optional xb = rmsnorm(xb) · mlpPostNorm; x += xb.
 */
export interface MlpStep {
  /** The step kind. */
  readonly step: "mlp";
  /** `gate_proj`/`up_proj`, or one `[gate; up]` matrix ([2F, D], gate rows first). */
  readonly gateUp: Fusion;
  /** RMSNorm of the block's output before the residual add. */
  readonly postNorm: boolean;
}

/**
 * The routed-experts block: xb = rmsnorm(x) · mlpNorm; p [T, E] = softmax(xb
 * · Wrᵀ); keep each token's top-k (renormalized when the config says so);
 * y = Σ_e p[t, e] · down_e(silu(gate_e(xb)) · up_e(xb)); with a shared
 * expert, y += sigmoid(xb · Wsgᵀ) · shared(xb); x += y.
 */
export interface MoeStep {
  /** The step kind. */
  readonly step: "moe";
  /** A sigmoid-gated shared expert beside the routed ones (Qwen2-MoE). */
  readonly sharedExpert: boolean;
}

/** One step of a decoder layer. */
export type LayerStep = AttentionStep | MlpStep | MoeStep;

/** The role of a 2-D weight (nn.Linear layout [out, in]) within a decoder layer. */
export type MatrixRole =
  | "qProj"
  | "kProj"
  | "vProj"
  | "qkvProj"
  | "oProj"
  | "gateProj"
  | "upProj"
  | "gateUpProj"
  | "downProj"
  | "router"
  | "expertGate"
  | "expertUp"
  | "expertDown"
  | "sharedGate"
  | "sharedUp"
  | "sharedDown"
  | "sharedExpertGate";

/**
 * The matrix roles `split --quantize` packs: the projections, fused or not,
 * and the routed and shared experts'; the router and the shared-expert gate
 * keep the source precision.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { QUANTIZED_ROLES } from "./architectures.ts";
 * assert.ok(QUANTIZED_ROLES.has("qkvProj") && !QUANTIZED_ROLES.has("router"));
 * ```
 */
export const QUANTIZED_ROLES: ReadonlySet<string> = new Set<MatrixRole>([
  "qProj",
  "kProj",
  "vProj",
  "qkvProj",
  "oProj",
  "gateProj",
  "upProj",
  "gateUpProj",
  "downProj",
  "expertGate",
  "expertUp",
  "expertDown",
  "sharedGate",
  "sharedUp",
  "sharedDown",
]);

/** The role of a 1-D tensor (norm weight or bias) within a decoder layer. */
export type VectorRole =
  | "attnNorm"
  | "qBias"
  | "kBias"
  | "vBias"
  | "qkvBias"
  | "oBias"
  | "qNorm"
  | "kNorm"
  | "attnPostNorm"
  | "mlpNorm"
  | "mlpPostNorm";

/** The role of a tensor within a decoder layer. */
export type LayerRole = MatrixRole | VectorRole;

/**
 * Where the weight of each matrix role and each norm comes from: Hugging Face
 * tensor name templates, `{i}` = the layer index, `{e}` = the expert index
 * (expert roles). A bias is named after its matrix (`.weight` → `.bias`).
 */
export type LayerNames = Readonly<
  Partial<
    Record<
      | MatrixRole
      | "attnNorm"
      | "qNorm"
      | "kNorm"
      | "attnPostNorm"
      | "mlpNorm"
      | "mlpPostNorm",
      string
    >
  >
>;

/** One row of the architecture table. */
export interface ArchitectureRow {
  /** The family (Hugging Face `model_type`). */
  readonly architecture: Architecture;
  /** The decoder layer, block by block. */
  readonly steps: readonly LayerStep[];
  /** Per-layer tensor name templates. */
  readonly names: LayerNames;
  /** Token embedding tensor name. */
  readonly embed: string;
  /** Final RMSNorm tensor name. */
  readonly finalNorm: string;
  /** Output projection tensor name (absent when embeddings are tied). */
  readonly lmHead: string;
  /** Hugging Face config class defaults for fields config.json may omit. */
  readonly defaults: {
    readonly ropeTheta: number;
    readonly rmsNormEps: number;
    readonly tieWordEmbeddings: boolean;
    readonly maxPositionEmbeddings: number;
    /** Default head_dim; null means hidden_size / num_attention_heads. */
    readonly headDim: number | null;
    /** Default partial_rotary_factor (1 when absent: the whole head rotates). */
    readonly partialRotaryFactor?: number;
    /** Default attention_bias (false when absent). */
    readonly attentionBias?: boolean;
  };
}

const HF_NAMES: LayerNames = {
  attnNorm: "model.layers.{i}.input_layernorm.weight",
  qProj: "model.layers.{i}.self_attn.q_proj.weight",
  kProj: "model.layers.{i}.self_attn.k_proj.weight",
  vProj: "model.layers.{i}.self_attn.v_proj.weight",
  oProj: "model.layers.{i}.self_attn.o_proj.weight",
  qNorm: "model.layers.{i}.self_attn.q_norm.weight",
  kNorm: "model.layers.{i}.self_attn.k_norm.weight",
  mlpNorm: "model.layers.{i}.post_attention_layernorm.weight",
  gateProj: "model.layers.{i}.mlp.gate_proj.weight",
  upProj: "model.layers.{i}.mlp.up_proj.weight",
  downProj: "model.layers.{i}.mlp.down_proj.weight",
};

const HF_GLOBAL = {
  embed: "model.embed_tokens.weight",
  finalNorm: "model.norm.weight",
  lmHead: "lm_head.weight",
} as const;

/** Attention as llama has it: separate q/k/v, rotate-half RoPE, no extra norms. */
const ATTENTION: AttentionStep = {
  step: "attention",
  qkv: "separate",
  qkvBias: false,
  oBias: false,
  qkNorm: false,
  rope: "rotate-half",
  postNorm: false,
};

/** The SwiGLU MLP with separate gate and up projections. */
const MLP: MlpStep = { step: "mlp", gateUp: "separate", postNorm: false };

/** Qwen2-MoE / Qwen3-MoE expert names (`mlp.gate`, `mlp.experts.{e}.*`). */
const QWEN_MOE_NAMES: LayerNames = {
  router: "model.layers.{i}.mlp.gate.weight",
  expertGate: "model.layers.{i}.mlp.experts.{e}.gate_proj.weight",
  expertUp: "model.layers.{i}.mlp.experts.{e}.up_proj.weight",
  expertDown: "model.layers.{i}.mlp.experts.{e}.down_proj.weight",
  sharedGate: "model.layers.{i}.mlp.shared_expert.gate_proj.weight",
  sharedUp: "model.layers.{i}.mlp.shared_expert.up_proj.weight",
  sharedDown: "model.layers.{i}.mlp.shared_expert.down_proj.weight",
  sharedExpertGate: "model.layers.{i}.mlp.shared_expert_gate.weight",
};

/**
 * A row of a family with the Hugging Face llama layout ({@link HF_NAMES},
 * embed, final norm, lm_head) and the config defaults its classes share
 * (rope_theta 10000, rms_norm_eps 1e-6, untied embeddings, head_dim from
 * hidden_size unless given).
 */
function hfRow(
  architecture: Architecture,
  steps: readonly LayerStep[],
  d: {
    maxPositionEmbeddings: number;
    headDim?: number;
    ropeTheta?: number;
    rmsNormEps?: number;
    names?: LayerNames;
  },
): ArchitectureRow {
  return {
    architecture,
    steps,
    names: { ...HF_NAMES, ...d.names },
    ...HF_GLOBAL,
    defaults: {
      ropeTheta: d.ropeTheta ?? 10000,
      rmsNormEps: d.rmsNormEps ?? 1e-6,
      tieWordEmbeddings: false,
      maxPositionEmbeddings: d.maxPositionEmbeddings,
      headDim: d.headDim ?? null,
    },
  };
}

/**
 * GLM attention (transformers `modeling_glm.py` / `modeling_glm4.py`, THUDM
 * `modeling_chatglm.py`): q/k/v biases per `attention_bias` (ChatGLM's
 * `add_qkv_bias`, mapped to it by config.ts), no o bias, RoPE on adjacent
 * pairs (2j, 2j + 1) of the first R = head_dim · partial_rotary_factor dims.
 */
const GLM_ATTENTION: AttentionStep = {
  ...ATTENTION,
  qkvBias: "attention_bias",
  rope: "interleaved",
};

/** GLM's MLP: one `gate_up_proj` / `dense_h_to_4h` matrix, gate rows first. */
const GLM_MLP: MlpStep = { step: "mlp", gateUp: "fused", postNorm: false };

/** GlmConfig / Glm4Config defaults (transformers). */
const GLM_DEFAULTS = {
  ropeTheta: 10000,
  rmsNormEps: 1.5625e-7,
  tieWordEmbeddings: false,
  maxPositionEmbeddings: 131072,
  headDim: 128,
  partialRotaryFactor: 0.5,
  attentionBias: true,
} as const;

const GLM_NAMES: LayerNames = {
  ...HF_NAMES,
  gateUpProj: "model.layers.{i}.mlp.gate_up_proj.weight",
};

/** ChatGLM2/3 and GLM-4-9B-chat tensor names (THUDM remote code). */
const CHATGLM_LAYER = "transformer.encoder.layers.{i}.";
const CHATGLM_NAMES: LayerNames = {
  attnNorm: CHATGLM_LAYER + "input_layernorm.weight",
  qkvProj: CHATGLM_LAYER + "self_attention.query_key_value.weight",
  oProj: CHATGLM_LAYER + "self_attention.dense.weight",
  mlpNorm: CHATGLM_LAYER + "post_attention_layernorm.weight",
  gateUpProj: CHATGLM_LAYER + "mlp.dense_h_to_4h.weight",
  downProj: CHATGLM_LAYER + "mlp.dense_4h_to_h.weight",
};

/**
 * The table. Steps follow each family's Hugging Face modeling code; defaults
 * are those of its config class (LlamaConfig, MistralConfig, Qwen2Config,
 * Qwen3Config, GlmConfig, Glm4Config, ChatGLMConfig).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ARCHITECTURES } from "./architectures.ts";
 * assert.deepEqual(ARCHITECTURES.qwen2.steps.map((s) => s.step), ["attention", "mlp"]);
 * ```
 */
export const ARCHITECTURES: Readonly<Record<Architecture, ArchitectureRow>> = {
  llama: hfRow("llama", [
    { ...ATTENTION, qkvBias: "attention_bias", oBias: "attention_bias" },
    MLP,
  ], { maxPositionEmbeddings: 2048 }),
  mistral: hfRow("mistral", [ATTENTION, MLP], {
    maxPositionEmbeddings: 4096 * 32,
  }),
  qwen2: hfRow("qwen2", [{ ...ATTENTION, qkvBias: true }, MLP], {
    maxPositionEmbeddings: 32768,
  }),
  qwen3: hfRow("qwen3", [
    {
      ...ATTENTION,
      qkvBias: "attention_bias",
      oBias: "attention_bias",
      qkNorm: true,
    },
    MLP,
  ], { maxPositionEmbeddings: 32768, headDim: 128 }),
  // MixtralSparseMoeBlock: softmax over the top-k router logits (= softmax,
  // top-k, renormalize); experts w1 = gate, w3 = up, w2 = down
  mixtral: hfRow("mixtral", [ATTENTION, { step: "moe", sharedExpert: false }], {
    maxPositionEmbeddings: 4096 * 32,
    ropeTheta: 1e6,
    rmsNormEps: 1e-5,
    names: {
      router: "model.layers.{i}.block_sparse_moe.gate.weight",
      expertGate: "model.layers.{i}.block_sparse_moe.experts.{e}.w1.weight",
      expertUp: "model.layers.{i}.block_sparse_moe.experts.{e}.w3.weight",
      expertDown: "model.layers.{i}.block_sparse_moe.experts.{e}.w2.weight",
    },
  }),
  // Qwen2MoeSparseMoeBlock: softmax, top-k (renormalized per norm_topk_prob),
  // plus sigmoid(shared_expert_gate(x)) · shared_expert(x)
  qwen2_moe: hfRow("qwen2_moe", [
    { ...ATTENTION, qkvBias: true },
    { step: "moe", sharedExpert: true },
  ], { maxPositionEmbeddings: 32768, names: QWEN_MOE_NAMES }),
  // Qwen3MoeSparseMoeBlock: softmax, top-k (renormalized per norm_topk_prob)
  qwen3_moe: hfRow("qwen3_moe", [
    {
      ...ATTENTION,
      qkvBias: "attention_bias",
      oBias: "attention_bias",
      qkNorm: true,
    },
    { step: "moe", sharedExpert: false },
  ], { maxPositionEmbeddings: 32768, names: QWEN_MOE_NAMES }),
  // GlmForCausalLM (glm-4-9b(-chat)-hf): llama names, fused gate_up_proj
  glm: {
    architecture: "glm",
    steps: [GLM_ATTENTION, GLM_MLP],
    names: GLM_NAMES,
    ...HF_GLOBAL,
    defaults: GLM_DEFAULTS,
  },
  // Glm4ForCausalLM (GLM-4-0414): glm plus a norm after each block
  // (post_self_attn_layernorm, post_mlp_layernorm) before its residual add
  glm4: {
    architecture: "glm4",
    steps: [
      { ...GLM_ATTENTION, postNorm: true },
      { ...GLM_MLP, postNorm: true },
    ],
    ...HF_GLOBAL,
    names: {
      ...GLM_NAMES,
      attnPostNorm: "model.layers.{i}.post_self_attn_layernorm.weight",
      mlpPostNorm: "model.layers.{i}.post_mlp_layernorm.weight",
    },
    defaults: GLM_DEFAULTS,
  },
  // ChatGLM2/3, GLM-4-9B-chat (remote code, model_type chatglm): fused
  // query_key_value [q; k; v] with bias, fused dense_h_to_4h [gate; up], a
  // separate output_layer; config.ts maps its config keys (num_layers,
  // kv_channels, multi_query_group_num, rope_ratio, ...) to these fields
  chatglm: {
    architecture: "chatglm",
    steps: [{ ...GLM_ATTENTION, qkv: "fused" }, GLM_MLP],
    names: CHATGLM_NAMES,
    embed: "transformer.embedding.word_embeddings.weight",
    finalNorm: "transformer.encoder.final_layernorm.weight",
    lmHead: "transformer.output_layer.weight",
    defaults: {
      ropeTheta: 10000,
      rmsNormEps: 1e-5,
      tieWordEmbeddings: false,
      maxPositionEmbeddings: 2048,
      headDim: null,
      partialRotaryFactor: 0.5,
      attentionBias: false,
    },
  },
};

/**
 * Whether `name` is a supported architecture (Hugging Face `model_type`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isArchitecture } from "./architectures.ts";
 * assert.equal(isArchitecture("qwen3"), true);
 * assert.equal(isArchitecture("falcon"), false);
 * ```
 */
export function isArchitecture(name: unknown): name is Architecture {
  return typeof name === "string" && Object.hasOwn(ARCHITECTURES, name);
}

/**
 * The table row for a normalized config.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { architectureOf } from "./architectures.ts";
 * import { normalizeConfig } from "./config.ts";
 * const cfg = normalizeConfig({ model_type: "qwen3", hidden_size: 64, intermediate_size: 128,
 *   num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32, vocab_size: 100 }, "config.json");
 * const attention = architectureOf(cfg).steps[0];
 * assert.equal(attention.step === "attention" && attention.qkNorm, true);
 * ```
 */
export function architectureOf(
  cfg: Pick<ModelConfig, "architecture">,
): ArchitectureRow {
  return ARCHITECTURES[cfg.architecture];
}

/**
 * Whether a bias that follows `rule` is present for `cfg`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { biasPresent } from "./architectures.ts";
 * assert.equal(biasPresent("attention_bias", { attentionBias: true }), true);
 * assert.equal(biasPresent("attention_bias", {}), false);
 * assert.equal(biasPresent(true, {}), true);
 * ```
 */
export function biasPresent(
  rule: BiasRule,
  cfg: Pick<ModelConfig, "attentionBias">,
): boolean {
  return rule === "attention_bias" ? cfg.attentionBias === true : rule;
}

/**
 * The steps of decoder layer `i`. Every layer of today's families runs its
 * row's steps; a family whose layers differ (mixture-of-experts models with
 * dense layers between sparse ones, per `decoder_sparse_step` or
 * `mlp_only_layers`) chooses here, from the config, and the engine and the
 * tensor list follow.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layerSteps } from "./architectures.ts";
 * import { normalizeConfig } from "./config.ts";
 * const cfg = normalizeConfig({ model_type: "mistral", hidden_size: 64, intermediate_size: 128,
 *   num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100 }, "config.json");
 * assert.deepEqual(layerSteps(cfg, 1).map((s) => s.step), ["attention", "mlp"]);
 * ```
 */
export function layerSteps(
  cfg: ModelConfig,
  i: number,
): readonly LayerStep[] {
  const steps = architectureOf(cfg).steps;
  if (!steps.some((s) => s.step === "moe") || isSparseLayer(cfg, i)) {
    return steps;
  }
  return steps.map((s) => s.step === "moe" ? MLP : s);
}
