/**
 * The mixture-of-experts part of a config: read from `config.json` for the
 * families whose table row has a `moe` step (Mixtral, Qwen2-MoE, Qwen3-MoE),
 * mapped back to `config.json` keys for the manifest check, and the rule
 * that says which layers are sparse.
 *
 * @module
 */
import { FormatError, UnsupportedError } from "../errors.ts";
import type { Architecture, ModelConfig, MoeConfig } from "./model_config.ts";

type Json = Record<string, unknown>;

/** The largest expert count the router kernel supports. */
export const MAX_EXPERTS = 256;

/** Which `config.json` keys and defaults a family uses (its config class). */
interface MoeKeys {
  numExperts: [string, number];
  expertSize: [string, number];
  topKDefault: number;
  /** null: always renormalized (Mixtral). */
  normTopKDefault: boolean | null;
  /** null: no shared expert. */
  sharedDefault: number | null;
}

const KEYS: Partial<Record<Architecture, MoeKeys>> = {
  mixtral: {
    numExperts: ["num_local_experts", 8],
    expertSize: ["intermediate_size", NaN],
    topKDefault: 2,
    normTopKDefault: null,
    sharedDefault: null,
  },
  qwen2_moe: {
    numExperts: ["num_experts", 60],
    expertSize: ["moe_intermediate_size", 1408],
    topKDefault: 4,
    normTopKDefault: false,
    sharedDefault: 5632,
  },
  qwen3_moe: {
    numExperts: ["num_experts", 128],
    expertSize: ["moe_intermediate_size", 768],
    topKDefault: 8,
    normTopKDefault: false,
    sharedDefault: null,
  },
};

function posInt(h: Json, key: string, fallback: number, file: string): number {
  const v = h[key] ?? fallback;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
    throw new FormatError(
      file,
      `${key} must be a positive integer, got ${JSON.stringify(v)}`,
    );
  }
  if (v > 2 ** 24) {
    throw new FormatError(file, `${key} ${v} is implausibly large`);
  }
  return v;
}

/**
 * The routed experts of `arch` from `config.json` `h` (undefined for a dense
 * family), with the defaults of the family's config class.
 *
 * @throws {FormatError} naming `file` for a missing or inconsistent field.
 * @throws {UnsupportedError} for more experts than the router kernel takes.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readMoeConfig } from "./moe_config.ts";
 * const moe = readMoeConfig({ intermediate_size: 96 }, "mixtral", "config.json");
 * assert.deepEqual(moe, { numExperts: 8, topK: 2, expertSize: 96, normTopK: true,
 *   sharedExpertSize: 0, sparseStep: 1, mlpOnlyLayers: [] });
 * assert.equal(readMoeConfig({}, "llama", "config.json"), undefined);
 * ```
 */
export function readMoeConfig(
  h: Json,
  arch: Architecture,
  file: string,
): MoeConfig | undefined {
  const k = KEYS[arch];
  if (!k) return undefined;
  const numExperts = posInt(h, k.numExperts[0], k.numExperts[1], file);
  if (numExperts > MAX_EXPERTS) {
    throw new UnsupportedError(
      file,
      `${
        k.numExperts[0]
      } ${numExperts} exceeds ${MAX_EXPERTS} (the router kernel's limit)`,
    );
  }
  const topK = posInt(h, "num_experts_per_tok", k.topKDefault, file);
  if (topK > numExperts) {
    throw new FormatError(
      file,
      `num_experts_per_tok ${topK} exceeds ${k.numExperts[0]} ${numExperts}`,
    );
  }
  const expertSize = posInt(h, k.expertSize[0], k.expertSize[1], file);
  let normTopK = true;
  if (k.normTopKDefault !== null) {
    const v = h.norm_topk_prob ?? k.normTopKDefault;
    if (typeof v !== "boolean") {
      throw new FormatError(
        file,
        `norm_topk_prob must be a boolean, got ${JSON.stringify(v)}`,
      );
    }
    normTopK = v;
  }
  const sharedExpertSize = k.sharedDefault === null
    ? 0
    : posInt(h, "shared_expert_intermediate_size", k.sharedDefault, file);
  let sparseStep = 1, mlpOnlyLayers: number[] = [];
  if (arch !== "mixtral") {
    sparseStep = posInt(h, "decoder_sparse_step", 1, file);
    const m = h.mlp_only_layers ?? [];
    if (
      !Array.isArray(m) || m.length > 4096 ||
      !m.every((i) => Number.isSafeInteger(i) && i >= 0)
    ) {
      throw new FormatError(
        file,
        "mlp_only_layers must be a list of layer indices",
      );
    }
    mlpOnlyLayers = [...new Set(m as number[])].sort((a, b) => a - b);
  }
  return {
    numExperts,
    topK,
    expertSize,
    normTopK,
    sharedExpertSize,
    sparseStep,
    mlpOnlyLayers,
  };
}

/**
 * `moe` back as `config.json` keys of `arch` (the inverse of
 * {@link readMoeConfig}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { moeConfigJson, readMoeConfig } from "./moe_config.ts";
 * const moe = readMoeConfig({ num_experts: 4, num_experts_per_tok: 2, moe_intermediate_size: 32,
 *   norm_topk_prob: true, mlp_only_layers: [1] }, "qwen3_moe", "config.json")!;
 * assert.deepEqual(readMoeConfig(moeConfigJson(moe, "qwen3_moe"), "qwen3_moe", "m"), moe);
 * ```
 */
export function moeConfigJson(moe: MoeConfig, arch: Architecture): Json {
  const k = KEYS[arch];
  if (!k) return {};
  const out: Json = {
    [k.numExperts[0]]: moe.numExperts,
    num_experts_per_tok: moe.topK,
    [k.expertSize[0]]: moe.expertSize,
  };
  if (k.normTopKDefault !== null) out.norm_topk_prob = moe.normTopK;
  if (k.sharedDefault !== null) {
    out.shared_expert_intermediate_size = moe.sharedExpertSize;
  }
  if (arch !== "mixtral") {
    out.decoder_sparse_step = moe.sparseStep;
    out.mlp_only_layers = moe.mlpOnlyLayers;
  }
  return out;
}

/**
 * Whether decoder layer `i` routes to experts: the family has experts, `i`
 * is not in `mlp_only_layers`, and (i + 1) % decoder_sparse_step == 0 (the
 * rule of Qwen2MoeDecoderLayer / Qwen3MoeDecoderLayer; Mixtral: every layer).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isSparseLayer } from "./moe_config.ts";
 * const moe = { numExperts: 4, topK: 2, expertSize: 8, normTopK: false,
 *   sharedExpertSize: 0, sparseStep: 2, mlpOnlyLayers: [3] };
 * assert.deepEqual([0, 1, 2, 3].map((i) => isSparseLayer({ moe }, i)), [false, true, false, false]);
 * ```
 */
export function isSparseLayer(
  cfg: Pick<ModelConfig, "moe">,
  i: number,
): boolean {
  const m = cfg.moe;
  if (!m) return false;
  return !m.mlpOnlyLayers.includes(i) && (i + 1) % m.sparseStep === 0;
}
