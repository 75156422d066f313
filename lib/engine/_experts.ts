/**
 * The expert store of a mixture-of-experts model: every routed expert of
 * every sparse layer as its own byte range of its layer's shard (its three
 * tensors, see `stepTensors` in lib/model/architectures.ts), laid out on its
 * own (lib/engine/_layout.ts), and a GPU cache of expert slots with LRU
 * eviction. When the cache holds every expert, all are uploaded once at
 * start and nothing moves afterwards; otherwise `ensure` reads and uploads
 * only the experts a layer's router chose (misses), and `prefetch` starts
 * reading the experts a layer chose at the previous token before its router
 * has run.
 *
 * Uploads: where shard files can be memory-mapped (lib/engine/_mmap.ts),
 * each layer's file is mapped once for the store's life and each tensor of
 * an expert is written straight from the mapping to its offset in the slot
 * (no host image, as the layer ring does). Otherwise an expert is read into
 * a host image taken from a pool of at most {@link HEAP_IMAGES} slot-sized
 * images, reused across loads (a fresh image per load costs its first-touch
 * page faults every time); a load waits for a free image, and returns it once
 * its `writeBuffer` calls have returned (they copy `data` at call time).
 * Either way the bytes go in 1 MiB `writeBuffer` pieces with a submit every
 * 16 MiB when the expert is larger than 32 MiB, as the ring uploads.
 *
 * Ordering: a slot is only rewritten (queue.writeBuffer) when no recorded but
 * unsubmitted command reads it: the runner submits a layer's expert work
 * before the next `ensure`, and writes are queue-ordered after earlier
 * submits.
 *
 * @module
 */
import type { SafetensorsFile } from "../format/safetensors.ts";
import type { BufferRef, GpuWeight } from "../gpu/kernels.ts";
import { layerTensors } from "../model/tensors.ts";
import type { ModelConfig } from "../model/config.ts";
import { StrataError, UnsupportedError } from "../errors.ts";
import { decodeFloats } from "./_decode.ts";
import { mapFile, type MappedFile } from "./_mmap.ts";
import {
  bindLayout,
  layoutOf,
  readImage,
  type TensorLayout,
} from "./_layout.ts";
import { pieceWriter, type UploadTarget, writeMapped } from "./_upload.ts";
import { type PlanInput, planResidency, type ResidencyPlan } from "./plan.ts";

/** One expert's weights on the GPU. */
export interface ExpertWeights {
  /** [Fe, D]. */
  wGate: GpuWeight;
  /** [Fe, D]. */
  wUp: GpuWeight;
  /** [D, Fe]. */
  wDown: GpuWeight;
}

/** The experts of every sparse layer, laid out (headers only, nothing read). */
export interface ExpertLayouts {
  /** Per layer: one layout per expert (null for a dense layer). */
  layouts: (TensorLayout[] | null)[];
  /** Per layer: the tensor names of each expert, in role order gate, up, down. */
  names: (string[][] | null)[];
  /** Bytes of the largest expert (one cache slot). */
  slotBytes: number;
  /** Bytes of all experts together. */
  totalBytes: number;
  /** Experts of all sparse layers together. */
  count: number;
}

/**
 * Lays out each expert of each sparse layer of `files` (one per layer).
 *
 * @example
 * ```ts ignore
 * const ex = expertLayouts(cfg, files, gpu.limits);
 * console.log(ex.count, ex.slotBytes);
 * ```
 */
export function expertLayouts(
  cfg: ModelConfig,
  files: SafetensorsFile[],
  limits: { maxStorageBufferBindingSize: number; maxBufferSize: number },
): ExpertLayouts {
  const layouts: (TensorLayout[] | null)[] = [];
  const names: (string[][] | null)[] = [];
  let slotBytes = 0, totalBytes = 0, count = 0;
  files.forEach((file, l) => {
    const per: string[][] = [];
    for (const t of layerTensors(cfg, l)) {
      if (t.expert === undefined) continue;
      (per[t.expert] ??= []).push(t.name);
    }
    if (per.length === 0) {
      layouts.push(null);
      names.push(null);
      return;
    }
    const ls = per.map((n) => {
      const lay = layoutOf(
        file,
        n,
        limits.maxStorageBufferBindingSize,
        limits.maxBufferSize,
      );
      if (lay.segments.length > 1) {
        throw new UnsupportedError(
          file.path,
          `an expert of layer ${l} needs more than one GPU buffer`,
        );
      }
      slotBytes = Math.max(slotBytes, lay.bytes);
      totalBytes += lay.bytes;
      count++;
      return lay;
    });
    layouts.push(ls);
    names.push(per);
  });
  return { layouts, names, slotBytes, totalBytes, count };
}

