/**
 * The runner of the `moe` step (lib/model/architectures.ts MoeStep): routed
 * experts, written like the other steps (lib/engine/_steps.ts) over its own
 * scratch buffers.
 *
 * Per sparse layer, in the layer's command buffer:
 *
 *     xb [T, D]       = rmsnorm(x) * mlpNorm
 *     logits [T, E]   = xb · Wrᵀ
 *     route [T, E]    = top-k softmax weights (0 for experts not chosen)
 *     acc [T, D]      = 0   (+ sigmoid(xb · Wsgᵀ) * shared(xb) with a shared expert)
 *
 * then, with every expert on the GPU (the expert store holds them all), for
 * each expert e: y = down_e(silu(gate_e(xb)) * up_e(xb)); acc += route[:, e]
 * * y, and x += acc, all in the same command buffer: the router's choice
 * never leaves the GPU (tokens that did not choose e add 0 · y).
 *
 * When the experts do not all fit, the choice must reach the host to know
 * which bytes to read: route is copied to a staging buffer and read back once
 * per sparse layer ({@link MoeRunner.finish}), the union of the chosen experts
 * over the pass's tokens is loaded through the expert cache (lib/engine/
 * _experts.ts; the experts chosen at the previous pass are prefetched while
 * attention runs), and only those experts are computed (in prefill, each over
 * only the rows of the tokens that chose it: gathered by copies, added back by
 * kernels/moe_scatter.wgsl). docs/engine.md
 * ("Mixture of experts") has the measurement behind the per-layer readback.
 *
 * @module
 */
import { StrataError } from "../errors.ts";
import type { BufferRef, Kernels } from "../gpu/kernels.ts";
import { moeCombine } from "../gpu/ops/moe_combine.ts";
import { moeRoute } from "../gpu/ops/moe_route.ts";
import { moeScatter } from "../gpu/ops/moe_scatter.ts";
import type { MoeStep } from "../model/architectures.ts";
import type { ModelConfig } from "../model/config.ts";
import type { MoeConfig } from "../model/model_config.ts";
import type { ExpertStore, ExpertWeights } from "./_experts.ts";
import type { Activations, Dims } from "./_run_state.ts";
import { type LayerPass, type MoeHook, Recorder } from "./_steps.ts";
import type { LayerTensors } from "./_weights.ts";

/** Bytes of one expert's (row, weight) list in `sel`, storage-offset aligned. */
function selStride(maxT: number): number {
  return Math.ceil(maxT * 8 / 256) * 256;
}

/** Widths of the runner's scratch buffers for `maxT` tokens. */
function scratchSizes(cfg: ModelConfig, maxT: number) {
  const m = cfg.moe!;
  const D = cfg.hiddenSize, E = m.numExperts;
  const F = Math.max(m.expertSize, m.sharedExpertSize);
  return {
    logits: maxT * E * 4,
    route: maxT * E * 4,
    acc: maxT * D * 4,
    y: maxT * D * 4,
    hb: maxT * F * 4,
    hb2: maxT * F * 4,
    gate: maxT * 4,
    xg: maxT * D * 4,
    sel: E * selStride(maxT),
    staging: maxT * E * 4,
  };
}

/**
 * GPU bytes of the runner's scratch for `maxT` tokens (0 for a dense model).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { moeScratchBytes } from "./_moe_step.ts";
 * import { normalizeConfig } from "../model/config.ts";
 * const cfg = normalizeConfig({ model_type: "mixtral", hidden_size: 16, intermediate_size: 32,
 *   num_hidden_layers: 1, num_attention_heads: 2, vocab_size: 10 }, "c.json");
 * assert.ok(moeScratchBytes(cfg, 4) > 0);
 * ```
 */
export function moeScratchBytes(cfg: ModelConfig, maxT: number): number {
  if (!cfg.moe) return 0;
  const s = scratchSizes(cfg, maxT);
  return Object.values(s).reduce(
    (a, b) => a + Math.max(256, Math.ceil(b / 256) * 256),
    0,
  );
}

