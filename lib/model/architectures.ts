/**
 * The architecture table: one row per model family. Everything that differs
 * between llama, mistral, qwen2 and qwen3 is data here (tensor names, which
 * biases exist, per-head q/k norm, defaults), so the forward pass is written
 * once and a new family is a new row, not a fork.
 *
 * @module
 */

import type { Architecture, ModelConfig } from "./model_config.ts";

/** Where a bias comes from: always present, never present, or `attention_bias` in config.json. */
export type BiasRule = boolean | "attention_bias";

/**
 * One row of the architecture table. Tensor names are Hugging Face names; in
 * per-layer names `{i}` stands for the layer index.
 */
export interface ArchitectureRow {
  /** The family (Hugging Face `model_type`). */
  readonly architecture: Architecture;
  /** Per-layer tensor name templates (weights). */
  readonly layer: {
    readonly inputNorm: string;
    readonly qProj: string;
    readonly kProj: string;
    readonly vProj: string;
    readonly oProj: string;
    readonly qNorm: string;
    readonly kNorm: string;
    readonly postAttentionNorm: string;
    readonly gateProj: string;
    readonly upProj: string;
    readonly downProj: string;
  };
  /** Token embedding tensor name. */
  readonly embed: string;
  /** Final RMSNorm tensor name. */
  readonly finalNorm: string;
  /** Output projection tensor name (absent when embeddings are tied). */
  readonly lmHead: string;
  /** Whether q/k/v projections carry a bias. */
  readonly qkvBias: BiasRule;
  /** Whether o_proj carries a bias. */
  readonly oBias: BiasRule;
  /** Per-head RMSNorm on q and k before RoPE (Qwen3). */
  readonly qkNorm: boolean;
  /** RoPE layout of Q/K: every Hugging Face family uses rotate-half. */
  readonly ropeStyle: "rotate-half";
  /** Hugging Face config class defaults for fields config.json may omit. */
  readonly defaults: {
    readonly ropeTheta: number;
    readonly rmsNormEps: number;
    readonly tieWordEmbeddings: boolean;
    readonly maxPositionEmbeddings: number;
    /** Default head_dim; null means hidden_size / num_attention_heads. */
    readonly headDim: number | null;
  };
}

const HF_LAYER = {
  inputNorm: "model.layers.{i}.input_layernorm.weight",
  qProj: "model.layers.{i}.self_attn.q_proj.weight",
  kProj: "model.layers.{i}.self_attn.k_proj.weight",
  vProj: "model.layers.{i}.self_attn.v_proj.weight",
  oProj: "model.layers.{i}.self_attn.o_proj.weight",
  qNorm: "model.layers.{i}.self_attn.q_norm.weight",
  kNorm: "model.layers.{i}.self_attn.k_norm.weight",
  postAttentionNorm: "model.layers.{i}.post_attention_layernorm.weight",
  gateProj: "model.layers.{i}.mlp.gate_proj.weight",
  upProj: "model.layers.{i}.mlp.up_proj.weight",
  downProj: "model.layers.{i}.mlp.down_proj.weight",
} as const;

const HF_GLOBAL = {
  embed: "model.embed_tokens.weight",
  finalNorm: "model.norm.weight",
  lmHead: "lm_head.weight",
} as const;

/**
 * The table. Defaults are those of the Hugging Face config classes
 * (LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config).
 *
 * @example
 * ```ts
 * import { ARCHITECTURES } from "./architectures.ts";
 * console.log(ARCHITECTURES.qwen2.qkvBias); // true
 * ```
 */