/** Counters of the expert cache since the last reset. */
export interface ExpertStats {
  /** Experts the routers chose (per pass: the union over the pass's tokens), summed over layers. */
  requested: number;
  /** Of those, already on the GPU before the layer ran. */
  hits: number;
  /** Experts read and uploaded (misses and prefetches). */
  loaded: number;
  /** Prefetched experts the router then chose. */
  prefetchHits: number;
  /** Bytes read and uploaded for experts. */
  bytesMoved: number;
  /** Seconds spent waiting for expert loads. */
  loadWaitS: number;
  /** Per-layer rows (layer, requested, loaded, bytes) of the passes since reset. */
  layers: Map<number, { requested: number; loaded: number; bytes: number }>;
}

function emptyExpertStats(): ExpertStats {
  return {
    requested: 0,
    hits: 0,
    loaded: 0,
    prefetchHits: 0,
    bytesMoved: 0,
    loadWaitS: 0,
    layers: new Map(),
  };
}

/** Host images the unmapped path keeps at most (two: one read, one upload). */
export const HEAP_IMAGES = 2;

interface Slot {
  buffer: GPUBuffer;
  /** `${layer}.${expert}`, or null when empty. */
  key: string | null;
  lastUse: number;
  /** Loaded by a prefetch not yet used. */
  prefetched: boolean;
  loading: Promise<void> | null;
}

/**
 * The GPU cache of experts (see the module doc).
 *
 * @example
 * ```ts ignore
 * const store = ExpertStore.create({ target, files, layouts, slots: 16 });
 * const w = await store.ensure(3, [0, 5]); // experts 0 and 5 of layer 3
 * ```
 */
export class ExpertStore {
  /** Whether every expert is on the GPU for good (nothing streams). */
  readonly allResident: boolean;
  /** Cache slots. */
  readonly capacity: number;
  /** Bytes of one slot. */
  readonly slotBytes: number;
  /** Counters since {@link ExpertStore.resetStats}. */
  stats: ExpertStats = emptyExpertStats();
  readonly #target: UploadTarget<GPUBuffer>;
  readonly #files: SafetensorsFile[];
  readonly #ex: ExpertLayouts;
  readonly #slots: Slot[] = [];
  readonly #where = new Map<string, number>();
  /** Per sparse layer: its file mapped, when it could be. */
  readonly #mapped = new Map<number, MappedFile>();
  /** Free host images (unmapped layers), and loads waiting for one. */
  readonly #free: Uint8Array[] = [];
  readonly #waiting: ((image: Uint8Array) => void)[] = [];
  #images = 0;
  #clock = 0;

  private constructor(
    o: {
      target: UploadTarget<GPUBuffer>;
      files: SafetensorsFile[];
      map?: boolean;
    },
    ex: ExpertLayouts,
    capacity: number,
  ) {
    this.#target = o.target;
    this.#files = o.files;
    this.#ex = ex;
    this.capacity = capacity;
    this.slotBytes = ex.slotBytes;
    this.allResident = capacity >= ex.count;
    ex.layouts.forEach((ls, l) => {
      const f = this.#files[l];
      const m = ls && o.map !== false ? mapFile(f.path, f.size) : null;
      if (m) this.#mapped.set(l, m);
    });
  }

  /** Whether layer `l`'s experts upload from a memory mapping of its file. */
  mapped(l: number): boolean {
    return this.#mapped.has(l);
  }

