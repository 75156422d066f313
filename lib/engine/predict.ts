/**
 * How fast will a model run under a GPU memory budget? From the config alone
 * (no weights, no GPU): the GPU bytes of every layer, the head, the KV cache
 * and the activations as the engine lays them out, the residency plan
 * ({@link planResidency}), the bytes streamed per token, and a prediction of
 * seconds per token from three floors:
 *
 * - read: the disk (or page cache) rate at which streamed layers are read;
 * - upload: the host → GPU rate (`queue.writeBuffer`);
 * - compute: the rate at which the matvec kernels consume weight bytes.
 *
 * The model: a pass reads and uploads the streamed bytes and computes over
 * every layer and the head. The streamed bytes are those of the engine's
 * plan: whole layers, or sub-layer units (q/k/v/o, gate, up, down, packed as
 * lib/engine/_units.ts packs them) when two whole layers do not fit. With
 * one ring slot these add up (read + upload + compute); with two or more,
 * prefetch overlaps them, and the pass takes the largest of the three (the
 * ideal the engine approaches), plus the share of the shorter of upload and
 * compute that does not hide behind the longer: on a GPU what the probes
 * measured (`Floors.overlap`, default none); on a CPU (software) adapter,
 * where upload and compute share the cores and the queue, all of it (read,
 * or upload + compute). Tokens per pass
 * (`batch`) share the streamed bytes; the compute of a pass is memory-bound
 * on a GPU (the same weight bytes for a small batch) but grows with the
 * batch on a CPU (software) adapter.
 *
 * A mixture-of-experts model is planned with the engine's own split of the
 * budget (lib/engine/_experts.ts `planExperts`): its expert bytes per token
 * are the expected cache misses under uniform independent routing
 * ({@link ExpertPrediction}), and their read and upload add to the pass.
 *
 * @module
 */
import {
  type LayerRole,
  type LayerStep,
  layerSteps,
  QUANTIZED_ROLES,
} from "../model/architectures.ts";
import { layerTensors } from "../model/tensors.ts";
import type { ModelConfig } from "../model/config.ts";
import {
  encoding,
  type EncodingName,
  type FloatDtype,
  floatEncoding,
} from "../quant/encoding.ts";
import { kvBytesPerLayer } from "./kv_cache.ts";
import { alignUp, runStateBytes } from "./_run_state.ts";
import { layerGroups, packUnits } from "./_units.ts";
import { planExperts } from "./_experts.ts";
import { moeScratchBytes } from "./_moe_step.ts";
import { type PlanInput, planResidency, type ResidencyPlan } from "./plan.ts";

/**
 * How the weights are stored on the GPU: an encoding of the registry
 * (lib/quant/encoding.ts), plain floats also by their safetensors dtype.
 */
export type WeightEncoding = FloatDtype | EncodingName;

/**
 * Bytes of a `[rows, cols]` matrix stored as `enc` (its data rows, and its
 * scales tensor where the encoding has one), each part aligned as the engine
 * aligns it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { matrixBytes } from "./predict.ts";
 * assert.equal(matrixBytes(4096, 4096, "F16"), 4096 * 4096 * 2);
 * assert.equal(matrixBytes(4096, 4096, "q4"), 4096 * 128 * 16 + 4096 * 128 * 2);
 * assert.equal(matrixBytes(4096, 4096, "q4k"), 4096 * 16 * 144);
 * ```
 */
export function matrixBytes(
  rows: number,
  cols: number,
  enc: WeightEncoding,
): number {
  const e = floatEncoding(enc) ?? encoding(enc);
  const [rb, sb] = e.rowBytes(cols);
  return alignUp(rows * rb) + (sb > 0 ? alignUp(rows * sb) : 0);
}

/** What {@link gpuBytes} needs besides the config. */
export interface GpuBytesOptions {
  /** Encoding of the projection weights (q/k/v/o, gate/up/down) and lm_head. */
  encoding: WeightEncoding;
  /** Encoding of the token embedding (the head when tied); default: F16/BF16/F32 as `source`. */
  embedEncoding?: WeightEncoding;
  /** KV cache positions (default 4096 or max_position_embeddings if less). */
  maxSeqLen?: number;
  /** Tokens per pass the activations are sized for (the engine's default: 64). */
  maxT?: number;
  /** Top-k candidates read back (default 64). */
  topK?: number;
}