export const ARCHITECTURES: Readonly<Record<Architecture, ArchitectureRow>> = {
  llama: {
    architecture: "llama",
    layer: HF_LAYER,
    ...HF_GLOBAL,
    qkvBias: "attention_bias",
    oBias: "attention_bias",
    qkNorm: false,
    ropeStyle: "rotate-half",
    defaults: {
      ropeTheta: 10000,
      rmsNormEps: 1e-6,
      tieWordEmbeddings: false,
      maxPositionEmbeddings: 2048,
      headDim: null,
    },
  },
  mistral: {
    architecture: "mistral",
    layer: HF_LAYER,
    ...HF_GLOBAL,
    qkvBias: false,
    oBias: false,
    qkNorm: false,
    ropeStyle: "rotate-half",
    defaults: {
      ropeTheta: 10000,
      rmsNormEps: 1e-6,
      tieWordEmbeddings: false,
      maxPositionEmbeddings: 4096 * 32,
      headDim: null,
    },
  },
  qwen2: {
    architecture: "qwen2",
    layer: HF_LAYER,
    ...HF_GLOBAL,
    qkvBias: true,
    oBias: false,
    qkNorm: false,
    ropeStyle: "rotate-half",
    defaults: {
      ropeTheta: 10000,
      rmsNormEps: 1e-6,
      tieWordEmbeddings: false,
      maxPositionEmbeddings: 32768,
      headDim: null,
    },
  },
  qwen3: {
    architecture: "qwen3",
    layer: HF_LAYER,
    ...HF_GLOBAL,
    qkvBias: "attention_bias",
    oBias: "attention_bias",
    qkNorm: true,
    ropeStyle: "rotate-half",
    defaults: {
      ropeTheta: 10000,
      rmsNormEps: 1e-6,
      tieWordEmbeddings: false,
      maxPositionEmbeddings: 32768,
      headDim: 128,
    },
  },
};

/**
 * Whether `name` is a supported architecture (Hugging Face `model_type`).
 *
 * @example
 * ```ts
 * import { isArchitecture } from "./architectures.ts";
 * console.log(isArchitecture("qwen3"), isArchitecture("falcon")); // true false
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
 * import { architectureOf } from "./architectures.ts";
 * import { normalizeConfig } from "./config.ts";
 * const cfg = normalizeConfig({ model_type: "qwen3", hidden_size: 64, intermediate_size: 128,
 *   num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32, vocab_size: 100 }, "config.json");
 * console.log(architectureOf(cfg).qkNorm); // true
 * ```
 */
export function architectureOf(
  cfg: Pick<ModelConfig, "architecture">,
): ArchitectureRow {
  return ARCHITECTURES[cfg.architecture];
}

function biasPresent(
  rule: BiasRule,
  cfg: Pick<ModelConfig, "attentionBias">,
): boolean {
  return rule === "attention_bias" ? cfg.attentionBias === true : rule;
}

/** The role of a tensor within a decoder layer. */
export type LayerRole =
  | "inputNorm"
  | "qProj"
  | "kProj"
  | "vProj"
  | "oProj"
  | "qBias"
  | "kBias"
  | "vBias"
  | "oBias"
  | "qNorm"
  | "kNorm"
  | "postAttentionNorm"
  | "gateProj"
  | "upProj"
  | "downProj";

/** One tensor a decoder layer must have: its role, HF name and shape (nn.Linear layout [out, in]). */
export interface LayerTensor {
  /** What the tensor is for. */
  role: LayerRole;
  /** Hugging Face tensor name, with the layer index filled in. */
  name: string;
  /** Expected shape. */
  shape: number[];
}

/**
 * Every tensor decoder layer `i` has, in a fixed order, with names and shapes.
 *
 * @example
 * ```ts
 * import { layerTensors } from "./architectures.ts";
 * import { normalizeConfig } from "./config.ts";
 * const cfg = normalizeConfig({ model_type: "qwen2", hidden_size: 64, intermediate_size: 128,
 *   num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 100 }, "config.json");
 * const t = layerTensors(cfg, 1).find((t) => t.role === "kBias");
 * console.log(t?.name, t?.shape); // "model.layers.1.self_attn.k_proj.bias" [32]
 * ```
 */
