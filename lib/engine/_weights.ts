/**
 * The typed weights view: a decoder layer's tensors on the GPU by role
 * (llama2.c's `TransformerWeights`, one layer at a time), and the per-step
 * views the layer steps read (`wq`, `wk`, `wv`, `wo`, `wGate`, `wUp`,
 * `wDown`, norms and biases). Fused matrices (`[q; k; v]`, `[gate; up]`) are
 * split here, by rows, into views of the same GPU buffer: the steps never see
 * whether a family fuses them.
 *
 * @module
 */
import { FormatError, UnsupportedError } from "../errors.ts";
import type { SafetensorsFile } from "../format/safetensors.ts";
import {
  type BufferRef,
  type GpuWeight,
  weightRowBytes,
} from "../gpu/kernels.ts";
import type {
  AttentionStep,
  LayerRole,
  MatrixRole,
  MlpStep,
  VectorRole,
} from "../model/architectures.ts";
import {
  bindLayout,
  layoutOf,
  readImage,
  type TensorLayout,
} from "./_layout.ts";
import type { UploadTarget } from "./reader.ts";

type Bound = Map<string, GpuWeight | BufferRef>;

function isMatrix(t: GpuWeight | BufferRef): t is GpuWeight {
  return "parts" in t;
}

/**
 * One layer's tensors on the GPU, looked up by role: matrices as
 * {@link GpuWeight}, norms and biases as f32 {@link BufferRef}s.
 *
 * @example
 * ```ts ignore
 * import { LayerTensors } from "./_weights.ts";
 * const t = new LayerTensors({ path, bound: bindLayout(layout, buffer), names, align: 256 });
 * const wq = t.matrix("qProj"), bq = t.optional("qBias");
 * ```
 */
export class LayerTensors {
  /** The layer's shard file (for errors). */
  readonly path: string;
  /** The storage-binding offset alignment of the device (bytes). */
  readonly align: number;
  readonly #bound: Bound;
  readonly #names: Partial<Record<LayerRole, string>>;

  /** `bound` = the layer's tensors by name; `names` = their names by role. */
  constructor(o: {
    path: string;
    bound: Bound;
    names: Partial<Record<LayerRole, string>>;
    align: number;
  }) {
    this.path = o.path;
    this.#bound = o.bound;
    this.#names = o.names;
    this.align = o.align;
  }

  #get(role: LayerRole): GpuWeight | BufferRef | undefined {
    const name = this.#names[role];
    return name === undefined ? undefined : this.#bound.get(name);
  }

  /** The 2-D weight of `role`. */
  matrix(role: MatrixRole): GpuWeight {
    const t = this.#get(role);
    if (t === undefined || !isMatrix(t)) {
      throw new FormatError(this.path, `no 2-D weight for ${role}`);
    }
    return t;
  }

  /** The 2-D weight called `name` (tensors without a role of their own: experts). */
  named(name: string): GpuWeight {
    const t = this.#bound.get(name);
    if (t === undefined || !isMatrix(t)) {
      throw new FormatError(this.path, `no 2-D weight ${name}`);
    }
    return t;
  }

  /** The f32 vector of `role`. */
  vector(role: VectorRole): BufferRef {
    const t = this.optional(role);
    if (t === undefined) {
      throw new FormatError(this.path, `no 1-D tensor for ${role}`);
    }
    return t;
  }

  /** The f32 vector of `role`, or undefined when the layer has none. */
  optional(role: VectorRole): BufferRef | undefined {
    const t = this.#get(role);
    if (t !== undefined && isMatrix(t)) {
      throw new FormatError(this.path, `${role} is 2-D, expected 1-D`);
    }
    return t;
  }
}

/** Where a split happens (for the alignment check and its error). */
export interface SplitOptions {
  /** Storage-binding offset alignment in bytes. */
  align: number;
  /** The shard file. */
  path: string;
  /** The fused role. */
  role: string;
}

/**
 * Splits `w` [sum(counts), K] by rows into views of the same buffer: block
 * `b` is rows `counts[0] + … + counts[b-1]` onward. Each view's data (and
 * scales) must start on an `align`-byte boundary, as storage bindings do.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitRows } from "./_weights.ts";
 * const buffer = {} as GPUBuffer; // any buffer: only offsets are computed
 * const w = { dtype: "f32" as const, rows: 6, cols: 64, parts: [
 *   { rowStart: 0, rows: 6, data: { buffer, offset: 512, size: 6 * 256 } },
 * ] };
 * const [a, b] = splitRows(w, [2, 4], { align: 256, path: "f", role: "qkvProj" });
 * assert.equal(a.rows, 2);
 * assert.deepEqual(b.parts[0].data, { buffer, offset: 1024, size: 1024 });
 * ```
 */
