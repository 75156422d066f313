/**
 * The tensors a model must have, from its config and its architecture row:
 * per decoder layer (role, Hugging Face name, shape; one per expert for
 * routed experts, slices of fused biases) and outside the layers (embedding,
 * final norm, lm_head). Split checks a checkpoint against these lists and the
 * engine finds its weights by them.
 *
 * @module
 */
import { StrataError } from "../errors.ts";
import {
  architectureOf,
  type ArchitectureRow,
  biasPresent,
  type LayerNames,
  type LayerRole,
  type LayerStep,
  layerSteps,
  type MatrixRole,
  type VectorRole,
} from "./architectures.ts";
import type { ModelConfig } from "./model_config.ts";

/** One tensor a decoder layer must have: its role, HF name and shape (nn.Linear layout [out, in]). */
export interface LayerTensor {
  /** What the tensor is for. */
  role: LayerRole;
  /** Hugging Face tensor name, with the layer index filled in. */
  name: string;
  /** Expected shape. */
  shape: number[];
  /** The expert it belongs to (expert roles only). */
  expert?: number;
  /**
   * Set when the tensor is a slice of a source tensor rather than one of its
   * own: elements [start, start + shape[0]) of the 1-D source tensor `of`
   * (whose length is `total`). The split writes the slice under `name`.
   */
  slice?: { of: string; start: number; total: number };
}

/**
 * The tensors one step of decoder layer `i` reads, in a fixed order.
 *
 * A fused `[q; k; v]` bias is read as three slices (roles qBias, kBias,
 * vBias, named `<qkv bias>.q`, `.k`, `.v`): the split writes them apart, so
 * that each starts at a storage-binding-aligned offset whatever the head
 * sizes (a fused matrix splits on row boundaries, which real sizes align).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ARCHITECTURES } from "./architectures.ts";
 * import { stepTensors } from "./tensors.ts";
 * import { normalizeConfig } from "./config.ts";
 * const cfg = normalizeConfig({ model_type: "llama", hidden_size: 64, intermediate_size: 128,
 *   num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100 }, "config.json");
 * // a family with one fused [gate; up] matrix names it in its row
 * const row = { ...ARCHITECTURES.llama, names: { ...ARCHITECTURES.llama.names,
 *   gateUpProj: "model.layers.{i}.mlp.gate_up_proj.weight" } };
 * const mlp = stepTensors(cfg, row, { step: "mlp", gateUp: "fused", postNorm: false }, 0);
 * assert.deepEqual(mlp.map((t) => [t.role, t.shape]), [
 *   ["mlpNorm", [64]], ["gateUpProj", [256, 64]], ["downProj", [64, 128]],
 * ]);
 * ```
 */
