/**
 * The normalized model configuration, read from a Hugging Face `config.json`
 * and checked before anything is allocated from it.
 *
 * @module
 */

import { FormatError, UnsupportedError } from "../errors.ts";
import { ARCHITECTURES, isArchitecture } from "./architectures.ts";
import { chatglmConfig } from "./_config_chatglm.ts";

export type { Architecture, ModelConfig, RopeScaling } from "./model_config.ts";
import type { ModelConfig, RopeScaling } from "./model_config.ts";
import { moeConfigJson, readMoeConfig } from "./moe_config.ts";

type Json = Record<string, unknown>;

/** Upper bound on any size field, so nothing is allocated from an absurd config. */
const MAX_DIM = 2 ** 24;

class Reader {
  constructor(readonly hf: Json, readonly file: string) {}

  fail(problem: string): never {
    throw new FormatError(this.file, problem);
  }

  posInt(key: string, fallback?: number): number {
    const v = this.hf[key] ?? fallback;
    if (v === undefined) this.fail(`missing ${key}`);
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      this.fail(`${key} must be a positive integer, got ${JSON.stringify(v)}`);
    }
    if (v > MAX_DIM) {
      this.fail(`${key} ${v} is implausibly large (limit ${MAX_DIM})`);
    }
    return v;
  }

  posNum(
    key: string,
    fallback: number,
    obj: Json = this.hf,
    prefix = "",
  ): number {
    const v = obj[key] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      this.fail(
        `${prefix}${key} must be a positive number, got ${JSON.stringify(v)}`,
      );
    }
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.hf[key] ?? fallback;
    if (typeof v !== "boolean") {
      this.fail(`${key} must be a boolean, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  tokenId(v: unknown, key: string, vocabSize: number): number {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
      this.fail(
        `${key} must be a non-negative integer, got ${JSON.stringify(v)}`,
      );
    }
    if (v >= vocabSize) {
      this.fail(
        `${key} ${v} is outside the vocabulary (vocab_size ${vocabSize})`,
      );
    }
    return v;
  }
}

function readRopeScaling(r: Reader, raw: unknown): RopeScaling | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== "object" || Array.isArray(raw)) {
    r.fail("rope_scaling must be an object");
  }
  const rs = raw as Json;
  const type = rs.rope_type ?? rs.type;
  if (type === "default" || type === undefined) return null;
  if (type !== "llama3" && type !== "linear" && type !== "dynamic") {
    throw new UnsupportedError(
      r.file,
      `unsupported rope_scaling type ${JSON.stringify(type)}`,
    );
  }
  const factor = r.posNum("factor", NaN, rs, "rope_scaling.");
  if (type !== "llama3") return { type, factor };
  const lowFreqFactor = r.posNum("low_freq_factor", NaN, rs, "rope_scaling.");
  const highFreqFactor = r.posNum("high_freq_factor", NaN, rs, "rope_scaling.");
  const originalMaxPositionEmbeddings = r.posNum(
    "original_max_position_embeddings",
    NaN,
    rs,
    "rope_scaling.",
  );
  if (!(highFreqFactor > lowFreqFactor)) {
    r.fail("rope_scaling.high_freq_factor must exceed low_freq_factor");
  }
  return {
    type,
    factor,
    lowFreqFactor,
    highFreqFactor,
    originalMaxPositionEmbeddings,
  };
}

/**
 * Normalizes a parsed Hugging Face `config.json` (llama, mistral, qwen2,
 * qwen3, glm, glm4; chatglm's own keys are mapped first, see
 * lib/model/_config_chatglm.ts). Missing optional fields take the Hugging Face config class
 * defaults; sizes are checked (positive integers, heads dividing the hidden
 * size when head_dim is absent, kv heads dividing heads).
 *
 * @param hf the parsed JSON
 * @param file the file name used in error messages
 * @throws {FormatError} when a field is missing, mistyped or inconsistent
 * @throws {UnsupportedError} for other architectures or features
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalizeConfig } from "./config.ts";
 * const cfg = normalizeConfig({
 *   model_type: "llama", hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5,
 *   num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512, rms_norm_eps: 1e-5,
 * }, "config.json");
 * assert.equal(cfg.headDim, 8);
 * assert.equal(cfg.ropeTheta, 10000);
 * ```
 */
export function normalizeConfig(hf: unknown, file: string): ModelConfig {
  if (typeof hf !== "object" || hf === null || Array.isArray(hf)) {
    throw new FormatError(file, "config must be a JSON object");
  }
  const h = (hf as Json).model_type === "chatglm"
    ? chatglmConfig(hf as Json, file)
    : hf as Json;
  const r = new Reader(h, file);
  const modelType = h.model_type;
  if (modelType === undefined) r.fail("missing model_type");
  if (!isArchitecture(modelType)) {
    throw new UnsupportedError(
      file,
      `unsupported architecture ${String(modelType)}`,
    );
  }
  const row = ARCHITECTURES[modelType];

  const act = h.hidden_act ?? "silu";
  if (act !== "silu") {
    throw new UnsupportedError(file, `unsupported hidden_act ${String(act)}`);
  }
  if (h.mlp_bias === true) {
    throw new UnsupportedError(file, "unsupported mlp_bias true");
  }

  const hiddenSize = r.posInt("hidden_size");
  const intermediateSize = r.posInt("intermediate_size");
  const numLayers = r.posInt("num_hidden_layers");
  const numHeads = r.posInt("num_attention_heads");
  const numKvHeads = r.posInt("num_key_value_heads", numHeads);
  if (numHeads % numKvHeads !== 0) {
    r.fail(
      `num_key_value_heads ${numKvHeads} does not divide num_attention_heads ${numHeads}`,
    );
  }
  let headDim: number;
  if (h.head_dim !== undefined && h.head_dim !== null) {
    headDim = r.posInt("head_dim");
  } else if (row.defaults.headDim !== null) {
    headDim = row.defaults.headDim;
  } else {
    if (hiddenSize % numHeads !== 0) {
      r.fail(
        `num_attention_heads ${numHeads} does not divide hidden_size ${hiddenSize}`,
      );
    }
    headDim = hiddenSize / numHeads;
  }
  if (numHeads * headDim > MAX_DIM) {
    r.fail(
      `num_attention_heads ${numHeads} × head_dim ${headDim} is implausibly large (limit ${MAX_DIM})`,
    );
  }
  const vocabSize = r.posInt("vocab_size");
  const maxPositionEmbeddings = r.posInt(
    "max_position_embeddings",
    row.defaults.maxPositionEmbeddings,
  );
  const rmsNormEps = r.posNum("rms_norm_eps", row.defaults.rmsNormEps);

  // Newer transformers versions move rope_theta/rope_type into rope_parameters.
  const rp = h.rope_parameters;
  const rpObj = typeof rp === "object" && rp !== null && !Array.isArray(rp)
    ? rp as Json
    : null;
  const ropeTheta =
    h.rope_theta !== undefined || rpObj?.rope_theta === undefined
      ? r.posNum("rope_theta", row.defaults.ropeTheta)
      : r.posNum("rope_theta", NaN, rpObj, "rope_parameters.");
  const ropeScaling = readRopeScaling(r, h.rope_scaling ?? rpObj ?? undefined);

  const partialRotaryFactor = r.posNum(
    "partial_rotary_factor",
    row.defaults.partialRotaryFactor ?? 1,
  );
  if (partialRotaryFactor > 1) {
    r.fail("partial_rotary_factor must be at most 1");
  }
  const rotaryDim = Math.floor(headDim * partialRotaryFactor);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0) {
    r.fail(
      `rotary dimension ${rotaryDim} (head_dim * partial_rotary_factor) must be even and >= 2`,
    );
  }

  const tieWordEmbeddings = r.bool(
    "tie_word_embeddings",
    row.defaults.tieWordEmbeddings,
  );
  const attentionBias = r.bool(
    "attention_bias",
    row.defaults.attentionBias ?? false,
  );

  // Token ids must name a row of the embedding: an id outside the
  // vocabulary would read past it.
  const bos = h.bos_token_id;
  const bosTokenId = bos === undefined || bos === null
    ? null
    : r.tokenId(bos, "bos_token_id", vocabSize);
  const eos = h.eos_token_id;
  let eosTokenIds: number[];
  if (eos === undefined || eos === null) eosTokenIds = [];
  else if (Array.isArray(eos)) {
    if (eos.length > 64) r.fail("eos_token_id lists more than 64 ids");
    eosTokenIds = eos.map((v) => r.tokenId(v, "eos_token_id", vocabSize));
  } else eosTokenIds = [r.tokenId(eos, "eos_token_id", vocabSize)];
  const pad = h.pad_token_id;
  if (pad !== undefined && pad !== null) {
    r.tokenId(pad, "pad_token_id", vocabSize);
  }

  const moe = readMoeConfig(h, modelType, file);

  return {
    architecture: modelType,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    maxPositionEmbeddings,
    rmsNormEps,
    ropeTheta,
    ropeScaling,
    partialRotaryFactor,
    tieWordEmbeddings,
    bosTokenId,
    eosTokenIds,
    attentionBias,
    ...(moe ? { moe } : {}),
  };
}

/**
 * The number of head dimensions RoPE rotates: headDim * partialRotaryFactor.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalizeConfig, rotaryDim } from "./config.ts";
 * const cfg = normalizeConfig({ model_type: "llama", hidden_size: 64, intermediate_size: 128,
 *   num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 10, partial_rotary_factor: 0.5 }, "c.json");
 * assert.equal(rotaryDim(cfg), 8);
 * ```
 */
export function rotaryDim(
  cfg: Pick<ModelConfig, "headDim" | "partialRotaryFactor">,
): number {
  return Math.floor(cfg.headDim * cfg.partialRotaryFactor);
}

/** The `config.json` key of each {@linkcode ModelConfig} field. */
const HF_KEYS: Record<keyof ModelConfig, string> = {
  architecture: "model_type",
  hiddenSize: "hidden_size",
  intermediateSize: "intermediate_size",
  numLayers: "num_hidden_layers",
  numHeads: "num_attention_heads",
  numKvHeads: "num_key_value_heads",
  headDim: "head_dim",
  vocabSize: "vocab_size",
  maxPositionEmbeddings: "max_position_embeddings",
  rmsNormEps: "rms_norm_eps",
  ropeTheta: "rope_theta",
  ropeScaling: "rope_scaling",
  partialRotaryFactor: "partial_rotary_factor",
  tieWordEmbeddings: "tie_word_embeddings",
  bosTokenId: "bos_token_id",
  eosTokenIds: "eos_token_id",
  attentionBias: "attention_bias",
  moe: "moe", // several keys: see moeConfigJson
};

const ROPE_KEYS: Record<string, string> = {
  type: "rope_type",
  factor: "factor",
  lowFreqFactor: "low_freq_factor",
  highFreqFactor: "high_freq_factor",
  originalMaxPositionEmbeddings: "original_max_position_embeddings",
};

/**
 * Checks an already normalized config (the `config` block of a shard
 * manifest) with the same rules as {@linkcode normalizeConfig} applies to
 * `config.json`: it is mapped back to `config.json` keys, normalized again
 * and must come out unchanged. Problems name the fields as the manifest
 * spells them (`config.hiddenSize`).
 *
 * @throws {FormatError} naming `file` when a field is missing, out of range
 * or inconsistent with the others.
 * @throws {UnsupportedError} for an architecture or feature Strata lacks.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalizeConfig, validateModelConfig } from "./config.ts";
 * const cfg = normalizeConfig({
 *   model_type: "llama", hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5,
 *   num_attention_heads: 8, vocab_size: 512, bos_token_id: 1,
 * }, "config.json");
 * assert.deepEqual(validateModelConfig(cfg, "manifest.json"), cfg);
 * assert.throws(
 *   () => validateModelConfig({ ...cfg, vocabSize: -5 }, "manifest.json"),
 *   /manifest.json: config.vocabSize must be a positive integer, got -5/,
 * );
 * ```
 */
export function validateModelConfig(c: unknown, file: string): ModelConfig {
  if (typeof c !== "object" || c === null || Array.isArray(c)) {
    throw new FormatError(file, "config must be an object");
  }
  const cfg = c as Json;
  const hf: Json = {};
  for (const [key, hfKey] of Object.entries(HF_KEYS)) {
    const v = cfg[key];
    if (key === "moe") {
      if (v !== undefined) {
        if (typeof v !== "object" || v === null || Array.isArray(v)) {
          throw new FormatError(file, "config.moe must be an object");
        }
        Object.assign(
          hf,
          moeConfigJson(v as never, cfg.architecture as never),
        );
      }
      continue;
    }
    if (v === undefined) {
      if (key === "attentionBias") continue; // optional in older manifests
      throw new FormatError(file, `config.${key} is missing`);
    }
    if (key === "ropeScaling" && v !== null) {
      if (typeof v !== "object" || Array.isArray(v)) {
        throw new FormatError(file, "config.ropeScaling must be an object");
      }
      const rs: Json = {};
      for (const [k, x] of Object.entries(v as Json)) {
        if (!(k in ROPE_KEYS)) {
          throw new FormatError(file, `config.ropeScaling.${k} is unknown`);
        }
        rs[ROPE_KEYS[k]] = x;
      }
      hf[hfKey] = rs;
    } else hf[hfKey] = v;
  }
  for (const key of Object.keys(cfg)) {
    if (!(key in HF_KEYS)) {
      throw new FormatError(file, `config.${key} is not a config field`);
    }
  }
  let n: ModelConfig;
  try {
    n = normalizeConfig(hf, file);
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
    let problem = e.problem;
    for (const [key, hfKey] of Object.entries(HF_KEYS)) {
      problem = problem.replaceAll(
        new RegExp(`\\b${hfKey}\\b`, "g"),
        `config.${key}`,
      );
    }
    throw new FormatError(file, problem, { cause: e });
  }
  for (const key of Object.keys(HF_KEYS) as (keyof ModelConfig)[]) {
    if (cfg[key] === undefined) continue;
    if (JSON.stringify(n[key]) !== JSON.stringify(cfg[key])) {
      throw new FormatError(
        file,
        `config.${key} ${JSON.stringify(cfg[key])} is inconsistent (expected ${
          JSON.stringify(n[key])
        })`,
      );
    }
  }
  return n;
}