export function splitRows(
  w: GpuWeight,
  counts: number[],
  o: SplitOptions,
): GpuWeight[] {
  const { align, path, role } = o;
  const total = counts.reduce((a, n) => a + n, 0);
  if (total !== w.rows) {
    throw new FormatError(
      path,
      `${role} has ${w.rows} rows, expected ${total}`,
    );
  }
  const [rb, sb] = weightRowBytes(w.dtype, w.cols);
  const at = (ref: BufferRef, row: number, rows: number, bytes: number) => {
    const offset = ref.offset + row * bytes;
    if (offset % align !== 0) {
      throw new UnsupportedError(
        path,
        `${role} splits at a row that is not ${align}-byte aligned (offset ${offset}); split it at split time`,
      );
    }
    return {
      buffer: ref.buffer,
      offset,
      size: Math.ceil(rows * bytes / 4) * 4,
    };
  };
  const out: GpuWeight[] = [];
  let start = 0;
  for (const n of counts) {
    const parts = [];
    for (const p of w.parts) {
      const r0 = Math.max(start, p.rowStart);
      const r1 = Math.min(start + n, p.rowStart + p.rows);
      if (r1 <= r0) continue;
      parts.push({
        rowStart: r0 - start,
        rows: r1 - r0,
        data: at(p.data, r0 - p.rowStart, r1 - r0, rb),
        scales: p.scales
          ? at(p.scales, r0 - p.rowStart, r1 - r0, sb)
          : undefined,
      });
    }
    out.push({ dtype: w.dtype, rows: n, cols: w.cols, parts });
    start += n;
  }
  return out;
}

/** What the attention step reads (shapes with H*hd = qDim, KV*hd = kvDim). */
export interface AttentionWeights {
  /** [D] rmsnorm weight before the block. */
  norm: BufferRef;
  /** [H*hd, D]. */
  wq: GpuWeight;
  /** [KV*hd, D]. */
  wk: GpuWeight;
  /** [KV*hd, D]. */
  wv: GpuWeight;
  /** [H*hd] (optional). */
  bq?: BufferRef;
  /** [KV*hd] (optional). */
  bk?: BufferRef;
  /** [KV*hd] (optional). */
  bv?: BufferRef;
  /** [hd] per-head norm of q (qkNorm). */
  qNorm?: BufferRef;
  /** [hd] per-head norm of k (qkNorm). */
  kNorm?: BufferRef;
  /** [D, H*hd]. */
  wo: GpuWeight;
  /** [D] (optional). */
  bo?: BufferRef;
  /** [D] rmsnorm weight of the block's output (postNorm). */
  postNorm?: BufferRef;
}

/**
 * The attention step's weights, `[q; k; v]` split when fused.
 *
 * @example
 * ```ts ignore
 * const w = attentionWeights(tensors, step, { qDim: H * hd, kvDim: KV * hd });
 * ```
 */
export function attentionWeights(
  t: LayerTensors,
  s: AttentionStep,
  dims: { qDim: number; kvDim: number },
): AttentionWeights {
  const counts = [dims.qDim, dims.kvDim, dims.kvDim];
  const [wq, wk, wv] = s.qkv === "fused"
    ? splitRows(t.matrix("qkvProj"), counts, {
      align: t.align,
      path: t.path,
      role: "qkvProj",
    })
    : [t.matrix("qProj"), t.matrix("kProj"), t.matrix("vProj")];
  // biases are separate tensors either way: the split writes a fused
  // [q; k; v] bias as three slices (see stepTensors)
  const bq = t.optional("qBias"), bk = t.optional("kBias");
  const bv = t.optional("vBias");
  return {
    norm: t.vector("attnNorm"),
    wq,
    wk,
    wv,
    bq,
    bk,
    bv,
    qNorm: s.qkNorm ? t.vector("qNorm") : undefined,
    kNorm: s.qkNorm ? t.vector("kNorm") : undefined,
    wo: t.matrix("oProj"),
    bo: t.optional("oBias"),
    postNorm: s.postNorm ? t.vector("attnPostNorm") : undefined,
  };
}

/** What the MLP step reads. */
export interface MlpWeights {
  /** [D] rmsnorm weight before the block. */
  norm: BufferRef;
  /** [F, D]. */
  wGate: GpuWeight;
  /** [F, D]. */
  wUp: GpuWeight;
  /** [D, F]. */
  wDown: GpuWeight;
  /** [D] rmsnorm weight of the block's output (postNorm). */
  postNorm?: BufferRef;
}

/**
 * The MLP step's weights, `[gate; up]` split when fused.
 *
 * @example
 * ```ts ignore
 * const w = mlpWeights(tensors, step, F);
 * ```
 */
export function mlpWeights(t: LayerTensors, s: MlpStep, F: number): MlpWeights {
  const [wGate, wUp] = s.gateUp === "fused"
    ? splitRows(t.matrix("gateUpProj"), [F, F], {
      align: t.align,
      path: t.path,
      role: "gateUpProj",
    })
    : [t.matrix("gateProj"), t.matrix("upProj")];
  return {
    norm: t.vector("mlpNorm"),
    wGate,
    wUp,
    wDown: t.matrix("downProj"),
    postNorm: s.postNorm ? t.vector("mlpPostNorm") : undefined,
  };
}