/** Counters of the router readbacks since the last reset. */
export interface MoeRunStats {
  /** Per-layer readbacks of the router's choice. */
  readbacks: number;
  /** Seconds waiting for them. */
  readbackS: number;
  /** Decode passes (T = 1). */
  decodeTokens: number;
  /** Weight bytes read and uploaded during decode passes (layers through the ring and experts). */
  decodeBytes: number;
}

/** Mixture-of-experts totals since the last reset (`ForwardStats.experts`). */
export interface MoeStats {
  /** Experts the routers chose, summed over passes and sparse layers (a pass counts the union over its tokens). */
  requested: number;
  /** Of those, found on the GPU. */
  hits: number;
  /** Found on the GPU because the previous token's choice was prefetched. */
  prefetchHits: number;
  /** Experts read and uploaded (misses and prefetches). */
  loaded: number;
  /** Their bytes. */
  bytesMoved: number;
  /** Router readbacks (one per sparse layer per pass when experts stream; 0 when all are resident). */
  readbacks: number;
  /** Seconds waiting for the readbacks. */
  readbackS: number;
  /** Seconds waiting for expert loads. */
  loadWaitS: number;
  /** Decode passes. */
  decodeTokens: number;
  /** Weight bytes moved per decoded token (ring layers and experts). */
  decodeBytesPerToken: number;
  /** Experts loaded per decoded token. */
  decodeExpertsPerToken: number;
  /** Whether every expert stays on the GPU. */
  allResident: boolean;
  /** Per sparse layer: experts requested, loaded and their bytes. */
  layers: { layer: number; requested: number; loaded: number; bytes: number }[];
}

type Scratch = Record<keyof ReturnType<typeof scratchSizes>, BufferRef>;

interface Pending {
  layer: number;
  K: Kernels;
  a: Activations;
  d: Dims;
  T: number;
}

/**
 * Runs the `moe` steps of a model over an {@link ExpertStore}.
 *
 * @example
 * ```ts ignore
 * const moe = MoeRunner.create(device, cfg, maxT, store);
 * recordLayer({ ..., moe: moe.at(l) }, tensors);
 * K.submit([rec.finish()]);
 * await moe.finish(l); // streamed experts: read back, load, compute
 * ```
 */
export class MoeRunner {
  /**
   * The expert store, or null when the experts live in their layer's shard
   * image (whole layers resident or streamed through the ring).
   */
  readonly store: ExpertStore | null;
  /** Counters since {@link MoeRunner.resetStats}. */
  stats: MoeRunStats = {
    readbacks: 0,
    readbackS: 0,
    decodeTokens: 0,
    decodeBytes: 0,
  };
  #decodeLoaded = 0;
  readonly #device: GPUDevice;
  readonly #m: MoeConfig;
  readonly #buf: Scratch;
  readonly #owned: GPUBuffer[];
  readonly #staging: GPUBuffer;
  /** The experts each layer chose at the last pass (what prefetch loads). */
  readonly #prev = new Map<number, number[]>();
  readonly #maxT: number;
  /** Per layer, each expert's tensor names (gate, up, down). */
  readonly #names: (string[][] | null)[];
  #pending: Pending | null = null;