  /**
   * A store of `slots` cache slots (at least one; all experts when `slots` ≥
   * their count, uploaded now). `map: false` reads every expert into a host
   * image even where files can be mapped.
   */
  static async create(o: {
    target: UploadTarget<GPUBuffer>;
    files: SafetensorsFile[];
    layouts: ExpertLayouts;
    slots: number;
    map?: boolean;
  }): Promise<ExpertStore> {
    const ex = o.layouts;
    const capacity = Math.max(1, Math.min(o.slots, ex.count));
    const s = new ExpertStore(o, ex, capacity);
    if (s.allResident) {
      // one buffer per expert, exactly its size
      for (let l = 0; l < ex.layouts.length; l++) {
        const ls = ex.layouts[l];
        if (!ls) continue;
        for (let e = 0; e < ls.length; e++) {
          const slot = s.#newSlot(ls[e].bytes, `expert.${l}.${e}`);
          await s.#load(slot, l, e);
        }
      }
      s.resetStats();
    } else {
      for (let i = 0; i < capacity; i++) {
        s.#newSlot(ex.slotBytes, `expert.slot.${i}`);
      }
    }
    return s;
  }

  /** GPU bytes the store holds. */
  get gpuBytes(): number {
    return this.#slots.reduce((a, s) => a + s.buffer.size, 0);
  }

  /** Zeroes the counters. */
  resetStats(): void {
    this.stats = emptyExpertStats();
  }

