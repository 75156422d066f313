/**
 * Several sequences in one forward pass: the GPU side of batched generation
 * and of speculative verification.
 *
 * The pass's T rows are the sequences' tokens concatenated, so every matmul
 * of a layer (the weight upload of a streamed layer) serves them all.
 * Attention runs per sequence over its own KV cache (`attendEach` in
 * `_steps.ts`, with the q/k/att scratch held here). The head runs on the
 * rows asked for (the last row of a sequence to sample its next token, or
 * every verified row of a speculative pass): R rows of x → rmsnorm → lm_head
 * → R top-k lists → ONE readback of R·k pairs (plus R·V logits when asked).
 *
 * Notation as in `_run_state.ts`; R = head rows of the pass (≤ `rows`).
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { BufferRef, Kernels } from "../gpu/kernels.ts";
import type { ModelConfig } from "../model/config.ts";
import type { Activations, Dims } from "./_run_state.ts";
import { alignUp, dimsOf } from "./_run_state.ts";
import type { Recorder, SeqRows } from "./_steps.ts";
import type { HeadWeights } from "./_weights.ts";
import type { KvCache } from "./kv_cache.ts";

/** One sequence's part of a pass. */
export interface SeqInput {
  /** The sequence's KV cache (its tokens go to positions kv.length..). */
  kv: KvCache;
  /** Its tokens in this pass (≥ 1). */
  ids: number[];
  /** Indices into `ids` of the rows whose top-k (and logits) to return. */
  heads: readonly number[];
}

/** The top-k pairs of one row's logits, descending. */
export interface RowTopK {
  /** Logit values. */
  values: Float32Array;
  /** Token ids. */
  ids: Uint32Array;
}

/** What a pass returns for one sequence: per head row, in `heads` order. */
export interface SeqOutput {
  /** Top-k of each head row. */
  topk: RowTopK[];
  /** All V logits of each head row (when asked). */
  logits?: Float32Array[];
}

/** The buffers of a {@link SequenceState}. */
type Buffers = Record<
  "q" | "k" | "att" | "xr" | "xn" | "logits" | "topk",
  GPUBuffer
>;

/**
 * Usage errors of a multi-sequence pass: 1..`rows` head rows, each inside
 * its sequence; no empty sequence; no KV cache twice.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkSeqs } from "./_sequences.ts";
 * import type { KvCache } from "./kv_cache.ts";
 * const kv = {} as KvCache;
 * checkSeqs([{ kv, ids: [1, 2], heads: [1] }], 4);
 * assert.throws(() => checkSeqs([{ kv, ids: [1], heads: [1] }], 4));
 * ```
 */
export function checkSeqs(seqs: readonly SeqInput[], rows: number): void {
  const heads = seqs.reduce((n, s) => n + s.heads.length, 0);
  if (heads < 1 || heads > rows) {
    throw new UsageError(
      `forwardSeqs: 1..${rows} head rows per pass, got ${heads}`,
    );
  }
  if (new Set(seqs.map((s) => s.kv)).size !== seqs.length) {
    throw new UsageError("forwardSeqs: a KV cache appears twice in a pass");
  }
  for (const s of seqs) {
    if (s.ids.length < 1) {
      throw new UsageError("forwardSeqs: a sequence has no tokens");
    }
    if (
      s.heads.some((h) => !Number.isInteger(h) || h < 0 || h >= s.ids.length)
    ) {
      throw new UsageError("forwardSeqs: a head row is outside its sequence");
    }
  }
}

const STORAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST

/** Sizes of a {@link SequenceState}. */
export interface SequenceSizes {
  /** Rows per pass (maxT). */
  maxT: number;
  /** Head rows per pass at most (R). */
  rows: number;
  /** Top-k pairs per row. */
  topK: number;
  /** Sequences per pass at most. */
  sequences: number;
  /** Decoder layers (for the Params arena). */
  layers: number;
}

/**
 * The sizes of a Forward's multi-sequence state, or null when it runs one
 * sequence with one head row (the plain pass needs none).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sequenceSizes } from "./_sequences.ts";
 * assert.equal(sequenceSizes({ maxT: 64, topK: 64, layers: 2 }), null);
 * assert.equal(sequenceSizes({ sequences: 4, maxT: 64, topK: 64, layers: 2 })?.rows, 4);
 * ```
 */
export function sequenceSizes(o: {
  sequences?: number;
  headRows?: number;
  maxT: number;
  topK: number;
  layers: number;
}): SequenceSizes | null {
  const sequences = o.sequences ?? 1;
  if (!Number.isSafeInteger(sequences) || sequences < 1) {
    throw new UsageError(
      `sequences must be a positive integer, got ${sequences}`,
    );
  }
  const rows = Math.min(o.headRows ?? sequences, o.maxT);
  return sequences > 1 || rows > 1
    ? { maxT: o.maxT, rows, topK: o.topK, sequences, layers: o.layers }
    : null;
}