/**
 * The inputs of {@link planResidency} for `cfg`, without a GPU: layer bytes
 * as laid out in a slot (2-D weights as matrices: the projections in
 * `encoding`, others such as a router in the float dtype; 1-D tensors
 * decoded to f32), the head, the KV cache per layer and the activations
 * (sized as the forward pass sizes them). A mixture-of-experts model's
 * routed experts are not in its layers' bytes: `experts` has them, laid out
 * on their own as the engine lays them out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalizeConfig } from "../model/config.ts";
 * import { gpuBytes } from "./predict.ts";
 * const cfg = normalizeConfig({ model_type: "llama", hidden_size: 64, intermediate_size: 128,
 *   num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100 }, "config.json");
 * const b = gpuBytes(cfg, { encoding: "F16" });
 * assert.equal(b.layerBytes.length, 2);
 * assert.ok(b.layerBytes[0] > 4 * 64 * 64 * 2);
 * ```
 */
export function gpuBytes(
  cfg: ModelConfig,
  o: GpuBytesOptions,
): Omit<PlanInput, "budget" | "slots"> & { experts?: ExpertBytes } {
  const layerBytes: number[] = [];
  const unitBytes: (number[] | null)[] = [];
  // MOE: each routed expert on its own (its gate, up and down), as
  // expertLayouts lays them out: not part of its layer's bytes
  let sparseLayers = 0, expertBytes = 0, expertTotal = 0;
  const floatEnc: WeightEncoding = floatEncoding(o.encoding)
    ? o.encoding
    : o.embedEncoding ?? "F16";
  for (let i = 0; i < cfg.numLayers; i++) {
    // bytes by role, as the engine lays each tensor out in a slot
    const byRole = new Map<string, number>();
    const expert = new Map<number, number>();
    let sum = 0;
    for (const t of layerTensors(cfg, i)) {
      // as _layout.ts: every 2-D tensor a matrix (the router and the shared
      // expert's gate in their float dtype: the split quantizes projections only)
      const b = t.shape.length === 2
        ? matrixBytes(
          t.shape[0],
          t.shape[1],
          QUANTIZED_ROLES.has(t.role) ? o.encoding : floatEnc,
        )
        : alignUp(t.shape.reduce((a, n) => a * n, 1) * 4);
      if (t.expert !== undefined) {
        // streamed on their own: not the layer's (as in _layer_shard.ts)
        expert.set(t.expert, (expert.get(t.expert) ?? 0) + b);
        continue;
      }
      byRole.set(t.role, (byRole.get(t.role) ?? 0) + b);
      sum += b;
    }
    if (expert.size > 0) {
      sparseLayers++;
      expertBytes = Math.max(expertBytes, ...expert.values());
      expertTotal += [...expert.values()].reduce((a, b) => a + b, 0);
    }
    layerBytes.push(sum);
    unitBytes.push(layerUnitBytes(layerSteps(cfg, i), byRole));
  }
  const D = cfg.hiddenSize, V = cfg.vocabSize;
  const embedEnc = o.embedEncoding ?? "F16";
  const headBytes = alignUp(D * 4) +
    (cfg.tieWordEmbeddings
      ? matrixBytes(V, D, embedEnc)
      : matrixBytes(V, D, o.encoding));
  const maxSeqLen = o.maxSeqLen ??
    Math.min(4096, cfg.maxPositionEmbeddings || 4096);
  const maxT = o.maxT ?? 64;
  const topK = Math.min(o.topK ?? 64, V);
  // as Forward.create sizes them: the run state, readback, arena, scratch
  // (and the expert runner's scratch: 0 for a dense model)
  const { activationBytes } = runStateBytes(cfg, { maxT, topK, maxSeqLen });
  const out: Omit<PlanInput, "budget" | "slots"> & { experts?: ExpertBytes } = {
    layerBytes,
    headBytes,
    kvBytesPerLayer: kvBytesPerLayer(cfg, maxSeqLen),
    activationBytes: activationBytes + moeScratchBytes(cfg, maxT),
    unitBytes,
  };
  if (cfg.moe && sparseLayers > 0) {
    out.experts = {
      perLayer: cfg.moe.numExperts,
      topK: cfg.moe.topK,
      sparseLayers,
      expertBytes,
      count: sparseLayers * cfg.moe.numExperts,
      totalBytes: expertTotal,
    };
  }
  return out;
}

/**
 * The routed experts of a mixture-of-experts config, from the config alone,
 * laid out as lib/engine/_experts.ts `expertLayouts` lays them out (each
 * expert's three matrices in one byte range, one cache slot each).
 */
export interface ExpertBytes {
  /** Routed experts per sparse layer (E). */
  perLayer: number;
  /** Experts each token's router chooses (k, distinct). */
  topK: number;
  /** Decoder layers that route to experts. */
  sparseLayers: number;
  /** Bytes of one expert (one cache slot). */
  expertBytes: number;
  /** Experts of all sparse layers together. */
  count: number;
  /** Bytes of all experts together. */
  totalBytes: number;
}