/** The head's weights. */
export interface HeadWeights {
  /** [D] final rmsnorm weight. */
  finalNorm: BufferRef;
  /** [V, D] output projection (the embedding matrix when tied). */
  lmHead: GpuWeight;
}

/**
 * The head's weights from its bound tensors (`lmHead` may come from the
 * embedding file when tied).
 *
 * @example
 * ```ts ignore
 * const head = headWeights({ bound, finalNorm: row.finalNorm, lmHead: row.lmHead, path });
 * ```
 */
export function headWeights(o: {
  bound: Bound;
  finalNorm: string;
  lmHead: string;
  path: string;
}): HeadWeights {
  const n = o.bound.get(o.finalNorm), m = o.bound.get(o.lmHead);
  if (n === undefined || isMatrix(n)) {
    throw new FormatError(o.path, `${o.finalNorm} is missing or not 1-D`);
  }
  if (m === undefined || !isMatrix(m)) {
    throw new FormatError(o.path, `${o.lmHead} is missing or not 2-D`);
  }
  return { finalNorm: n, lmHead: m };
}

/**
 * Uploads the tensors of `layout` from `file` into new buffers (as many as
 * maxBufferSize requires; pushed onto `owned`) and binds them by name:
 * resident weights that never go through the ring (the head).
 *
 * @example
 * ```ts ignore
 * const bound = await uploadResident({ target, file, layout, label: "head", owned: buffers });
 * ```
 */
export async function uploadResident(o: {
  target: UploadTarget<GPUBuffer>;
  file: SafetensorsFile;
  layout: TensorLayout;
  label: string;
  owned: GPUBuffer[];
}): Promise<Bound> {
  const { target, file, layout, label, owned } = o;
  const bufs: GPUBuffer[] = [];
  for (let sgm = 0; sgm < layout.segments.length; sgm++) {
    const size = layout.segments[sgm];
    const buf = target.create(size, `${label}.${sgm}`);
    owned.push(buf);
    bufs.push(buf);
    const image = new Uint8Array(size);
    await readImage(file, layout, image, sgm);
    for (let off = 0; off < size; off += 1 << 24) {
      target.write(
        buf,
        off,
        image.subarray(off, Math.min(size, off + (1 << 24))),
      );
      target.flush?.();
    }
  }
  return bindLayout(layout, bufs);
}

/** The head's layout, and the embedding's when the model ties lm_head to it. */
export interface HeadLayouts {
  /** final norm (+ lm_head) in head.safetensors. */
  head: TensorLayout;
  /** The embedding matrix as lm_head (tied models), else null. */
  tied: TensorLayout | null;
}

/** Tensor names of the head (from the architecture row). */
export interface HeadNames {
  /** Final norm weight. */
  finalNorm: string;
  /** Output projection. */
  lmHead: string;
  /** Token embedding (lm_head when tied). */
  embed: string;
}

/**
 * Lays out the head file (and the embedding when tied: head.safetensors has
 * no lm_head); a missing final norm is a FormatError naming the file.
 *
 * @example
 * ```ts ignore
 * const hl = headLayouts({ headFile, embedFile, names: row, maxBinding, maxBuffer });
 * ```
 */
export function headLayouts(o: {
  headFile: SafetensorsFile;
  embedFile: SafetensorsFile;
  names: HeadNames;
  maxBinding: number;
  maxBuffer: number;
}): HeadLayouts {
  const { names: n, maxBinding, maxBuffer } = o;
  const head = layoutOf(
    o.headFile,
    [n.finalNorm, n.lmHead],
    maxBinding,
    maxBuffer,
  );
  if (!head.entries.has(n.finalNorm)) {
    throw new FormatError(o.headFile.path, `missing tensor ${n.finalNorm}`);
  }
  const tied = head.entries.has(n.lmHead)
    ? null
    : layoutOf(o.embedFile, [n.embed], maxBinding, maxBuffer);
  return { head, tied };
}

/**
 * Uploads the head (and the tied embedding) into buffers it adds to
 * `owned`, and returns its weights.
 *
 * @example
 * ```ts ignore
 * const head = await uploadHead({ target, headFile, embedFile, layouts, names: row, owned });
 * ```
 */
export async function uploadHead(o: {
  target: UploadTarget<GPUBuffer>;
  headFile: SafetensorsFile;
  embedFile: SafetensorsFile;
  layouts: HeadLayouts;
  names: HeadNames;
  owned: GPUBuffer[];
}): Promise<HeadWeights> {
  const { target, names: n, owned } = o;
  const bound = await uploadResident({
    target,
    file: o.headFile,
    layout: o.layouts.head,
    label: "head",
    owned,
  });
  if (o.layouts.tied) {
    const tiedW = await uploadResident({
      target,
      file: o.embedFile,
      layout: o.layouts.tied,
      label: "lm_head(tied)",
      owned,
    });
    const lm = tiedW.get(n.embed);
    if (lm) bound.set(n.lmHead, lm);
  }
  return headWeights({
    bound,
    finalNorm: n.finalNorm,
    lmHead: n.lmHead,
    path: o.headFile.path,
  });
}
