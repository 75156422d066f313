/**
 * The layer steps: what each step of an architecture row's program
 * (lib/model/architectures.ts) records into a layer's command buffer, one
 * `Kernels` call per op, written like llama2.c's `forward()`. Every step is a
 * residual block `x += post(body(norm(x)))` over the activations of
 * lib/engine/_run_state.ts.
 *
 * @module
 */
import { StrataError, UnsupportedError } from "../errors.ts";
import type { BufferRef, Kernels } from "../gpu/kernels.ts";
import type {
  AttentionStep,
  LayerStep,
  MoeStep,
  RopeStyle,
} from "../model/architectures.ts";
import type { Activations, Dims } from "./_run_state.ts";
import {
  type AttentionWeights,
  attentionWeights,
  type HeadWeights,
  type LayerTensors,
  type MlpWeights,
  mlpWeights,
} from "./_weights.ts";

/**
 * A command encoder whose compute pass opens on first use and closes for
 * copies, so consecutive steps share one pass.
 *
 * @example
 * ```ts ignore
 * const rec = new Recorder(device.createCommandEncoder({ label: "layer.0" }));
 * kernels.add(rec.pass, { x, y, out: x, n });
 * rec.copy(k, kCacheRows);
 * device.queue.submit([rec.finish()]);
 * ```
 */
export class Recorder {
  #enc: GPUCommandEncoder;
  #pass: GPUComputePassEncoder | null = null;
  readonly #cuts: UnitCuts | undefined;
  /** Finished command buffers by the unit they wait for. */
  #done: GPUCommandBuffer[][] = [];
  #unit = 0;

  /**
   * Records into `enc`; with `cuts`, starts a new command buffer where the
   * steps first read a later streaming unit ({@link Recorder.unit}).
   */
  constructor(enc: GPUCommandEncoder, cuts?: UnitCuts) {
    this.#enc = enc;
    this.#cuts = cuts;
  }