  #newSlot(bytes: number, label: string): Slot {
    const slot: Slot = {
      buffer: this.#target.create(Math.max(16, bytes), label),
      key: null,
      lastUse: 0,
      prefetched: false,
      loading: null,
    };
    this.#slots.push(slot);
    return slot;
  }

  #layout(l: number, e: number): TensorLayout {
    const lay = this.#ex.layouts[l]?.[e];
    if (!lay) {
      throw new StrataError(`expert store: layer ${l} has no expert ${e}`);
    }
    return lay;
  }

  /** Reads expert (l, e) from its shard and uploads it into `slot`. */
  #load(slot: Slot, l: number, e: number): Promise<void> {
    const lay = this.#layout(l, e);
    if (slot.key !== null) this.#where.delete(slot.key);
    const key = `${l}.${e}`;
    slot.key = key;
    this.#where.set(key, this.#slots.indexOf(slot));
    const m = this.#mapped.get(l);
    const p = m
      ? Promise.resolve().then(() => this.#fromMapping(slot.buffer, lay, m))
      : this.#fromImage(slot.buffer, l, lay);
    this.stats.loaded++;
    this.stats.bytesMoved += lay.bytes;
    const row = this.#row(l);
    row.loaded++;
    row.bytes += lay.bytes;
    slot.loading = p.finally(() => slot.loading = null);
    return slot.loading;
  }

  /** Writes each tensor of `lay` from the mapping into `buffer`. */
  #fromMapping(buffer: GPUBuffer, lay: TensorLayout, m: MappedFile): void {
    const up = pieceWriter(this.#target, buffer, lay.bytes);
    for (const e of lay.entries.values()) {
      if (e.kind === "vector") {
        const src = m.bytes.subarray(e.fileOffset, e.fileOffset + e.fileLength);
        const v = decodeFloats(src, e.srcDtype);
        up(e.offset, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
        continue;
      }
      for (const c of e.copies) {
        const src = m.bytes.subarray(c.fileOffset, c.fileOffset + c.length);
        writeMapped(up, c.imageOffset, src);
      }
    }
    this.#target.flush?.();
  }

  /** Reads expert `lay` of layer `l` into a pooled host image and uploads it. */
  async #fromImage(
    buffer: GPUBuffer,
    l: number,
    lay: TensorLayout,
  ): Promise<void> {
    const image = await this.#takeImage();
    try {
      await readImage(this.#files[l], lay, image);
      // the image is reused: zero each matrix copy's 1-3 padding bytes up to
      // a multiple of 4 (a fresh image had them zero)
      for (const e of lay.entries.values()) {
        if (e.kind !== "matrix") continue;
        for (const c of e.copies) {
          const end = c.imageOffset + c.length;
          image.fill(0, end, Math.min(image.length, (end + 3) & ~3));
        }
      }
      pieceWriter(this.#target, buffer, lay.bytes)(
        0,
        image.subarray(0, lay.bytes),
      );
      this.#target.flush?.();
    } finally {
      // writeBuffer has copied the bytes: the image is free again
      this.#giveImage(image);
    }
  }

  /** A free slot-sized host image (made while fewer than HEAP_IMAGES exist). */
  #takeImage(): Promise<Uint8Array> {
    const free = this.#free.pop();
    if (free) return Promise.resolve(free);
    if (this.#images < HEAP_IMAGES) {
      this.#images++;
      return Promise.resolve(new Uint8Array(this.slotBytes));
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #giveImage(image: Uint8Array): void {
    const next = this.#waiting.shift();
    if (next) next(image);
    else this.#free.push(image);
  }

  #row(l: number) {
    let r = this.stats.layers.get(l);
    if (!r) {
      this.stats.layers.set(l, r = { requested: 0, loaded: 0, bytes: 0 });
    }
    return r;
  }

  /** The least recently used slot not in `pinned` and not loading. */
  #victim(pinned: Set<Slot>): Slot | null {
    let best: Slot | null = null;
    for (const s of this.#slots) {
      if (pinned.has(s) || s.loading) continue;
      if (s.key === null) return s;
      if (!best || s.lastUse < best.lastUse) best = s;
    }
    return best;
  }

  /** Whether expert (l, e) is on the GPU (or being loaded). */
  has(l: number, e: number): boolean {
    return this.#where.has(`${l}.${e}`);
  }

  /**
   * Starts loading experts of layer `l` that are not cached, into free or
   * least recently used slots (never more than half the cache), without
   * waiting.
   */
  prefetch(l: number, experts: number[]): void {
    if (this.allResident) return;
    const budget = Math.floor(this.capacity / 2);
    const pinned = new Set<Slot>();
    let n = 0;
    for (const e of experts) {
      if (n >= budget) break;
      if (this.has(l, e)) continue;
      const slot = this.#victim(pinned);
      if (!slot) break;
      pinned.add(slot);
      slot.prefetched = true;
      // a guess: the first to go again unless the router then chooses it
      slot.lastUse = 0;
      this.#load(slot, l, e).catch(() => {
        // a failed prefetch leaves the slot empty; ensure() loads again
        if (slot.key !== null) this.#where.delete(slot.key);
        slot.key = null;
      });
      n++;
    }
  }

  /**
   * The weights of experts `experts` of layer `l` (at most `capacity`),
   * loading the ones not cached; counts hits and requests.
   */
  async ensure(l: number, experts: number[]): Promise<ExpertWeights[]> {
    if (experts.length > this.capacity) {
      throw new StrataError(
        `expert store: ${experts.length} experts requested, ${this.capacity} slots`,
      );
    }
    const w0 = performance.now();
    // prefetches in flight finish first (their slots may be chosen below)
    await Promise.all(this.#slots.map((s) => s.loading));
    const pinned = new Set<Slot>();
    const loads: Promise<void>[] = [];
    const row = this.#row(l);
    const misses: number[] = [];
    // hits first, so that no miss evicts an expert chosen with it
    for (const e of experts) {
      this.stats.requested++;
      row.requested++;
      const at = this.#where.get(`${l}.${e}`);
      if (at === undefined) {
        misses.push(e);
        continue;
      }
      const slot = this.#slots[at];
      if (slot.prefetched) this.stats.prefetchHits++;
      else this.stats.hits++;
      slot.prefetched = false;
      slot.lastUse = ++this.#clock;
      pinned.add(slot);
    }
    for (const e of misses) {
      const slot = this.#victim(pinned);
      if (!slot) throw new StrataError("expert store: no free slot");
      loads.push(this.#load(slot, l, e));
      slot.prefetched = false;
      slot.lastUse = ++this.#clock;
      pinned.add(slot);
    }
    await Promise.all(loads);
    this.stats.loadWaitS += (performance.now() - w0) / 1000;
    return experts.map((e) => this.#weights(l, e));
  }

  /** The weights of a cached expert, bound to its slot. */
  #weights(l: number, e: number): ExpertWeights {
    const at = this.#where.get(`${l}.${e}`);
    if (at === undefined) {
      throw new StrataError(`expert store: expert ${l}.${e} is not cached`);
    }
    const bound = bindLayout(this.#layout(l, e), this.#slots[at].buffer);
    const [g, u, d] = this.#ex.names[l]![e];
    const m = (n: string): GpuWeight => {
      const t = bound.get(n) as GpuWeight | BufferRef | undefined;
      if (!t || !("parts" in t)) {
        throw new StrataError(`expert store: ${n} is not a matrix`);
      }
      return t;
    };
    return { wGate: m(g), wUp: m(u), wDown: m(d) };
  }

  /** Every expert of layer `l` (all resident only). */
  all(l: number): ExpertWeights[] {
    const n = this.#ex.layouts[l]?.length ?? 0;
    return Array.from({ length: n }, (_, e) => this.#weights(l, e));
  }

  /** Frees the slots (after in-flight loads). */
  async destroy(): Promise<void> {
    await Promise.all(this.#slots.map((s) => s.loading));
    for (const s of this.#slots) this.#target.destroy(s.buffer);
    this.#slots.length = 0;
    this.#where.clear();
    for (const m of this.#mapped.values()) m.unmap();
    this.#mapped.clear();
    this.#free.length = 0;
  }
}

/** What {@link planExperts} decided. */
export interface ExpertPlan {
  /** The residency plan of everything else (layers without their experts). */
  plan: ResidencyPlan;
  /** Expert cache slots (all experts when it equals their count). */
  slots: number;
  /** GPU bytes of the expert cache. */
  cacheBytes: number;
}

/**
 * Splits `budget` between the residency plan (KV cache, head, activations,
 * the layers without their experts) and the expert cache: every expert when
 * everything fits; otherwise the layers stay resident if they can and the
 * cache takes the rest (at least top-k slots, so that one token's experts
 * fit at once); failing that the cache keeps top-k slots and the layers
 * stream.
 *
 * @throws {BudgetError} (from planResidency) when even that does not fit.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { planExperts } from "./_experts.ts";
 * const input = { layerBytes: [100, 100], headBytes: 50, kvBytesPerLayer: 10,
 *   activationBytes: 30, slots: 3 };
 * const ex = { layouts: [], names: [], slotBytes: 40, totalBytes: 320, count: 8 };
 * assert.equal(planExperts({ budget: 1000, input, ex, topK: 2 }).slots, 8);
 * const p = planExperts({ budget: 400, input, ex, topK: 2 });
 * assert.deepEqual([p.slots, p.plan.streamed.length], [2, 0]);
 * // too small for the layers and top-k slots: the cache keeps top-k, layers stream
 * const q = planExperts({ budget: 300, input, ex, topK: 2 });
 * assert.deepEqual([q.slots, q.plan.streamed.length > 0], [2, true]);
 * ```
 */
export function planExperts(o: {
  budget: number;
  input: Omit<PlanInput, "budget">;
  ex: ExpertLayouts;
  topK: number;
}): ExpertPlan {
  const { budget, input, ex } = o;
  const full = planResidency({ ...input, budget: Infinity }).totalBytes;
  if (full + ex.totalBytes <= budget) {
    return {
      plan: planResidency({ ...input, budget: budget - ex.totalBytes }),
      slots: ex.count,
      cacheBytes: ex.totalBytes,
    };
  }
  const minSlots = Math.min(ex.count, o.topK);
  if (budget - full >= minSlots * ex.slotBytes) {
    const slots = Math.min(
      ex.count,
      Math.floor((budget - full) / ex.slotBytes),
    );
    return {
      plan: planResidency({ ...input, budget: full }),
      slots,
      cacheBytes: slots * ex.slotBytes,
    };
  }
  const cacheBytes = minSlots * ex.slotBytes;
  return {
    plan: planResidency({ ...input, budget: budget - cacheBytes }),
    slots: minSlots,
    cacheBytes,
  };
}
