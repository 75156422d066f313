/**
 * A float64 reference of the mixture-of-experts block of Mixtral, Qwen2-MoE
 * and Qwen3-MoE, written from each family's Hugging Face modeling code
 * (MixtralSparseMoeBlock, Qwen2MoeSparseMoeBlock, Qwen3MoeSparseMoeBlock)
 * and sharing no code with the engine:
 *
 * - Mixtral: the top-k router logits, then a softmax over those k only;
 * - Qwen2-MoE / Qwen3-MoE: a softmax over all E logits, the top-k of the
 *   probabilities, divided by their sum only when `norm_topk_prob`;
 * - ties go to the lower expert index (torch.topk on distinct values does
 *   not see ties; the seeded models have none);
 * - expert e: down_e(silu(gate_e(x)) · up_e(x)); the block's output is the
 *   weighted sum over the chosen experts;
 * - Qwen2-MoE adds sigmoid(shared_expert_gate · x) · shared_expert(x).
 *
 * @module
 */
import type { ModelConfig } from "../../lib/model/config.ts";

/** A weight or vector in nn.Linear layout [out, in]. */
type RefTensor = Float32Array | Float64Array;

/** out[N] = W[N, K] · x[K]. */
function matvec(
  out: Float64Array,
  x: Float64Array,
  w: RefTensor,
  n: number,
  k: number,
): void {
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let c = 0; c < k; c++) s += w[r * k + c] * x[c];
    out[r] = s;
  }
}

/** down(silu(gate(x)) · up(x)) of one SwiGLU MLP of width F. */
function swiglu(
  x: Float64Array,
  gate: RefTensor,
  up: RefTensor,
  down: RefTensor,
  D: number,
  F: number,
): Float64Array {
  const g = new Float64Array(F), u = new Float64Array(F);
  matvec(g, x, gate, F, D);
  matvec(u, x, up, F, D);
  for (let i = 0; i < F; i++) g[i] = g[i] / (1 + Math.exp(-g[i])) * u[i];
  const y = new Float64Array(D);
  matvec(y, g, down, D, F);
  return y;
}

/** Indices of the k largest values, descending; equal values by lower index. */
function topIndices(v: Float64Array, k: number): number[] {
  const idx = Array.from(v, (_, i) => i);
  idx.sort((a, b) => v[b] - v[a] || a - b);
  return idx.slice(0, k);
}

/** The router's choice for one token: experts and their weights. */
export interface RefRoute {
  /** Chosen experts, best first. */
  experts: number[];
  /** Their weights. */
  weights: number[];
}

/**
 * The router of `cfg`'s family on router logits [E].
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { refRoute } from "./moe.ts";
 * const r = refRoute(Float64Array.from([0, 2, 1]), { architecture: "mixtral",
 *   moe: { numExperts: 3, topK: 2, normTopK: true } } as never);
 * assert.deepEqual(r.experts, [1, 2]);
 * ```
 */
export function refRoute(logits: Float64Array, cfg: ModelConfig): RefRoute {
  const m = cfg.moe!;
  const E = m.numExperts, k = m.topK;
  if (cfg.architecture === "mixtral") {
    // softmax over the top-k logits
    const experts = topIndices(logits, k);
    const mx = logits[experts[0]];
    const ex = experts.map((e) => Math.exp(logits[e] - mx));
    const sum = ex.reduce((a, b) => a + b, 0);
    return { experts, weights: ex.map((v) => v / sum) };
  }
  // softmax over all experts, then the top-k probabilities
  let mx = -Infinity;
  for (let e = 0; e < E; e++) mx = Math.max(mx, logits[e]);
  const p = new Float64Array(E);
  let sum = 0;
  for (let e = 0; e < E; e++) sum += p[e] = Math.exp(logits[e] - mx);
  for (let e = 0; e < E; e++) p[e] /= sum;
  const experts = topIndices(p, k);
  let weights = experts.map((e) => p[e]);
  if (m.normTopK) {
    const s = weights.reduce((a, b) => a + b, 0);
    weights = weights.map((w) => w / s);
  }
  return { experts, weights };
}