export function layerTensors(cfg: ModelConfig, i: number): LayerTensor[] {
  const row = architectureOf(cfg);
  const n = (t: string) => t.replace("{i}", String(i));
  const bias = (t: string) => n(t).replace(/\.weight$/, ".bias");
  const d = cfg.hiddenSize, hd = cfg.headDim;
  const qDim = cfg.numHeads * hd,
    kvDim = cfg.numKvHeads * hd,
    f = cfg.intermediateSize;
  const L = row.layer;
  const out: LayerTensor[] = [
    { role: "inputNorm", name: n(L.inputNorm), shape: [d] },
    { role: "qProj", name: n(L.qProj), shape: [qDim, d] },
    { role: "kProj", name: n(L.kProj), shape: [kvDim, d] },
    { role: "vProj", name: n(L.vProj), shape: [kvDim, d] },
    { role: "oProj", name: n(L.oProj), shape: [d, qDim] },
  ];
  if (biasPresent(row.qkvBias, cfg)) {
    out.push(
      { role: "qBias", name: bias(L.qProj), shape: [qDim] },
      { role: "kBias", name: bias(L.kProj), shape: [kvDim] },
      { role: "vBias", name: bias(L.vProj), shape: [kvDim] },
    );
  }
  if (biasPresent(row.oBias, cfg)) {
    out.push({ role: "oBias", name: bias(L.oProj), shape: [d] });
  }
  if (row.qkNorm) {
    out.push(
      { role: "qNorm", name: n(L.qNorm), shape: [hd] },
      { role: "kNorm", name: n(L.kNorm), shape: [hd] },
    );
  }
  out.push(
    { role: "postAttentionNorm", name: n(L.postAttentionNorm), shape: [d] },
    { role: "gateProj", name: n(L.gateProj), shape: [f, d] },
    { role: "upProj", name: n(L.upProj), shape: [f, d] },
    { role: "downProj", name: n(L.downProj), shape: [d, f] },
  );
  return out;
}

/**
 * Layer `i`'s tensor names by role; roles the architecture lacks are absent.
 *
 * @example
 * ```ts
 * import { layerTensorNames } from "./architectures.ts";
 * import { normalizeConfig } from "./config.ts";
 * const cfg = normalizeConfig({ model_type: "llama", hidden_size: 64, intermediate_size: 128,
 *   num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100 }, "config.json");
 * console.log(layerTensorNames(cfg, 0).qProj); // "model.layers.0.self_attn.q_proj.weight"
 * ```
 */
export function layerTensorNames(
  cfg: ModelConfig,
  i: number,
): Partial<Record<LayerRole, string>> {
  const out: Partial<Record<LayerRole, string>> = {};
  for (const t of layerTensors(cfg, i)) out[t.role] = t.name;
  return out;
}

/** A tensor outside the decoder layers. */
export interface GlobalTensor {
  /** `embed`, `finalNorm` or `lmHead`. */
  role: "embed" | "finalNorm" | "lmHead";
  /** Hugging Face tensor name. */
  name: string;
  /** Expected shape. */
  shape: number[];
}

/**
 * The embedding, final norm and (untied only) lm_head, with shapes.
 *
 * @example
 * ```ts
 * import { globalTensors } from "./architectures.ts";
 * import { normalizeConfig } from "./config.ts";
 * const cfg = normalizeConfig({ model_type: "llama", hidden_size: 64, intermediate_size: 128,
 *   num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100, tie_word_embeddings: true }, "config.json");
 * console.log(globalTensors(cfg).map((t) => t.role)); // ["embed", "finalNorm"]
 * ```
 */
export function globalTensors(cfg: ModelConfig): GlobalTensor[] {
  const row = architectureOf(cfg);
  const out: GlobalTensor[] = [
    { role: "embed", name: row.embed, shape: [cfg.vocabSize, cfg.hiddenSize] },
    { role: "finalNorm", name: row.finalNorm, shape: [cfg.hiddenSize] },
  ];
  if (!cfg.tieWordEmbeddings) {
    out.push({
      role: "lmHead",
      name: row.lmHead,
      shape: [cfg.vocabSize, cfg.hiddenSize],
    });
  }
  return out;
}

/**
 * The decoder layer a tensor name belongs to, or null for global tensors.
 *
 * @example
 * ```ts
 * import { layerIndexOf } from "./architectures.ts";
 * console.log(layerIndexOf("model.layers.12.mlp.up_proj.weight")); // 12
 * console.log(layerIndexOf("model.norm.weight")); // null
 * ```
 */
export function layerIndexOf(name: string): number | null {
  const m = /^model\.layers\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
}