export function stepTensors(
  cfg: ModelConfig,
  row: ArchitectureRow,
  s: LayerStep,
  i: number,
): LayerTensor[] {
  const name = (role: keyof LayerNames) => {
    const t = row.names[role];
    if (t === undefined) {
      throw new StrataError(
        `architecture table: ${row.architecture} has a ${s.step} step that reads ${role} but no name for it`,
      );
    }
    return t.replace("{i}", String(i));
  };
  const at = (role: keyof LayerNames, shape: number[]): LayerTensor => ({
    role,
    name: name(role),
    shape,
  });
  // a bias is named after its matrix: .weight → .bias
  const bias = (
    role: VectorRole,
    of: MatrixRole,
    shape: number[],
  ): LayerTensor => ({
    role,
    name: name(of).replace(/\.weight$/, ".bias"),
    shape,
  });
  const d = cfg.hiddenSize, hd = cfg.headDim, f = cfg.intermediateSize;
  const expert = (
    role: "expertGate" | "expertUp" | "expertDown",
    e: number,
    shape: number[],
  ): LayerTensor => ({
    role,
    name: name(role).replace("{e}", String(e)),
    shape,
    expert: e,
  });
  const qDim = cfg.numHeads * hd, kvDim = cfg.numKvHeads * hd;
  const out: LayerTensor[] = [];
  switch (s.step) {
    case "attention": {
      out.push(at("attnNorm", [d]));
      if (s.qkv === "fused") out.push(at("qkvProj", [qDim + 2 * kvDim, d]));
      else {
        out.push(
          at("qProj", [qDim, d]),
          at("kProj", [kvDim, d]),
          at("vProj", [kvDim, d]),
        );
      }
      out.push(at("oProj", [d, qDim]));
      if (biasPresent(s.qkvBias, cfg)) {
        if (s.qkv === "fused") {
          const of = bias("qkvBias", "qkvProj", []).name;
          const total = qDim + 2 * kvDim;
          const part = (r: VectorRole, x: string, start: number, n: number) =>
            ({
              role: r,
              name: `${of}.${x}`,
              shape: [n],
              slice: { of, start, total },
            }) satisfies LayerTensor;
          out.push(
            part("qBias", "q", 0, qDim),
            part("kBias", "k", qDim, kvDim),
            part("vBias", "v", qDim + kvDim, kvDim),
          );
        } else {
          out.push(
            bias("qBias", "qProj", [qDim]),
            bias("kBias", "kProj", [kvDim]),
            bias("vBias", "vProj", [kvDim]),
          );
        }
      }
      if (biasPresent(s.oBias, cfg)) {
        out.push(bias("oBias", "oProj", [d]));
      }
      if (s.qkNorm) out.push(at("qNorm", [hd]), at("kNorm", [hd]));
      if (s.postNorm) out.push(at("attnPostNorm", [d]));
      return out;
    }
    case "mlp": {
      out.push(at("mlpNorm", [d]));
      if (s.gateUp === "fused") out.push(at("gateUpProj", [2 * f, d]));
      else out.push(at("gateProj", [f, d]), at("upProj", [f, d]));
      out.push(at("downProj", [d, f]));
      if (s.postNorm) out.push(at("mlpPostNorm", [d]));
      return out;
    }
    case "moe": {
      const m = cfg.moe;
      if (!m) {
        throw new StrataError(
          `architecture table: ${row.architecture} has a moe step but the config has no experts`,
        );
      }
      const fe = m.expertSize, fs = m.sharedExpertSize;
      out.push(at("mlpNorm", [d]), at("router", [m.numExperts, d]));
      if (s.sharedExpert) {
        out.push(
          at("sharedGate", [fs, d]),
          at("sharedUp", [fs, d]),
          at("sharedDown", [d, fs]),
          at("sharedExpertGate", [1, d]),
        );
      }
      // each expert's three matrices together, so one expert is one byte range
      for (let e = 0; e < m.numExperts; e++) {
        out.push(
          expert("expertGate", e, [fe, d]),
          expert("expertUp", e, [fe, d]),
          expert("expertDown", e, [d, fe]),
        );
      }
      return out;
    }
  }
}

/**
 * Every tensor decoder layer `i` has, step by step in a fixed order, with
 * names and shapes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layerTensors } from "./tensors.ts";
 * import { normalizeConfig } from "./config.ts";
 * const cfg = normalizeConfig({ model_type: "qwen2", hidden_size: 64, intermediate_size: 128,
 *   num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 100 }, "config.json");
 * const t = layerTensors(cfg, 1).find((t) => t.role === "kBias");
 * assert.equal(t?.name, "model.layers.1.self_attn.k_proj.bias");
 * assert.deepEqual(t?.shape, [32]);
 * ```
 */
export function layerTensors(cfg: ModelConfig, i: number): LayerTensor[] {
  const row = architectureOf(cfg);
  return layerSteps(cfg, i).flatMap((s) => stepTensors(cfg, row, s, i));
}

/**
 * Layer `i`'s tensor names by role; roles the architecture lacks are absent,
 * and so are the per-expert roles (one name per expert: see
 * {@link LayerTensor.expert}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layerTensorNames } from "./tensors.ts";
 * import { normalizeConfig } from "./config.ts";
 * const cfg = normalizeConfig({ model_type: "llama", hidden_size: 64, intermediate_size: 128,
 *   num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100 }, "config.json");
 * assert.equal(layerTensorNames(cfg, 0).qProj, "model.layers.0.self_attn.q_proj.weight");
 * ```
 */
export function layerTensorNames(
  cfg: ModelConfig,
  i: number,
): Partial<Record<LayerRole, string>> {
  const out: Partial<Record<LayerRole, string>> = {};
  for (const t of layerTensors(cfg, i)) {
    if (t.expert === undefined) out[t.role] = t.name;
  }
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
 * import assert from "node:assert/strict";
 * import { globalTensors } from "./tensors.ts";
 * import { normalizeConfig } from "./config.ts";
 * const cfg = normalizeConfig({ model_type: "llama", hidden_size: 64, intermediate_size: 128,
 *   num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100, tie_word_embeddings: true }, "config.json");
 * assert.deepEqual(globalTensors(cfg).map((t) => t.role), ["embed", "finalNorm"]);
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
 * import assert from "node:assert/strict";
 * import { layerIndexOf } from "./tensors.ts";
 * assert.equal(layerIndexOf("model.layers.12.mlp.up_proj.weight"), 12);
 * assert.equal(layerIndexOf("model.norm.weight"), null);
 * assert.equal(layerIndexOf("transformer.encoder.layers.3.mlp.dense_4h_to_h.weight"), 3);
 * ```
 */
export function layerIndexOf(name: string): number | null {
  const m = /^(?:model|transformer\.encoder)\.layers\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
}