/** Whether layer l is sparse, from the config's fields (HF's rule, written again). */
export function refSparse(cfg: ModelConfig, l: number): boolean {
  const m = cfg.moe;
  if (!m) return false;
  if (cfg.architecture === "mixtral") return true;
  return !m.mlpOnlyLayers.includes(l) && (l + 1) % m.sparseStep === 0;
}

/**
 * The sparse block of layer l on the normed x [D]: returns its output [D]
 * (before the residual add) and the router's choice.
 */
export function refMoe(
  xb: Float64Array,
  cfg: ModelConfig,
  l: number,
  get: (name: string) => RefTensor,
): { y: Float64Array; route: RefRoute } {
  const m = cfg.moe!;
  const D = cfg.hiddenSize, E = m.numExperts, F = m.expertSize;
  const mix = cfg.architecture === "mixtral";
  const p = `model.layers.${l}.${mix ? "block_sparse_moe" : "mlp"}.`;
  const logits = new Float64Array(E);
  matvec(logits, xb, get(p + "gate.weight"), E, D);
  const route = refRoute(logits, cfg);
  const y = new Float64Array(D);
  route.experts.forEach((e, j) => {
    const x = `${p}experts.${e}.`;
    const [g, u, dn] = mix
      ? ["w1", "w3", "w2"]
      : ["gate_proj", "up_proj", "down_proj"];
    const ye = swiglu(
      xb,
      get(`${x}${g}.weight`),
      get(`${x}${u}.weight`),
      get(`${x}${dn}.weight`),
      D,
      F,
    );
    for (let i = 0; i < D; i++) y[i] += route.weights[j] * ye[i];
  });
  if (cfg.architecture === "qwen2_moe") {
    const s = `${p}shared_expert.`;
    const ys = swiglu(
      xb,
      get(s + "gate_proj.weight"),
      get(s + "up_proj.weight"),
      get(s + "down_proj.weight"),
      D,
      m.sharedExpertSize,
    );
    const g = new Float64Array(1);
    matvec(g, xb, get(p + "shared_expert_gate.weight"), 1, D);
    const sg = 1 / (1 + Math.exp(-g[0]));
    for (let i = 0; i < D; i++) y[i] += sg * ys[i];
  }
  return { y, route };
}

/**
 * The router kernel's definition on f32 logits [T, E]: route [T, E] with each
 * token's top-k softmax probabilities (equal logits by lower index), divided
 * by their sum when `norm`, 0 elsewhere.
 */
export function moeRouteRef(
  logits: Float32Array,
  T: number,
  E: number,
  k: number,
  norm: boolean,
): Float64Array {
  const out = new Float64Array(T * E);
  for (let t = 0; t < T; t++) {
    const row = Float64Array.from(logits.subarray(t * E, (t + 1) * E));
    const arch = norm ? "mixtral" : "qwen3_moe";
    const r = refRoute(row, {
      architecture: arch,
      moe: { numExperts: E, topK: k, normTopK: norm },
    } as unknown as ModelConfig);
    r.experts.forEach((e, j) => out[t * E + e] = r.weights[j]);
  }
  return out;
}

/** acc[t, i] + c(t) · y[t, i], c(t) = coef[t, col] (or its sigmoid). */
export function moeCombineRef(
  acc: Float32Array,
  y: Float32Array,
  coef: Float32Array,
  o: { T: number; D: number; stride: number; col: number; sigmoid: boolean },
): Float64Array {
  const out = new Float64Array(o.T * o.D);
  for (let t = 0; t < o.T; t++) {
    let c = coef[t * o.stride + o.col];
    if (o.sigmoid) c = 1 / (1 + Math.exp(-c));
    for (let i = 0; i < o.D; i++) {
      out[t * o.D + i] = acc[t * o.D + i] + c * y[t * o.D + i];
    }
  }
  return out;
}

/** acc[rows[j], i] + weights[j] · y[j, i] (the scatter kernel's definition). */
export function moeScatterRef(
  acc: Float32Array,
  y: Float32Array,
  rows: number[],
  weights: number[],
  D: number,
): Float64Array {
  const out = Float64Array.from(acc);
  rows.forEach((t, j) => {
    for (let i = 0; i < D; i++) out[t * D + i] += weights[j] * y[j * D + i];
  });
  return out;
}
