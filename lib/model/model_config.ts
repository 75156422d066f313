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
  | "glm"
  | "glm4"
  | "chatglm";

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
}
