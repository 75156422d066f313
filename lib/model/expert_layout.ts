/**
 * How a shard directory stores the routed experts of a mixture-of-experts
 * model, as recorded in `manifest.json` (`experts`): every expert is its own
 * three tensors (gate, up, down) in its layer's shard, named by the family's
 * templates and written next to each other, so one expert is one byte range
 * of the file that can be read without the others. See docs/format.md.
 *
 * @module
 */
import { architectureOf } from "./architectures.ts";
import { isSparseLayer } from "./moe_config.ts";
import type { ModelConfig } from "./model_config.ts";

/** The manifest's `experts` record. */
export interface ExpertLayoutRecord {
  /** Always `"tensor-per-expert"`. */
  layout: "tensor-per-expert";
  /** Experts per sparse layer. */
  experts: number;
  /** Experts chosen per token. */
  topK: number;
  /** The layers with experts (the others run a dense MLP). */
  sparseLayers: number[];
  /** Tensor name templates (`{i}` layer, `{e}` expert) of gate, up and down. */
  names: { gate: string; up: string; down: string };
}

/**
 * The `experts` record of `cfg`, or undefined for a dense model.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { expertLayout } from "./expert_layout.ts";
 * import { normalizeConfig } from "./config.ts";
 * const cfg = normalizeConfig({ model_type: "mixtral", hidden_size: 16, intermediate_size: 32,
 *   num_hidden_layers: 2, num_attention_heads: 2, vocab_size: 10 }, "c.json");
 * const r = expertLayout(cfg)!;
 * assert.deepEqual([r.experts, r.sparseLayers], [8, [0, 1]]);
 * assert.equal(r.names.up, "model.layers.{i}.block_sparse_moe.experts.{e}.w3.weight");
 * ```
 */
export function expertLayout(
  cfg: ModelConfig,
): ExpertLayoutRecord | undefined {
  const m = cfg.moe;
  if (!m) return undefined;
  const n = architectureOf(cfg).names;
  return {
    layout: "tensor-per-expert",
    experts: m.numExperts,
    topK: m.topK,
    sparseLayers: Array.from({ length: cfg.numLayers }, (_, i) => i).filter((
      i,
    ) => isSparseLayer(cfg, i)),
    names: {
      gate: n.expertGate ?? "",
      up: n.expertUp ?? "",
      down: n.expertDown ?? "",
    },
  };
}