/**
 * The GPU bytes of a layer's sub-layer streaming units, grouped and packed
 * as the engine packs them (lib/engine/_layer_shard.ts: the groups of
 * `_units.ts`, consecutive groups packed up to the largest group's bytes);
 * null when a tensor is in no group (the layer streams whole).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layerUnitBytes } from "./predict.ts";
 * import { ARCHITECTURES } from "../model/architectures.ts";
 * const bytes = new Map(Object.entries({ attnNorm: 256, qProj: 1024, kProj: 256, vProj: 256,
 *   oProj: 1024, mlpNorm: 256, gateProj: 4096, upProj: 4096, downProj: 4096 }));
 * // q+k+v+o (2816 bytes) packed under the largest group (4096), then gate, up and down
 * assert.deepEqual(layerUnitBytes(ARCHITECTURES.llama.steps, bytes), [2816, 4352, 4096, 4096]);
 * ```
 */
export function layerUnitBytes(
  steps: readonly LayerStep[],
  bytesByRole: ReadonlyMap<string, number>,
): number[] | null {
  // roles stand for tensor names: one tensor per role in a layer
  const names = Object.fromEntries(
    [...bytesByRole.keys()].map((r) => [r, r]),
  ) as Partial<Record<LayerRole, string>>;
  const groups = layerGroups(steps, names);
  if (groups === null || groups.length === 0) return null;
  const bytes = (n: string[]) =>
    n.reduce((a, r) => a + (bytesByRole.get(r) ?? 0), 0);
  const cap = Math.max(...groups.map((g) => bytes(g.names)));
  return packUnits(groups, bytes, cap).map((u) => bytes(u.names));
}

/** Measured or given rates, bytes per second; a missing one is unknown. */
export interface Floors {
  /** Sequential read of the model's files (disk or page cache). */
  readBps?: number;
  /** Host → GPU upload (`queue.writeBuffer`, PCIe on a discrete GPU). */
  uploadBps?: number;
  /**
   * Host → GPU upload of one expert as the expert store uploads it (1 MiB
   * `writeBuffer` pieces from a mapped layer file, or from a reused host
   * image where files cannot be mapped); default: `uploadBps`.
   */
  expertUploadBps?: number;
  /** Weight bytes the matvec kernels consume per second. */
  computeBps?: number;
  /** The adapter runs on the CPU: compute grows with the batch. */
  cpuAdapter?: boolean;
  /**
   * How much of the shorter of upload and compute does not hide behind the
   * longer when they run at once, measured (lib/engine/_floors.ts: an
   * upload timed beside a matvec): 0 = fully hidden, 1 = they add up.
   * Used on a GPU (default 0); on a CPU adapter the two add up whatever it
   * says (see {@link predict}).
   */
  overlap?: number;
}

/** The options of {@link predict}. */
export interface PredictOptions extends GpuBytesOptions {
  /** GPU memory budget in bytes. */
  budget: number;
  /** Ring slots wanted (default 3, as the engine). */
  slots?: number;
  /** Tokens per pass (default 1: decode). */
  batch?: number;
  /** The floors. */
  floors: Floors;
  /**
   * The hit rate of a chosen expert in the expert cache, measured (a run's
   * `expert_cache_hit_rate`), in place of uniform routing's; used only when
   * the cache cannot hold every expert.
   */
  expertHitRate?: number;
}

/**
 * What a prediction expects of the routed experts of a mixture-of-experts
 * model, assuming uniform independent routing: per sparse layer and token
 * the router chooses k distinct experts of E, each equally likely, and a
 * chosen expert misses the cache with probability 1 - cachedPerLayer / E
 * (the hit rate of an LRU cache under uniform requests). Real routing is
 * skewed (a few experts are chosen more often, and consecutive tokens share
 * some), so real hit rates differ: `bench --shape mixtral-8x7b` measures
 * them, and a measured rate given as {@link PredictOptions.expertHitRate}
 * replaces the assumed one.
 */
