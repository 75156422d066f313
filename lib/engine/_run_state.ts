/**
 * The run state: every activation buffer of a forward pass, with its shape
 * (llama2.c's `RunState`), the readback buffers, and the bytes they take
 * (counted by the residency plan before anything is allocated).
 *
 * Notation: T = tokens in this pass (≤ maxT), D = hiddenSize, H = numHeads,
 * KV = numKvHeads, hd = headDim, F = intermediateSize, V = vocabSize,
 * R = rotary dimensions.
 *
 * @module
 */
import type { BufferRef } from "../gpu/kernels.ts";
import { type ModelConfig, rotaryDim } from "../model/config.ts";
import { ropeInvFreq } from "../model/rope.ts";

/** The sizes of a model the steps compute with. */
export interface Dims {
  /** hiddenSize. */
  D: number;
  /** Query heads. */
  H: number;
  /** Key/value heads. */
  KV: number;
  /** Head dimension. */
  hd: number;
  /** intermediateSize. */
  F: number;
  /** vocabSize. */
  V: number;
  /** Rotated dimensions of each head. */
  R: number;
  /** H * hd. */
  qDim: number;
  /** KV * hd. */
  kvDim: number;
  /** RMSNorm epsilon. */
  eps: number;
  /** Attention softmax scale 1/√hd. */
  scale: number;
}

/**
 * The {@link Dims} of a config.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dimsOf } from "./_run_state.ts";
 * import { normalizeConfig } from "../model/config.ts";
 * const cfg = normalizeConfig({ model_type: "llama", hidden_size: 64, intermediate_size: 128,
 *   num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 100 }, "c");
 * const d = dimsOf(cfg);
 * assert.deepEqual([d.qDim, d.kvDim, d.R, d.scale], [64, 32, 16, 0.25]);
 * ```
 */
export function dimsOf(cfg: ModelConfig): Dims {
  const hd = cfg.headDim;
  return {
    D: cfg.hiddenSize,
    H: cfg.numHeads,
    KV: cfg.numKvHeads,
    hd,
    F: cfg.intermediateSize,
    V: cfg.vocabSize,
    R: rotaryDim(cfg),
    qDim: cfg.numHeads * hd,
    kvDim: cfg.numKvHeads * hd,
    eps: cfg.rmsNormEps,
    scale: 1 / Math.sqrt(hd),
  };
}

/** The activation buffers of a pass (f32 unless noted). */
export type Activation =
  | "x"
  | "xb"
  | "q"
  | "k"
  | "v"
  | "att"
  | "hb"
  | "hb2"
  | "xLast"
  | "logits"
  | "topk"
  | "invFreq";

const ACTIVATIONS: readonly Activation[] = [
  "x",
  "xb",
  "q",
  "k",
  "v",
  "att",
  "hb",
  "hb2",
  "xLast",
  "logits",
  "topk",
  "invFreq",
];

/** `f` of every activation, by name. */
function eachActivation<V>(f: (name: Activation) => V): Record<Activation, V> {
  const out: Partial<Record<Activation, V>> = {};
  for (const name of ACTIVATIONS) out[name] = f(name);
  return out as Record<Activation, V>;
}

/** [rows, cols] of an activation; rows "T" = one row per token of the pass. */
export type Shape = readonly ["T" | 1, number];

/**
 * The shape table: every activation and its shape, as in the math.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dimsOf, shapeTable } from "./_run_state.ts";
 * import { normalizeConfig } from "../model/config.ts";
 * const cfg = normalizeConfig({ model_type: "llama", hidden_size: 64, intermediate_size: 128,
 *   num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100 }, "c");
 * assert.deepEqual(shapeTable(dimsOf(cfg), 8).hb, ["T", 128]);
 * ```
 */
export function shapeTable(d: Dims, topK: number): Record<Activation, Shape> {
  return {
    x: ["T", d.D], //                 residual stream
    xb: ["T", d.D], //                normed x, then a block's output
    q: ["T", d.qDim], //              queries [T, H*hd]
    k: ["T", d.kvDim], //             this pass's keys [T, KV*hd] (→ KV cache)
    v: ["T", d.kvDim], //             this pass's values [T, KV*hd] (→ KV cache)
    att: ["T", d.qDim], //            attention output [T, H*hd]
    hb: ["T", d.F], //                gate, then silu(gate) · up
    hb2: ["T", d.F], //               up
    xLast: [1, d.D], //               last row of x
    logits: [1, d.V], //
    topk: [1, 2 * topK], //           k × (f32 value, u32 id)
    invFreq: [1, Math.max(1, d.R / 2)], // RoPE inverse frequencies [R/2]
  };
}

/**
 * Bytes of a GPU buffer holding `n` bytes: a multiple of 256 (the storage
 * offset alignment), at least 256.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { alignUp } from "./_run_state.ts";
 * assert.deepEqual([alignUp(1), alignUp(256), alignUp(257)], [256, 256, 512]);
 * ```
 */
export const alignUp = (n: number): number =>
  Math.max(256, Math.ceil(n / 256) * 256);
const STORAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST

/** What {@link runStateBytes} counts. */
export interface RunStateBytes {
  /** Activations, readback, Params arena and kernel scratch: the plan's "activations". */
  activationBytes: number;
  /** The kernel scratch part of it (checked against the real scratch after every pass). */
  scratchEstimate: number;
}

/**
 * The GPU bytes of a run state for `maxT` tokens, plus what the kernels keep
 * beside it: the Params arena (24 slices of 256 bytes per layer, in 256 KiB
 * chunks) and scratch (attention scores for maxT tokens over maxSeqLen
 * positions, ~4 bytes per head and position, doubled for the pool's growth;
 * top-k candidates).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runStateBytes } from "./_run_state.ts";
 * import { normalizeConfig } from "../model/config.ts";
 * const cfg = normalizeConfig({ model_type: "llama", hidden_size: 64, intermediate_size: 128,
 *   num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100 }, "c");
 * const b = runStateBytes(cfg, { maxT: 4, topK: 8, maxSeqLen: 16 });
 * assert.ok(b.activationBytes > b.scratchEstimate);
 * ```
 */
export function runStateBytes(
  cfg: ModelConfig,
  o: { maxT: number; topK: number; maxSeqLen: number },
): RunStateBytes {
  let bytes = alignUp(o.topK * 8); // readback
  for (const [rows, cols] of Object.values(shapeTable(dimsOf(cfg), o.topK))) {
    bytes += alignUp((rows === "T" ? o.maxT : 1) * cols * 4);
  }
  const arena = Math.ceil((cfg.numLayers + 2) * 24 * 256 / (256 * 1024)) *
    256 * 1024;
  const scratchEstimate = 2 * o.maxT * o.maxSeqLen * cfg.numHeads * 4 +
    2 * 64 * o.topK * 8 * 2;
  return { activationBytes: bytes + arena + scratchEstimate, scratchEstimate };
}

/** f32 views of the activations sized for one pass of T tokens. */
export type Activations = Readonly<Record<Activation, BufferRef>>;

/**
 * The activation buffers for up to `maxT` tokens and the readback buffers.
 *
 * @example
 * ```ts ignore
 * const state = RunState.create(device, cfg, { maxT: 64, topK: 64 });
 * const a = state.at(T); // a.x [T, D], a.q [T, H*hd], …
 * ```
 */
export class RunState {
  /** Largest T per pass. */
  readonly maxT: number;
  /** Top-k pairs per readback. */
  readonly topK: number;
  /** Shapes of the activations. */
  readonly shapes: Readonly<Record<Activation, Shape>>;
  /** The top-k pairs' readback buffer. */
  readonly readback: GPUBuffer;
  readonly #device: GPUDevice;
  readonly #buffers: Record<Activation, GPUBuffer>;
  #logitsReadback: GPUBuffer | null = null;

  private constructor(
    device: GPUDevice,
    maxT: number,
    topK: number,
    shapes: Record<Activation, Shape>,
    buffers: Record<Activation, GPUBuffer>,
    readback: GPUBuffer,
  ) {
    this.#device = device;
    this.maxT = maxT;
    this.topK = topK;
    this.shapes = shapes;
    this.#buffers = buffers;
    this.readback = readback;
  }

  /** Allocates every activation and writes the RoPE frequencies. */
  static create(
    device: GPUDevice,
    cfg: ModelConfig,
    o: { maxT: number; topK: number },
  ): RunState {
    const shapes = shapeTable(dimsOf(cfg), o.topK);
    const buffers = eachActivation((name) => {
      const [rows, cols] = shapes[name];
      return device.createBuffer({
        label: name,
        size: alignUp((rows === "T" ? o.maxT : 1) * cols * 4),
        usage: STORAGE,
      });
    });
    const inv = Float32Array.from(ropeInvFreq(cfg));
    if (inv.length > 0) device.queue.writeBuffer(buffers.invFreq, 0, inv);
    const readback = device.createBuffer({
      label: "readback",
      size: alignUp(o.topK * 8),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    return new RunState(device, o.maxT, o.topK, shapes, buffers, readback);
  }

  /** The activations sized for a pass of `T` tokens. */
  at(T: number): Activations {
    return eachActivation((name) => {
      const [rows, cols] = this.shapes[name];
      const size = (rows === "T" ? T : 1) * cols * 4;
      return { buffer: this.#buffers[name], offset: 0, size };
    });
  }

  /** The readback buffer of all V logits, created on first use; `added` = bytes it added. */
  logitsReadback(): { buffer: GPUBuffer; added: number } {
    if (this.#logitsReadback) return { buffer: this.#logitsReadback, added: 0 };
    const size = alignUp(this.shapes.logits[1] * 4);
    this.#logitsReadback = this.#device.createBuffer({
      label: "readback.logits",
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    return { buffer: this.#logitsReadback, added: size };
  }

  /** Frees every buffer. */
  destroy(): void {
    for (const b of Object.values(this.#buffers)) b.destroy();
    this.readback.destroy();
    this.#logitsReadback?.destroy();
  }
}