  /**
   * Marks where the steps start reading the tensors of unit group `group`
   * (lib/engine/_units.ts): when it belongs to a later streaming unit, the
   * commands recorded so far become one command buffer, submitted before
   * that unit is waited for, and the rest go into a new one.
   */
  unit(group: string): void {
    const c = this.#cuts;
    if (!c) return;
    const u = c.unitOf(group);
    if (u < 0 || u === this.#unit) return;
    if (u < this.#unit) {
      throw new StrataError(
        `layer steps read unit group ${group} after a later streaming unit`,
      );
    }
    this.#end();
    (this.#done[this.#unit] ??= []).push(this.#enc.finish());
    this.#enc = c.encoder();
    this.#unit = u;
  }

  /**
   * Ends the pass and the encoder: the command buffers by the streaming
   * unit each must wait for (index = unit; one entry without cuts).
   */
  finishUnits(): GPUCommandBuffer[][] {
    (this.#done[this.#unit] ??= []).push(this.finish());
    return this.#done;
  }

  /** The open compute pass (opened if none is). */
  get pass(): GPUComputePassEncoder {
    return this.#pass ??= this.#enc.beginComputePass();
  }

  #end(): void {
    this.#pass?.end();
    this.#pass = null;
  }

  /** Copies `src.size` bytes from `src` to `dst` (between passes). */
  copy(src: BufferRef, dst: BufferRef): void {
    this.#end();
    this.#enc.copyBufferToBuffer(
      src.buffer,
      src.offset,
      dst.buffer,
      dst.offset,
      src.size,
    );
  }

  /**
   * An empty compute pass carrying `desc` (a timeline's timestamp writes),
   * between the passes around it; nothing when `desc` is undefined.
   */
  stamp(desc: GPUComputePassDescriptor | undefined): void {
    if (!desc) return;
    this.#end();
    this.#enc.beginComputePass(desc).end();
  }

  /** Records raw commands into the encoder, between passes. */
  raw(fn: (enc: GPUCommandEncoder) => void): void {
    this.#end();
    fn(this.#enc);
  }

  /** Ends the pass and the encoder. */
  finish(): GPUCommandBuffer {
    this.#end();
    return this.#enc.finish();
  }
}

/** How a {@link Recorder} cuts a layer's commands at its streaming units. */
export interface UnitCuts {
  /** The unit (0..) holding group `group`; -1 for a group the layer does not have. */
  unitOf(group: string): number;
  /** A new encoder for the next unit's commands. */
  encoder(): GPUCommandEncoder;
}

const ROPE_KERNELS: Readonly<Record<RopeStyle, boolean>> = {
  "rotate-half": true,
  interleaved: true,
};

/**
 * Refuses a program this engine cannot run (a RoPE style without a kernel),
 * naming `file`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkSteps } from "./_steps.ts";
 * import { ARCHITECTURES } from "../model/architectures.ts";
 * import { UnsupportedError } from "../errors.ts";
 * checkSteps(ARCHITECTURES.llama.steps, "config.json");
 * checkSteps(ARCHITECTURES.glm4.steps, "config.json");
 * const unknown = [{ ...ARCHITECTURES.llama.steps[0], rope: "yarn" as never }];
 * assert.throws(() => checkSteps(unknown, "config.json"), UnsupportedError);
 * ```
 */
export function checkSteps(steps: readonly LayerStep[], file: string): void {
  for (const s of steps) {
    if (s.step === "attention" && ROPE_KERNELS[s.rope] !== true) {
      throw new UnsupportedError(
        file,
        `RoPE style "${s.rope}" has no kernel (rotate-half and interleaved have)`,
      );
    }
  }
}

/** Records a layer's `moe` step (lib/engine/_moe_step.ts MoeRunner.at). */
export interface MoeHook {
  /** Records the step into the layer's pass. */
  record(p: LayerPass, s: MoeStep, t: LayerTensors): void;
}

/** What every step of one layer of one pass records with. */
export interface LayerPass {
  /** The architecture row's steps. */
  steps: readonly LayerStep[];
  /** The kernels. */
  K: Kernels;
  /** The encoder. */
  rec: Recorder;
  /** The activations sized for T. */
  a: Activations;
  /** Model sizes. */
  d: Dims;
  /** Tokens in this pass. */
  T: number;
  /** Position of the first token. */
  pos0: number;
  /** This layer's KV cache [maxSeq, KV*hd] and the byte offset of row pos0. */
  kv: { k: BufferRef; v: BufferRef; at: number };
  /** The runner of a `moe` step (models with experts). */
  moe?: MoeHook;
  /**
   * Several sequences in one pass (lib/engine/_sequences.ts): the T rows are
   * their tokens concatenated; attention runs per sequence over its own KV
   * cache, and `kv`/`pos0` are unused.
   */
  seqs?: SeqRows;
}

/** One sequence's rows of a pass and this layer's KV cache of it. */
export interface SeqSlice {
  /** First row of the sequence in the pass. */
  row: number;
  /** Its tokens in the pass. */
  T: number;
  /** Position of its first token. */
  pos0: number;
  /** This layer's K and V caches [maxSeq, KV*hd] of the sequence. */
  k: BufferRef;
  /** See `k`. */
  v: BufferRef;
}

/** The sequences of a pass, with scratch for one sequence's q, k and att (maxT rows each). */
export interface SeqRows {
  /** The sequences, in row order. */
  list: readonly SeqSlice[];
  /** Scratch [maxT, H*hd]. */
  q: BufferRef;
  /** Scratch [maxT, KV*hd]. */
  k: BufferRef;
  /** Scratch [maxT, H*hd]. */
  att: BufferRef;
  /** minStorageBufferOffsetAlignment: rows at multiples of it are bound in place. */
  align: number;
}

/** RoPE of `x` [T, nHeads*hd] at positions pos0.., in the step's style. */
function rope(p: LayerPass, style: RopeStyle, x: BufferRef, nHeads: number) {
  const { d } = p;
  // pair j of each head, (j, j + R/2) rotate-half or (2j, 2j + 1)
  // interleaved, rotated by (pos0 + t) · invFreq[j]; dims R.. untouched
  p.K.rope(p.rec.pass, {
    x,
    T: p.T,
    nHeads,
    headDim: d.hd,
    rotaryDim: d.R,
    pos0: p.pos0,
    invFreq: p.a.invFreq,
    interleaved: style === "interleaved",
  });
}

/** xb [T, D] = rmsnorm(x) * weight, for x = the residual stream or xb. */
function normToXb(p: LayerPass, x: BufferRef, weight: BufferRef): void {
  const { a, d, T } = p;
  p.K.rmsnorm(p.rec.pass, {
    x,
    weight,
    out: a.xb,
    rows: T,
    dim: d.D,
    eps: d.eps,
  });
}

/** x += attention(rmsnorm(x)) (see {@link AttentionStep}). */
function attention(p: LayerPass, s: AttentionStep, w: AttentionWeights): void {
  const { K, rec, a, d, T } = p;
  rec.unit("attn.q"); // rec.unit: from here on, the group's weights are read
  normToXb(p, a.x, w.norm); // xb [T, D] = rmsnorm(x) * w
  // q [T, H*hd], k [T, KV*hd], v [T, KV*hd] = xb · Wᵀ (+ bias)
  K.matmul(rec.pass, { x: a.xb, w: w.wq, bias: w.bq, out: a.q, T });
  rec.unit("attn.k");
  K.matmul(rec.pass, { x: a.xb, w: w.wk, bias: w.bk, out: a.k, T });
  rec.unit("attn.v");
  K.matmul(rec.pass, { x: a.xb, w: w.wv, bias: w.bv, out: a.v, T });
  if (w.qNorm && w.kNorm) {
    // per-head rmsnorm of q and k over hd (in place)
    const norm = (x: BufferRef, weight: BufferRef, heads: number) =>
      K.rmsnorm(rec.pass, {
        x,
        weight,
        out: x,
        rows: T * heads,
        dim: d.hd,
        eps: d.eps,
      });
    norm(a.q, w.qNorm, d.H);
    norm(a.k, w.kNorm, d.KV);
  }
  if (p.seqs) attendEach(p, s.rope, p.seqs);
  else attend(p, s.rope);
  // xb [T, D] = att · Woᵀ (+ bias)
  rec.unit("attn.o");
  K.matmul(rec.pass, { x: a.att, w: w.wo, bias: w.bo, out: a.xb, T });
  residual(p, w.postNorm);
}

/** rope(q), rope(k); k, v → KV cache rows pos0..; att = attention(q, cache). */
function attend(p: LayerPass, style: RopeStyle): void {
  ropeQk(p, style);
  storeKv(p);
  attendCache(p);
}

/** q [T, H*hd], k [T, KV*hd] rotated at positions pos0.. */
function ropeQk(p: LayerPass, style: RopeStyle): void {
  rope(p, style, p.a.q, p.d.H);
  rope(p, style, p.a.k, p.d.KV);
}

/** kCache, vCache [maxSeq, KV*hd]: rows pos0..pos0+T-1 = k, v. */
function storeKv(p: LayerPass): void {
  const { rec, a } = p;
  rec.copy(a.k, { buffer: p.kv.k.buffer, offset: p.kv.at, size: a.k.size });
  rec.copy(a.v, { buffer: p.kv.v.buffer, offset: p.kv.at, size: a.v.size });
}

/** att [T, H*hd] = softmax(q kᵀ * scale, causal) v   (GQA: head h reads kv head h / (H/KV)). */
function attendCache(p: LayerPass): void {
  const { K, rec, a, d, T } = p;
  K.attention(rec.pass, {
    q: a.q,
    kCache: p.kv.k,
    vCache: p.kv.v,
    out: a.att,
    T,
    pos0: p.pos0,
    nHeads: d.H,
    nKvHeads: d.KV,
    headDim: d.hd,
    scale: d.scale,
  });
}

/**
 * {@link attend} per sequence, over its rows of q, k, v and att and its own
 * KV cache. When every sequence's rows start at an aligned offset they are
 * bound in place, and the ropes, the cache copies and the attentions of all
 * sequences are recorded in three groups (two pass breaks per layer);
 * otherwise each sequence's q, k go through scratch at offset 0 and back.
 */
function attendEach(p: LayerPass, style: RopeStyle, seqs: SeqRows): void {
  const { rec, a, d } = p;
  const rows = (r: BufferRef, cols: number, row: number, n: number) => ({
    buffer: r.buffer,
    offset: r.offset + row * cols * 4,
    size: n * cols * 4,
  });
  const one = (s: SeqSlice, q: BufferRef, k: BufferRef, att: BufferRef) => ({
    ...p,
    T: s.T,
    pos0: s.pos0,
    kv: { k: s.k, v: s.v, at: s.pos0 * d.kvDim * 4 },
    a: { ...a, q, k, v: rows(a.v, d.kvDim, s.row, s.T), att },
    seqs: undefined,
  });
  const aligned = (row: number, cols: number) =>
    (row * cols * 4) % seqs.align === 0;
  if (
    seqs.list.every((s) => aligned(s.row, d.qDim) && aligned(s.row, d.kvDim))
  ) {
    const each = seqs.list.map((s) =>
      one(
        s,
        rows(a.q, d.qDim, s.row, s.T),
        rows(a.k, d.kvDim, s.row, s.T),
        rows(a.att, d.qDim, s.row, s.T),
      )
    );
    for (const o of each) ropeQk(o, style);
    for (const o of each) storeKv(o);
    for (const o of each) attendCache(o);
    return;
  }
  for (const s of seqs.list) {
    const q = rows(seqs.q, d.qDim, 0, s.T), k = rows(seqs.k, d.kvDim, 0, s.T);
    const att = rows(seqs.att, d.qDim, 0, s.T);
    rec.copy(rows(a.q, d.qDim, s.row, s.T), q);
    rec.copy(rows(a.k, d.kvDim, s.row, s.T), k);
    attend(one(s, q, k, att), style);
    rec.copy(att, rows(a.att, d.qDim, s.row, s.T));
  }
}

/** x += mlp(rmsnorm(x)) (see `MlpStep` in lib/model/architectures.ts). */
function mlp(p: LayerPass, w: MlpWeights): void {
  const { K, rec, a, d, T } = p;
  rec.unit("mlp.gate");
  normToXb(p, a.x, w.norm); // xb [T, D] = rmsnorm(x) * w
  // hb [T, F] = xb · Wgᵀ, hb2 [T, F] = xb · Wuᵀ, hb = silu(hb) * hb2
  K.matmul(rec.pass, { x: a.xb, w: w.wGate, out: a.hb, T });
  rec.unit("mlp.up");
  K.matmul(rec.pass, { x: a.xb, w: w.wUp, out: a.hb2, T });
  K.siluMul(rec.pass, { gate: a.hb, up: a.hb2, out: a.hb, n: T * d.F });
  // xb [T, D] = hb · Wdᵀ
  rec.unit("mlp.down");
  K.matmul(rec.pass, { x: a.hb, w: w.wDown, out: a.xb, T });
  residual(p, w.postNorm);
}

/** xb = rmsnorm(xb) * post (when the block has one); x += xb. */
function residual(p: LayerPass, post: BufferRef | undefined): void {
  const { K, rec, a, d, T } = p;
  if (post) normToXb(p, a.xb, post);
  K.add(rec.pass, { x: a.x, y: a.xb, out: a.x, n: T * d.D });
}

/**
 * Records the steps of one decoder layer, reading its weights by role.
 *
 * @example
 * ```ts ignore
 * recordLayer({ steps: row.steps, K, rec, a: state.at(T), d, T, pos0, kv }, tensors);
 * K.submit([rec.finish()]);
 * ```
 */
export function recordLayer(p: LayerPass, t: LayerTensors): void {
  for (const s of p.steps) {
    switch (s.step) {
      case "attention":
        attention(p, s, attentionWeights(t, s, p.d));
        break;
      case "mlp":
        mlp(p, mlpWeights(t, s, p.d.F));
        break;
      case "moe":
        if (!p.moe) {
          throw new StrataError(`${t.path}: a moe step needs an expert runner`);
        }
        p.moe.record(p, s, t);
        break;
    }
  }
}

/** What the head records with. */
export interface HeadPass {
  /** The kernels. */
  K: Kernels;
  /** The encoder. */
  rec: Recorder;
  /** The activations sized for T. */
  a: Activations;
  /** Model sizes. */
  d: Dims;
  /** Tokens in this pass. */
  T: number;
  /** Final norm and lm_head. */
  w: HeadWeights;
  /** Pairs to keep. */
  topK: number;
}

/**
 * The head: xLast [D] = x[T-1]; xb[0] = rmsnorm(xLast); logits [V] = xb[0] ·
 * Wlmᵀ; topk = the top-k (value, id) pairs of logits, descending.
 *
 * @example
 * ```ts ignore
 * recordHead({ K, rec, a: state.at(T), d, T, w: head, topK: 64 });
 * ```
 */
export function recordHead(p: HeadPass): void {
  const { K, rec, a, d, T, w } = p;
  rec.copy(
    { buffer: a.x.buffer, offset: (T - 1) * d.D * 4, size: d.D * 4 },
    a.xLast,
  );
  const xn = { ...a.xb, size: d.D * 4 };
  K.rmsnorm(rec.pass, {
    x: a.xLast,
    weight: w.finalNorm,
    out: xn,
    rows: 1,
    dim: d.D,
    eps: d.eps,
  });
  K.matmul(rec.pass, { x: xn, w: w.lmHead, out: a.logits, T: 1 });
  K.topk(rec.pass, { logits: a.logits, out: a.topk, V: d.V, k: p.topK });
}