export interface ExpertPrediction extends ExpertBytes {
  /** Expert cache slots (every expert when `allResident`). */
  cached: number;
  /** Every expert stays on the GPU: nothing moves, every expert is computed. */
  allResident: boolean;
  /** GPU bytes of the expert cache. */
  cacheBytes: number;
  /** Cached experts per sparse layer (cached / sparse layers, at most E). */
  cachedPerLayer: number;
  /** Expected distinct experts chosen per sparse layer per pass: E·(1 - (1 - k/E)^batch). */
  chosenPerLayer: number;
  /** Expected hit rate of a chosen expert (1 when all resident). */
  hitRate: number;
  /** Where the hit rate comes from: uniform independent routing, or given (measured). */
  routing: "uniform" | "given";
  /** Expected experts read and uploaded per pass, all sparse layers. */
  loadedPerPass: number;
  /** Expected expert bytes read and uploaded per pass. */
  bytesPerPass: number;
  /** Experts computed per sparse layer per pass: every one when all resident (the engine's GPU-side path), else the chosen ones. */
  computedPerLayer: number;
}

/** What {@link predict} returns. */
export interface Prediction {
  /** The residency plan the engine would choose (of the layers without their experts for a mixture-of-experts model). */
  plan: ResidencyPlan;
  /** The expert cache and the expected expert traffic (null for a dense model). */
  experts: ExpertPrediction | null;
  /** Tokens per pass. */
  batch: number;
  /** KV cache positions planned for. */
  maxSeqLen: number;
  /** Weight bytes streamed (read and uploaded) per token: the ring's and the experts' expected loads. */
  streamedBytesPerToken: number;
  /** Weight bytes the kernels read per pass (every layer and the head; of the experts, those computed). */
  computeBytesPerPass: number;
  /** Seconds per pass of each floor (NaN when unknown), experts included. */
  readS: number;
  uploadS: number;
  computeS: number;
  /** Seconds per pass of the expert loads (read + upload; 0 for a dense model): they wait on the router and add to the pass. */
  expertLoadS: number;
  /** Whether prefetch overlaps read, upload and compute of the ring (≥ 2 slots, or nothing streamed). */
  overlapped: boolean;
  /** Predicted seconds per token, from the known floors only. */
  secondsPerToken: number;
  /** Floors the prediction needed but did not have ("read", "upload", "compute"): then it is a lower bound. */
  unknown: string[];
}

/**
 * The expected expert traffic of a pass of `batch` tokens with `cached`
 * cache slots (see {@link ExpertPrediction} for the assumption).
 */
function expectExperts(
  ex: ExpertBytes,
  o: { cached: number; cacheBytes: number; batch: number; hitRate?: number },
): ExpertPrediction {
  const E = ex.perLayer, k = ex.topK;
  const allResident = o.cached >= ex.count;
  const cachedPerLayer = Math.min(E, o.cached / ex.sparseLayers);
  // a token leaves a given expert unchosen with probability 1 - k/E
  const chosenPerLayer = E * (1 - (1 - k / E) ** o.batch);
  const hitRate = allResident ? 1 : o.hitRate ?? cachedPerLayer / E;
  const loadedPerPass = ex.sparseLayers * chosenPerLayer * (1 - hitRate);
  return {
    ...ex,
    cached: o.cached,
    allResident,
    cacheBytes: o.cacheBytes,
    cachedPerLayer,
    chosenPerLayer,
    hitRate,
    routing: !allResident && o.hitRate !== undefined ? "given" : "uniform",
    loadedPerPass,
    bytesPerPass: loadedPerPass * ex.expertBytes,
    computedPerLayer: allResident ? E : chosenPerLayer,
  };
}

/**
 * Plans residency for `cfg` under `o.budget` and predicts seconds per token
 * from the floors.
 *
 * A mixture-of-experts model is planned as the engine plans it
 * (lib/engine/_experts.ts `planExperts`: the budget split between the plan
 * of the layers without their experts and the expert cache). When every
 * expert fits, nothing of them moves and every expert is computed (the
 * engine's GPU-side path); otherwise the chosen experts are computed, and
 * the expected misses ({@link ExpertPrediction}) are read and uploaded
 * after each sparse layer's router has run: their read and upload add to
 * the pass (the engine waits for them).
 *
 * @throws {BudgetError} when the budget cannot hold the essentials and a slot.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalizeConfig } from "../model/config.ts";
 * import { predict } from "./predict.ts";
 * const cfg = normalizeConfig({ model_type: "llama", hidden_size: 8192, intermediate_size: 28672,
 *   num_hidden_layers: 80, num_attention_heads: 64, num_key_value_heads: 8, vocab_size: 32000,
 *   max_position_embeddings: 4096 }, "config.json");
 * const p = predict(cfg, { encoding: "F16", budget: 4e9, maxSeqLen: 512,
 *   floors: { readBps: 2e9, uploadBps: 10e9, computeBps: 50e9 } });
 * // two 1.6 GiB whole-layer slots do not fit beside the head: 3 slots of sub-layer units
 * assert.deepEqual([p.plan.unit, p.plan.slots], ["matrices", 3]);
 * assert.ok(p.secondsPerToken >= p.streamedBytesPerToken / 2e9);
 * // Mixtral-shaped, 2 layers of 8 experts, top-2: part of the experts are cached
 * const moe = normalizeConfig({ model_type: "mixtral", hidden_size: 4096, intermediate_size: 14336,
 *   num_hidden_layers: 2, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 32000 },
 *   "config.json");
 * const m = predict(moe, { encoding: "F16", budget: 4e9, maxSeqLen: 512, floors: {} });
 * assert.ok(m.experts!.cached < 16 && m.experts!.loadedPerPass > 0);
 * ```
 */