/**
 * Splits the rows a multi-sequence pass read back into each sequence's
 * outputs, in order, and advances each sequence's KV cache length.
 *
 * @example
 * ```ts ignore
 * const out = splitOutputs(many, seq.read(rows.length, V, logitsTo));
 * ```
 */
export function splitOutputs(
  many: readonly SeqInput[],
  got: { topk: RowTopK[]; logits?: Float32Array[] },
): SeqOutput[] {
  const out: SeqOutput[] = [];
  let r = 0;
  for (const s of many) {
    const n = s.heads.length;
    out.push({
      topk: got.topk.slice(r, r + n),
      logits: got.logits?.slice(r, r + n),
    });
    r += n;
    s.kv.length += s.ids.length;
  }
  return out;
}

/**
 * GPU bytes a {@link SequenceState} takes: q/k/att scratch for maxT rows,
 * the head's R rows (x, normed x, logits, top-k), the top-k readback and the
 * Params the per-sequence attention adds (≤ 8 slices of 256 bytes per
 * sequence per layer).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sequenceStateBytes } from "./_sequences.ts";
 * import { normalizeConfig } from "../model/config.ts";
 * const cfg = normalizeConfig({ model_type: "llama", hidden_size: 64, intermediate_size: 128,
 *   num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100 }, "c");
 * const one = sequenceStateBytes(cfg, { maxT: 8, rows: 1, topK: 8, sequences: 1, layers: 2 });
 * const many = sequenceStateBytes(cfg, { maxT: 8, rows: 8, topK: 8, sequences: 8, layers: 2 });
 * assert.ok(many > one);
 * ```
 */
export function sequenceStateBytes(
  cfg: ModelConfig,
  s: SequenceSizes,
): number {
  const d = dimsOf(cfg);
  const stride = alignUp(s.topK * 8);
  return alignUp(s.maxT * d.qDim * 4) * 2 + alignUp(s.maxT * d.kvDim * 4) +
    alignUp(s.rows * d.D * 4) * 2 + alignUp(s.rows * d.V * 4) +
    stride * s.rows * 2 + s.sequences * (s.layers + 2) * 8 * 256;
}

/**
 * The buffers of multi-sequence passes and the recording of their head.
 *
 * @example
 * ```ts ignore
 * const st = SequenceState.create(device, cfg, { maxT: 64, rows: 16, topK: 64, sequences: 16, layers: L });
 * const seqs = st.layer(l, slices); // for recordLayer's `seqs`
 * st.recordHead({ K, rec, a, d, w: head, rows: [3, 7] });
 * ```
 */
export class SequenceState {
  /** Sizes. */
  readonly sizes: SequenceSizes;
  readonly #device: GPUDevice;
  readonly #b: Buffers;
  readonly #readback: GPUBuffer;
  readonly #stride: number;
  #logitsReadback: GPUBuffer | null = null;

  private constructor(
    device: GPUDevice,
    sizes: SequenceSizes,
    b: Buffers,
    readback: GPUBuffer,
  ) {
    this.#device = device;
    this.sizes = sizes;
    this.#b = b;
    this.#readback = readback;
    this.#stride = alignUp(sizes.topK * 8);
  }