  private constructor(
    device: GPUDevice,
    cfg: ModelConfig,
    maxT: number,
    experts: { store: ExpertStore | null; names: (string[][] | null)[] },
  ) {
    this.#device = device;
    this.#maxT = maxT;
    this.#m = cfg.moe!;
    this.store = experts.store;
    this.#names = experts.names;
    const sizes = scratchSizes(cfg, maxT);
    this.#owned = [];
    const mk = (size: number, label: string): BufferRef => {
      const buffer = device.createBuffer({
        label,
        size: Math.max(256, Math.ceil(size / 256) * 256),
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
          GPUBufferUsage.COPY_DST,
      });
      this.#owned.push(buffer);
      return { buffer, offset: 0, size: buffer.size };
    };
    const { staging, ...rest } = sizes;
    this.#buf = {
      ...Object.fromEntries(
        Object.entries(rest).map(([k, v]) => [k, mk(v, `moe.${k}`)]),
      ),
    } as Scratch;
    this.#staging = device.createBuffer({
      label: "moe.staging",
      size: Math.max(256, Math.ceil(staging / 256) * 256),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.#buf.staging = {
      buffer: this.#staging,
      offset: 0,
      size: this.#staging.size,
    };
  }

  /**
   * A runner for `cfg` (which must have experts) with scratch for `maxT`
   * tokens; experts from `store`, or (null) from each layer's own tensors,
   * named by `names` (ExpertLayouts.names).
   */
  static create(
    device: GPUDevice,
    cfg: ModelConfig,
    maxT: number,
    experts: { store: ExpertStore | null; names: (string[][] | null)[] },
  ): MoeRunner {
    if (!cfg.moe) {
      throw new StrataError("MoeRunner: the config has no experts");
    }
    return new MoeRunner(device, cfg, maxT, experts);
  }

  /** Whether every expert is on the GPU when its layer runs (no readback). */
  get resident(): boolean {
    return this.store === null || this.store.allResident;
  }

  /** Zeroes the counters (and the store's). */
  resetStats(): void {
    this.stats = {
      readbacks: 0,
      readbackS: 0,
      decodeTokens: 0,
      decodeBytes: 0,
    };
    this.#decodeLoaded = 0;
    this.store?.resetStats();
  }

  /**
   * A pass of `T` tokens ended that moved `ringBytes` through the layer ring
   * and `expertBytes` / `expertsLoaded` through the expert store.
   */
  passDone(
    T: number,
    ringBytes: number,
    expertBytes: number,
    expertsLoaded: number,
  ): void {
    if (T !== 1) return;
    this.stats.decodeTokens++;
    this.stats.decodeBytes += ringBytes + expertBytes;
    this.#decodeLoaded += expertsLoaded;
  }

  /** The totals since the last reset. */
  totals(): MoeStats {
    const st = this.store?.stats;
    const n = this.stats.decodeTokens;
    return {
      requested: st?.requested ?? 0,
      hits: st?.hits ?? 0,
      prefetchHits: st?.prefetchHits ?? 0,
      loaded: st?.loaded ?? 0,
      bytesMoved: st?.bytesMoved ?? 0,
      readbacks: this.stats.readbacks,
      readbackS: this.stats.readbackS,
      loadWaitS: st?.loadWaitS ?? 0,
      decodeTokens: n,
      decodeBytesPerToken: n ? this.stats.decodeBytes / n : 0,
      decodeExpertsPerToken: n ? this.#decodeLoaded / n : 0,
      allResident: this.resident,
      layers: [...(st?.layers ?? new Map()).entries()].sort((a, b) =>
        a[0] - b[0]
      ).map(([layer, r]) => ({ layer, ...r })),
    };
  }

  /** The hook the `moe` step of layer `l` records through. */
  at(l: number): MoeHook {
    return { record: (p, s, t) => this.#record(l, p, s, t) };
  }

  #record(l: number, p: LayerPass, s: MoeStep, t: LayerTensors): void {
    const { K, rec, a, d, T } = p;
    const m = this.#m, b = this.#buf, E = m.numExperts;
    if (this.#pending) {
      throw new StrataError("moe: a layer's experts were never finished");
    }
    // the experts this layer chose at the last pass load while attention runs
    const prev = this.#prev.get(l);
    if (prev && !this.resident) this.store!.prefetch(l, prev);
    // xb [T, D] = rmsnorm(x) * mlpNorm
    rec.unit("moe.router"); // streamed in units: from here on, its weights
    K.rmsnorm(rec.pass, {
      x: a.x,
      weight: t.vector("mlpNorm"),
      out: a.xb,
      rows: T,
      dim: d.D,
      eps: d.eps,
    });
    // logits [T, E] = xb · Wrᵀ; route [T, E] = top-k softmax weights
    K.matmul(rec.pass, { x: a.xb, w: t.matrix("router"), out: b.logits, T });
    moeRoute(K.ctx, rec.pass, {
      logits: b.logits,
      route: b.route,
      T,
      E,
      k: m.topK,
      norm: m.normTopK,
    });
    // acc [T, D] = 0
    rec.raw((enc) => enc.clearBuffer(b.acc.buffer, 0, T * d.D * 4));
    if (s.sharedExpert) {
      // acc += sigmoid(xb · Wsgᵀ) * down_s(silu(gate_s(xb)) * up_s(xb)), a
      // unit group a matrix (rec.pass is a new pass after each cut)
      const F = m.sharedExpertSize;
      rec.unit("moe.shared.gate");
      K.matmul(rec.pass, { x: a.xb, w: t.matrix("sharedGate"), out: b.hb, T });
      rec.unit("moe.shared.up");
      K.matmul(rec.pass, { x: a.xb, w: t.matrix("sharedUp"), out: b.hb2, T });
      K.siluMul(rec.pass, { gate: b.hb, up: b.hb2, out: b.hb, n: T * F });
      rec.unit("moe.shared.down");
      K.matmul(rec.pass, { x: b.hb, w: t.matrix("sharedDown"), out: b.y, T });
      K.matmul(rec.pass, {
        x: a.xb,
        w: t.matrix("sharedExpertGate"),
        out: b.gate,
        T,
      });
      moeCombine(K.ctx, rec.pass, {
        y: b.y,
        coef: b.gate,
        acc: b.acc,
        T,
        D: d.D,
        stride: 1,
        col: 0,
        sigmoid: true,
      });
    }
    if (this.resident) {
      // every expert over every token, weighted by route (0 where not chosen)
      const ws = this.store
        ? this.store.all(l)
        : (this.#names[l] ?? []).map(([g, u, dn]) => ({
          wGate: t.named(g),
          wUp: t.named(u),
          wDown: t.named(dn),
        }));
      for (let e = 0; e < ws.length; e++) {
        this.#routed(K, rec.pass, a, d, T, ws[e], e);
      }
      K.add(rec.pass, { x: a.x, y: b.acc, out: a.x, n: T * d.D });
      return;
    }
    // route → staging: read back in finish()
    rec.copy({ ...b.route, size: T * E * 4 }, b.staging);
    this.#pending = { layer: l, K, a, d, T };
  }

  /** y [T, D] = down(silu(gate(x)) * up(x)) of one expert of width F. */
  #expert(
    K: Kernels,
    pass: GPUComputePassEncoder,
    x: BufferRef,
    T: number,
    w: ExpertWeights,
    F: number,
  ): void {
    const b = this.#buf;
    K.matmul(pass, { x, w: w.wGate, out: b.hb, T });
    K.matmul(pass, { x, w: w.wUp, out: b.hb2, T });
    K.siluMul(pass, { gate: b.hb, up: b.hb2, out: b.hb, n: T * F });
    K.matmul(pass, { x: b.hb, w: w.wDown, out: b.y, T });
  }

  /** acc += route[:, e] * expert_e(xb). */
  #routed(
    K: Kernels,
    pass: GPUComputePassEncoder,
    a: Activations,
    d: Dims,
    T: number,
    w: ExpertWeights,
    e: number,
  ): void {
    const b = this.#buf;
    this.#expert(K, pass, a.xb, T, w, this.#m.expertSize);
    moeCombine(K.ctx, pass, {
      y: b.y,
      coef: b.route,
      acc: b.acc,
      T,
      D: d.D,
      stride: this.#m.numExperts,
      col: e,
      sigmoid: false,
    });
  }

  /**
   * Expert e over only the rows of the tokens that chose it (prefill with
   * streamed experts, where the host knows the choice): xg [n, D] = those
   * rows of xb (buffer copies), y [n, D] = expert(xg), acc[row] += weight ·
   * y (kernels/moe_scatter.wgsl, rows and weights written to `sel`).
   */
  #gathered(
    K: Kernels,
    rec: Recorder,
    a: Activations,
    d: Dims,
    T: number,
    w: ExpertWeights,
    e: number,
    route: Float32Array,
  ): void {
    const b = this.#buf, E = this.#m.numExperts, row = d.D * 4;
    const sel = new Uint32Array(2 * T);
    const weights = new Float32Array(sel.buffer);
    let n = 0;
    for (let t = 0; t < T; t++) {
      const c = route[t * E + e];
      if (c === 0) continue;
      rec.copy(
        { buffer: a.xb.buffer, offset: a.xb.offset + t * row, size: row },
        { buffer: b.xg.buffer, offset: n * row, size: row },
      );
      sel[2 * n] = t;
      weights[2 * n + 1] = c;
      n++;
    }
    if (n === 0) return;
    const at = e * selStride(this.#maxT);
    // queue-ordered: lands before this batch's submit, after the previous one
    this.#device.queue.writeBuffer(b.sel.buffer, at, sel, 0, 2 * n);
    this.#expert(K, rec.pass, b.xg, n, w, this.#m.expertSize);
    moeScatter(K.ctx, rec.pass, {
      y: b.y,
      sel: { buffer: b.sel.buffer, offset: at, size: n * 8 },
      acc: b.acc,
      n,
      D: d.D,
    });
  }

  /**
   * After layer `l`'s command buffer was submitted: with streamed experts,
   * reads the router's choice back, loads the chosen experts (the union over
   * the pass's tokens) and computes them, in as many submits as the cache
   * needs; then x += acc. Nothing to do when every expert is resident.
   */
  async finish(l: number): Promise<void> {
    const p = this.#pending;
    if (!p || p.layer !== l) return;
    this.#pending = null;
    const { K, a, d, T } = p;
    const E = this.#m.numExperts, b = this.#buf;
    const r0 = performance.now();
    await this.#staging.mapAsync(GPUMapMode.READ, 0, T * E * 4);
    const route = new Float32Array(
      this.#staging.getMappedRange(0, T * E * 4).slice(0),
    );
    this.#staging.unmap();
    this.stats.readbacks++;
    this.stats.readbackS += (performance.now() - r0) / 1000;
    const chosen: number[] = [];
    for (let e = 0; e < E; e++) {
      for (let t = 0; t < T; t++) {
        if (route[t * E + e] !== 0) {
          chosen.push(e);
          break;
        }
      }
    }
    this.#prev.set(l, chosen);
    const store = this.store!, cap = store.capacity;
    for (let i = 0; i < chosen.length || i === 0; i += cap) {
      const batch = chosen.slice(i, i + cap);
      const ws = await store.ensure(l, batch);
      const rec = new Recorder(
        this.#device.createCommandEncoder({ label: `layer.${l}.experts` }),
      );
      batch.forEach((e, j) => {
        if (T === 1) this.#routed(K, rec.pass, a, d, T, ws[j], e);
        else this.#gathered(K, rec, a, d, T, ws[j], e, route);
      });
      if (i + cap >= chosen.length) {
        K.add(rec.pass, { x: a.x, y: b.acc, out: a.x, n: T * d.D });
      }
      K.submit([rec.finish()]);
    }
  }

  /** Frees the scratch and the store. */
  async destroy(): Promise<void> {
    for (const buf of this.#owned) buf.destroy();
    this.#staging.destroy();
    await this.store?.destroy();
  }
}