export function predict(cfg: ModelConfig, o: PredictOptions): Prediction {
  const { experts: exBytes, ...bytes } = gpuBytes(cfg, o);
  const input = { ...bytes, slots: o.slots ?? 3 };
  const batch = Math.max(1, Math.floor(o.batch ?? 1));
  let plan: ResidencyPlan;
  let experts: ExpertPrediction | null = null;
  if (exBytes) {
    // the engine's own split of the budget (only the sizes of `ex` are used)
    const ex = {
      layouts: [],
      names: [],
      slotBytes: exBytes.expertBytes,
      totalBytes: exBytes.totalBytes,
      count: exBytes.count,
    };
    const e = planExperts({ budget: o.budget, input, ex, topK: exBytes.topK });
    plan = e.plan;
    experts = expectExperts(exBytes, {
      cached: e.slots,
      cacheBytes: e.cacheBytes,
      batch,
      hitRate: o.expertHitRate,
    });
  } else plan = planResidency({ ...input, budget: o.budget });
  const f = o.floors;
  const streamed = plan.bytesStreamedPerToken;
  const exMoved = experts?.bytesPerPass ?? 0;
  const layers = bytes.layerBytes.reduce((a, b) => a + b, 0) +
    bytes.headBytes;
  const exOne = experts ? experts.sparseLayers * experts.expertBytes : 0;
  const computeBytes = layers + exOne * (experts?.computedPerLayer ?? 0);
  // a CPU adapter computes each token on its own: the layers, and the
  // experts each token computes (its k, or every one when all resident)
  const tokenBytes = layers +
    exOne *
      (experts ? (experts.allResident ? experts.perLayer : experts.topK) : 0);
  const rate = (n: number, bps?: number) =>
    n === 0 ? 0 : bps && bps > 0 ? n / bps : NaN;
  const ringReadS = rate(streamed, f.readBps);
  const ringUploadS = rate(streamed, f.uploadBps);
  const exReadS = rate(exMoved, f.readBps);
  const exUploadS = rate(exMoved, f.expertUploadBps ?? f.uploadBps);
  const readS = ringReadS + exReadS;
  const uploadS = ringUploadS + exUploadS;
  const computeS = f.cpuAdapter
    ? rate(tokenBytes * batch, f.computeBps)
    : rate(computeBytes, f.computeBps);
  const overlapped = plan.streamed.length === 0 || plan.slots >= 2;
  const unknown = (["read", "upload", "compute"] as const).filter((_, i) =>
    Number.isNaN([readS, uploadS, computeS][i])
  );
  const [r, u, c, er, eu] = [
    ringReadS,
    ringUploadS,
    computeS,
    exReadS,
    exUploadS,
  ]
    .map((x) => Number.isNaN(x) ? 0 : x);
  // prefetch hides the read; of the shorter of upload and compute, the
  // share that does not hide behind the longer: on a GPU the probe's
  // (default none). On a CPU adapter the upload is a CPU copy on the cores
  // the kernels' threads use, its second half a copy in the same queue as
  // the kernels: the engine's passes on lavapipe took the sum of the
  // isolated floors or more (70B-shaped bench: 1.10 s against 0.96), while
  // an upload beside one repeated matvec hid a quarter to two thirds of it
  const a = f.cpuAdapter ? 1 : Math.min(1, Math.max(0, f.overlap ?? 0));
  const pass =
    (!overlapped
      ? r + u + c
      : Math.max(r, Math.max(u, c) + a * Math.min(u, c))) + er + eu;
  return {
    plan,
    experts,
    batch,
    maxSeqLen: o.maxSeqLen ?? Math.min(4096, cfg.maxPositionEmbeddings || 4096),
    streamedBytesPerToken: (streamed + exMoved) / batch,
    computeBytesPerPass: computeBytes,
    readS,
    uploadS,
    computeS,
    expertLoadS: er + eu,
    overlapped,
    secondsPerToken: pass / batch,
    unknown: [...unknown],
  };
}
