/**
 * The normalized model configuration types, shared by the config reader and
 * the architecture table.
 *
 * @module
 */

/** A supported model family (Hugging Face `model_type`). */
export type Architecture =
  | "llama"
  | "mistral"
  | "qwen2"
  | "qwen3"
  | "mixtral"
  | "qwen2_moe"
  | "qwen3_moe"
  | "glm"
  | "glm4"
  | "chatglm";

/**
 * The routed experts of a mixture-of-experts family (absent for dense
 * families). Router: probabilities = softmax(xb · Wrᵀ) over the experts; the
 * `topK` largest are kept (ties to the lower index) and, when `normTopK`,
 * divided by their sum. Mixtral's "softmax over the top-k logits" is the
 * same as softmax then top-k then renormalize, so it is `normTopK: true`.
 */
export interface MoeConfig {
  /** Experts per sparse layer (`num_local_experts` / `num_experts`). */
  numExperts: number;
  /** Experts each token is routed to (`num_experts_per_tok`). */
  topK: number;
  /** Width of one expert's MLP (`moe_intermediate_size`; Mixtral: `intermediate_size`). */
  expertSize: number;
  /** Renormalize the kept probabilities to sum to 1 (`norm_topk_prob`; Mixtral: always). */
  normTopK: boolean;
  /** Width of the sigmoid-gated shared expert (`shared_expert_intermediate_size`), 0 when none. */
  sharedExpertSize: number;
  /** Layer i is sparse when (i + 1) % sparseStep == 0 (`decoder_sparse_step`)... */
  sparseStep: number;
  /** ...and i is not listed here (`mlp_only_layers`): those run the dense MLP. */
  mlpOnlyLayers: number[];
}

/** RoPE frequency scaling (`rope_scaling` in config.json). */
export interface RopeScaling {
  /** `llama3` (Llama 3.1 smooth interpolation), `linear` (position interpolation) or `dynamic` (NTK). */
  type: "llama3" | "linear" | "dynamic";
  /** Scaling factor (> 0). */
  factor: number;
  /** llama3 only. */
  lowFreqFactor?: number;
  /** llama3 only. */
  highFreqFactor?: number;
  /** llama3 only: the context length the model was trained with. */
  originalMaxPositionEmbeddings?: number;
}

/** A model configuration with every default filled in and every field checked. */
export interface ModelConfig {
  /** Model family. */
  architecture: Architecture;
  /** Width of the residual stream. */
  hiddenSize: number;
  /** Width of the MLP. */
  intermediateSize: number;
  /** Number of decoder layers. */
  numLayers: number;
  /** Number of query heads. */
  numHeads: number;
  /** Number of key/value heads (GQA); divides numHeads. */
  numKvHeads: number;
  /** Size of one head. */
  headDim: number;
  /** Vocabulary size (rows of the embedding). */
  vocabSize: number;
  /** Longest context the model supports. */
  maxPositionEmbeddings: number;
  /** RMSNorm epsilon. */
  rmsNormEps: number;
  /** RoPE base. */
  ropeTheta: number;
  /** RoPE scaling, or null. */
  ropeScaling: RopeScaling | null;
  /** Fraction of headDim rotated by RoPE (1 = all). */
  partialRotaryFactor: number;
  /** Whether lm_head is the embedding matrix. */
  tieWordEmbeddings: boolean;
  /** Beginning-of-sequence id, or null. */
  bosTokenId: number | null;
  /** End-of-sequence ids (possibly empty). */
  eosTokenIds: number[];
  /**
   * `attention_bias` from config.json (llama, qwen3: q/k/v/o biases present).
   * Absent means false. Qwen2's q/k/v biases do not depend on it.
   */
  attentionBias?: boolean;
  /** The routed experts of a mixture-of-experts family; absent for dense ones. */
  moe?: MoeConfig;
}