  /** Allocates the scratch, head rows and readback. */
  static create(
    device: GPUDevice,
    cfg: ModelConfig,
    s: SequenceSizes,
  ): SequenceState {
    const d = dimsOf(cfg);
    const stride = alignUp(s.topK * 8);
    const buf = (label: string, size: number) =>
      device.createBuffer({ label, size: alignUp(size), usage: STORAGE });
    const b = {
      q: buf("seq.q", s.maxT * d.qDim * 4),
      k: buf("seq.k", s.maxT * d.kvDim * 4),
      att: buf("seq.att", s.maxT * d.qDim * 4),
      xr: buf("seq.x_rows", s.rows * d.D * 4),
      xn: buf("seq.xn_rows", s.rows * d.D * 4),
      logits: buf("seq.logits", s.rows * d.V * 4),
      topk: buf("seq.topk", s.rows * stride),
    };
    const readback = device.createBuffer({
      label: "seq.readback",
      size: s.rows * stride,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    return new SequenceState(device, s, b, readback);
  }

  /** The `seqs` of a layer pass: `list` with this state's scratch. */
  layer(list: SeqRows["list"]): SeqRows {
    const ref = (b: GPUBuffer): BufferRef => ({
      buffer: b,
      offset: 0,
      size: b.size,
    });
    return {
      list,
      q: ref(this.#b.q),
      k: ref(this.#b.k),
      att: ref(this.#b.att),
      align: this.#device.limits.minStorageBufferOffsetAlignment,
    };
  }

  /**
   * Records the head over pass rows `rows` (R ≤ sizes.rows):
   * xr [R, D] = x[rows]; xn = rmsnorm(xr); logits [R, V] = xn · Wlmᵀ; per
   * row r: logits[r] → a.logits → top-k → topk row r; top-k rows (and the
   * logits, into `logitsTo`) → readback buffers.
   */
  recordHead(o: {
    K: Kernels;
    rec: Recorder;
    a: Activations;
    d: Dims;
    w: HeadWeights;
    rows: readonly number[];
    logitsTo?: GPUBuffer;
  }): void {
    const { K, rec, a, d, w, rows } = o;
    const R = rows.length;
    if (R < 1 || R > this.sizes.rows) {
      throw new UsageError(
        `a pass may read back 1..${this.sizes.rows} rows, got ${R}`,
      );
    }
    const b = this.#b;
    const xr = { buffer: b.xr, offset: 0, size: R * d.D * 4 };
    const xn = { buffer: b.xn, offset: 0, size: R * d.D * 4 };
    const logits = { buffer: b.logits, offset: 0, size: R * d.V * 4 };
    // x rows → xr, one copy per run of consecutive rows
    for (let r = 0; r < R;) {
      let n = 1;
      while (r + n < R && rows[r + n] === rows[r] + n) n++;
      rec.copy(
        {
          buffer: a.x.buffer,
          offset: a.x.offset + rows[r] * d.D * 4,
          size: n * d.D * 4,
        },
        { buffer: b.xr, offset: r * d.D * 4, size: n * d.D * 4 },
      );
      r += n;
    }
    K.rmsnorm(rec.pass, {
      x: xr,
      weight: w.finalNorm,
      out: xn,
      rows: R,
      dim: d.D,
      eps: d.eps,
    });
    K.matmul(rec.pass, { x: xn, w: w.lmHead, out: logits, T: R });
    const k = this.sizes.topK;
    // each row's logits bound in place when their offsets are aligned, else
    // copied to a.logits first
    const inPlace =
      (d.V * 4) % this.#device.limits.minStorageBufferOffsetAlignment === 0;
    for (let r = 0; r < R; r++) {
      const row = { buffer: b.logits, offset: r * d.V * 4, size: d.V * 4 };
      if (!inPlace) rec.copy(row, { ...a.logits, size: d.V * 4 });
      K.topk(rec.pass, {
        logits: inPlace ? row : a.logits,
        out: { buffer: b.topk, offset: r * this.#stride, size: k * 8 },
        V: d.V,
        k,
      });
    }
    rec.copy({ buffer: b.topk, offset: 0, size: R * this.#stride }, {
      buffer: this.#readback,
      offset: 0,
      size: R * this.#stride,
    });
    if (o.logitsTo) {
      rec.copy(logits, { buffer: o.logitsTo, offset: 0, size: logits.size });
    }
  }

  /** The readback of all logits for `rows` rows, (re)created when too small; `added` = bytes it added. */
  logitsReadback(
    rows: number,
    V: number,
  ): { buffer: GPUBuffer; added: number } {
    const size = alignUp(rows * V * 4);
    const old = this.#logitsReadback;
    if (old && old.size >= size) return { buffer: old, added: 0 };
    old?.destroy();
    this.#logitsReadback = this.#device.createBuffer({
      label: "seq.readback.logits",
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    return { buffer: this.#logitsReadback, added: size - (old?.size ?? 0) };
  }

  /** Maps the readback (and `logits`) after the pass was submitted. */
  map(logits?: GPUBuffer): Promise<unknown> {
    return Promise.all([
      this.#readback.mapAsync(GPUMapMode.READ),
      logits?.mapAsync(GPUMapMode.READ),
    ]);
  }

  /** Reads the R top-k rows (and logits) once mapped, and unmaps. */
  read(
    R: number,
    V: number,
    logits?: GPUBuffer,
  ): { topk: RowTopK[]; logits?: Float32Array[] } {
    const k = this.sizes.topK;
    const raw = this.#readback.getMappedRange(0, R * this.#stride).slice(0);
    this.#readback.unmap();
    const topk: RowTopK[] = [];
    for (let r = 0; r < R; r++) {
      const f = new Float32Array(raw, r * this.#stride, 2 * k);
      const u = new Uint32Array(raw, r * this.#stride, 2 * k);
      const values = new Float32Array(k), ids = new Uint32Array(k);
      for (let i = 0; i < k; i++) {
        values[i] = f[2 * i];
        ids[i] = u[2 * i + 1];
      }
      topk.push({ values, ids });
    }
    if (!logits) return { topk };
    const all = new Float32Array(logits.getMappedRange(0, R * V * 4).slice(0));
    logits.unmap();
    const rows: Float32Array[] = [];
    for (let r = 0; r < R; r++) rows.push(all.subarray(r * V, (r + 1) * V));
    return { topk, logits: rows };
  }

  /** Frees every buffer. */
  destroy(): void {
    for (const b of Object.values(this.#b)) b.destroy();
    this.#readback.destroy();
    this.#logitsReadback?.destroy();
  }
}
