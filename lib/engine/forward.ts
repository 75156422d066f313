/**
 * The forward pass, written once for every architecture in the table
 * (lib/model/architectures.ts), to be read like llama2.c's `forward()`.
 *
 * Per pass: embedding rows read on the CPU from embed.safetensors → x; per
 * layer (resident, or streamed through the reader's ring) one command buffer
 * recording the steps of the architecture row's program (`_steps.ts`) over
 * the run state's activations (`_run_state.ts`), reading the layer's weights
 * by role (`_weights.ts`); then final norm → lm_head on the last row → top-k
 * → ONE readback. Timings go to a separate collector (`_stats.ts`).
 *
 * @module
 */
import {
  FormatError,
  StrataError,
  UnsupportedError,
  UsageError,
} from "../errors.ts";
import { SafetensorsFile } from "../format/safetensors.ts";
import type { Gpu } from "../gpu/device.ts";
import type { Kernels } from "../gpu/kernels.ts";
import {
  architectureOf,
  type LayerRole,
  type LayerStep,
  layerSteps,
  layerTensors,
} from "../model/architectures.ts";
import type { ModelConfig } from "../model/config.ts";
import { bindLayout, layoutOf, type TensorLayout } from "./_layout.ts";
import { layerGroups, packUnits } from "./_units.ts";
import { EmbeddingTable } from "./_embedding.ts";
import { type Dims, dimsOf, RunState, runStateBytes } from "./_run_state.ts";
import { checkSteps, Recorder, recordHead, recordLayer } from "./_steps.ts";
import { describeFloor, type ForwardStats, StatsCollector } from "./_stats.ts";
import type { BufferRef, GpuWeight } from "../gpu/kernels.ts";
import {
  type HeadWeights,
  headWeights,
  LayerTensors,
  uploadResident,
} from "./_weights.ts";
import { gpuUploadTarget, LayerReader } from "./reader.ts";
import { describePlan, planResidency, type ResidencyPlan } from "./plan.ts";
import type { Tracer } from "./trace.ts"; // TRACE
import { kvBytesPerLayer, KvCache } from "./kv_cache.ts";

export type { ForwardStats, LayerProfile } from "./_stats.ts";

/** The shard directory as the forward pass sees it (lib/format/shards.ts ShardDir satisfies it). */
export interface ShardSet {
  /** Directory. */
  readonly dir: string;
  /** Normalized config. */
  readonly config: ModelConfig;
  /** Path of layer i's safetensors file. */
  layerPath(i: number): string;
  /** Path of embed.safetensors. */
  embedPath(): string;
  /** Path of head.safetensors. */
  headPath(): string;
}

/** Options of {@link Forward.create}. */
export interface ForwardOptions {
  /** The GPU. */
  gpu: Gpu;
  /** The kernels. */
  kernels: Kernels;
  /** The model's shards. */
  shards: ShardSet;
  /** GPU memory budget in bytes (hard limit). */
  budget: number;
  /** KV cache positions. */
  maxSeqLen: number;
  /** Read ahead and overlap (default true). */
  prefetch?: boolean;
  /** Ring slots wanted when layers stream (default 3 with prefetch, 1 without). */
  slots?: number;
  /** Largest T per pass (prompt chunk; default 64). */
  maxT?: number;
  /** Top-k pairs read back per pass (default 64). */
  topK?: number;
  /**
   * What streams through the ring: "auto" (default) whole layers when at
   * least 2 slots of them fit, else sub-layer units; "matrices" always
   * sub-layer units (one or a few matrices each).
   */
  units?: "auto" | "matrices";
  /** Per-layer sync to time compute (profiling; default false). */
  profile?: boolean;
  /** Records a timeline of reads, uploads and compute (off: undefined). */
  trace?: Tracer; // TRACE
  /** Called with the plan and other progress lines. */
  log?: (line: string) => void;
}

/** The top-k of the last row's logits, descending. */
export interface TopK {
  /** Logit values. */
  values: Float32Array;
  /** Token ids. */
  ids: Uint32Array;
}

/** A decoder layer: its steps, and its shard's file, layout and tensor names by role. */
interface LayerShard {
  steps: readonly LayerStep[];
  file: SafetensorsFile;
  /** The whole layer (several segments when it exceeds maxBufferSize). */
  layout: TensorLayout;
  names: Partial<Record<LayerRole, string>>;
  /** Its sub-layer streaming units (one buffer each), or null: it streams whole only. */
  units: TensorLayout[] | null;
  /** Unit group (lib/engine/_units.ts) → index of its unit. */
  unitOf: Map<string, number>;
}

/**
 * The streaming units of a layer: its groups packed up to the size of its
 * largest group (so a slot holds one or a few matrices), each laid out as
 * one buffer; null when a tensor is in no group or a group needs more than
 * one buffer.
 */
function unitsOf(
  file: SafetensorsFile,
  groups: ReturnType<typeof layerGroups>,
  maxBinding: number,
  maxBuffer: number,
): { units: TensorLayout[]; unitOf: Map<string, number> } | null {
  if (groups === null) return null;
  const layout = (names: string[]) =>
    layoutOf(file, names, maxBinding, maxBuffer);
  const bytes = (names: string[]) => layout(names).bytes;
  const cap = Math.max(...groups.map((g) => bytes(g.names)));
  const packed = packUnits(groups, bytes, cap);
  const units = packed.map((u) => layout(u.names));
  if (units.some((u) => u.segments.length !== 1)) return null;
  const unitOf = new Map<string, number>();
  packed.forEach((u, k) => {
    for (const g of u.groups) unitOf.set(g, k);
  });
  return { units, unitOf };
}

/** Opens layer `i`'s shard and checks it has every tensor of its steps. */
async function openLayer(
  o: ForwardOptions,
  i: number,
  opened: SafetensorsFile[],
): Promise<LayerShard> {
  const cfg = o.shards.config;
  const { maxStorageBufferBindingSize, maxBufferSize } = o.gpu.limits;
  const file = await SafetensorsFile.open(o.shards.layerPath(i));
  opened.push(file);
  const want = layerTensors(cfg, i);
  const names: Partial<Record<LayerRole, string>> = {};
  for (const t of want) {
    if (!file.tensors.has(t.name)) {
      throw new FormatError(file.path, `missing tensor ${t.name}`);
    }
    names[t.role] = t.name;
  }
  const layout = layoutOf(
    file,
    want.map((t) => t.name),
    maxStorageBufferBindingSize,
    maxBufferSize,
  );
  const steps = layerSteps(cfg, i);
  const u = unitsOf(
    file,
    layerGroups(steps, names),
    maxStorageBufferBindingSize,
    maxBufferSize,
  );
  if (!u && layout.segments.length > 1) {
    throw new UnsupportedError(
      file.path,
      `decoder layer ${i} needs ${layout.bytes} bytes, more than one GPU buffer may hold (maxBufferSize ${maxBufferSize}), and cannot stream in parts`,
    );
  }
  return {
    steps,
    file,
    layout,
    names,
    units: u?.units ?? null,
    unitOf: u?.unitOf ?? new Map(),
  };
}

/**
 * The model on the GPU: residency plan, layer reader, KV cache, run state,
 * and {@link Forward.forward}.
 *
 * @example
 * ```ts ignore
 * import { Forward } from "./forward.ts";
 * const fwd = await Forward.create({ gpu, kernels, shards, budget: 2e9, maxSeqLen: 512 });
 * const { topk } = await fwd.forward([1, 15, 27]); // prefill
 * const next = await fwd.forward([topk.ids[0]]);    // decode
 * await fwd.dispose();
 * ```
 */
export class Forward {
  /** The config. */
  readonly config: ModelConfig;
  /** The residency plan. */
  readonly plan: ResidencyPlan;
  /** The KV cache. */
  readonly kv: KvCache;
  /** Largest T per pass. */
  readonly maxT: number;
  /** Top-k pairs per readback. */
  readonly topK: number;

  readonly #gpu: Gpu;
  readonly #k: Kernels;
  readonly #reader: LayerReader<GPUBuffer>;
  readonly #embed: EmbeddingTable;
  readonly #files: SafetensorsFile[];
  readonly #layers: LayerShard[];
  readonly #head: HeadWeights;
  readonly #buffers: GPUBuffer[];
  readonly #state: RunState;
  readonly #stats: StatsCollector;
  readonly #d: Dims;
  #gpuBytes: number;
  #peakGpuBytes: number;
  #scratchEstimate: number;
  #failed: string | null = null;
  /** The timeline recorder, if tracing. */
  readonly trace: Tracer | undefined; // TRACE

  private constructor(init: {
    o: ForwardOptions;
    plan: ResidencyPlan;
    kv: KvCache;
    reader: LayerReader<GPUBuffer>;
    embed: EmbeddingTable;
    files: SafetensorsFile[];
    layers: LayerShard[];
    head: HeadWeights;
    buffers: GPUBuffer[];
    state: RunState;
    scratchEstimate: number;
  }) {
    this.#gpu = init.o.gpu;
    this.#k = init.o.kernels;
    this.trace = init.o.trace; // TRACE
    this.config = init.o.shards.config;
    this.plan = init.plan;
    this.kv = init.kv;
    this.#reader = init.reader;
    this.#embed = init.embed;
    this.#files = init.files;
    this.#layers = init.layers;
    this.#head = init.head;
    this.#buffers = init.buffers;
    this.#state = init.state;
    this.maxT = init.state.maxT;
    this.topK = init.state.topK;
    this.#d = dimsOf(this.config);
    this.#stats = new StatsCollector(this.#gpu.device, init.reader);
    this.#stats.profile = init.o.profile ?? false;
    this.#gpuBytes = init.plan.totalBytes;
    this.#peakGpuBytes = init.plan.totalBytes;
    this.#scratchEstimate = init.scratchEstimate;
  }

  /** Plans residency, opens every shard, uploads the resident set, allocates the ring, KV cache and run state. */
  static async create(o: ForwardOptions): Promise<Forward> {
    const cfg = o.shards.config;
    const device = o.gpu.device;
    const {
      maxStorageBufferBindingSize: maxBinding,
      maxBufferSize: maxBuffer,
    } = o.gpu.limits;
    const maxT = o.maxT ?? 64;
    const topK = Math.min(o.topK ?? 64, cfg.vocabSize);
    const row = architectureOf(cfg);

    const opened: SafetensorsFile[] = [];
    try {
      // --- layouts of every shard file (headers only) ---
      const layers: LayerShard[] = [];
      for (let i = 0; i < cfg.numLayers; i++) {
        const layer = await openLayer(o, i, opened);
        checkSteps(layer.steps, `${o.shards.dir}/config.json`);
        layers.push(layer);
      }
      const headFile = await SafetensorsFile.open(o.shards.headPath());
      opened.push(headFile);
      const embedFile = await SafetensorsFile.open(o.shards.embedPath());
      opened.push(embedFile);
      const embed = new EmbeddingTable(embedFile, row.embed, cfg);
      const headLayout = layoutOf(
        headFile,
        [row.finalNorm, row.lmHead],
        maxBinding,
        maxBuffer,
      );
      if (!headLayout.entries.has(row.finalNorm)) {
        throw new FormatError(headFile.path, `missing tensor ${row.finalNorm}`);
      }
      const tied = !headLayout.entries.has(row.lmHead);
      const tiedLayout = tied
        ? layoutOf(embedFile, [row.embed], maxBinding, maxBuffer)
        : null;

      // --- the plan ---
      const { activationBytes, scratchEstimate } = runStateBytes(cfg, {
        maxT,
        topK,
        maxSeqLen: o.maxSeqLen,
      });
      const plan = planResidency({
        budget: o.budget,
        layerBytes: layers.map((l) => l.layout.bytes),
        headBytes: headLayout.bytes + (tiedLayout?.bytes ?? 0),
        kvBytesPerLayer: kvBytesPerLayer(cfg, o.maxSeqLen),
        activationBytes: activationBytes +
          (o.trace?.gpuBytes(o.gpu, cfg.numLayers) ?? 0), // TRACE
        slots: o.slots ?? (o.prefetch === false ? 1 : 3),
        unitBytes: layers.map((l) => l.units?.map((u) => u.bytes) ?? null),
        maxSlotBytes: maxBuffer,
        units: o.units,
      });
      o.log?.(describePlan(plan));

      // --- allocate: run state, KV cache, the head (resident, in as many
      // buffers as maxBufferSize requires), the reader's resident set and ring
      const state = RunState.create(device, cfg, { maxT, topK });
      const kv = new KvCache(device, cfg, o.maxSeqLen, maxBinding);
      const target = gpuUploadTarget(device);
      const buffers: GPUBuffer[] = [];
      const bound = await uploadResident({
        target,
        file: headFile,
        layout: headLayout,
        label: "head",
        owned: buffers,
      });
      if (tiedLayout) {
        const tiedW = await uploadResident({
          target,
          file: embedFile,
          layout: tiedLayout,
          label: "lm_head(tied)",
          owned: buffers,
        });
        const lm = tiedW.get(row.embed);
        if (lm) bound.set(row.lmHead, lm);
      }
      const head = headWeights({
        bound,
        finalNorm: row.finalNorm,
        lmHead: row.lmHead,
        path: headFile.path,
      });
      const reader = await LayerReader.create({
        target,
        files: layers.map((l) => l.file),
        layouts: layers.map((l) => l.layout),
        units: plan.unit === "matrices"
          ? layers.map((l) => l.units ?? undefined)
          : undefined,
        // sub-layer units upload a whole ring ahead: at least 2 units in
        // flight while another computes, whenever the ring holds 2 or more
        eager: plan.unit === "matrices",
        resident: plan.resident,
        streamed: plan.streamed,
        slots: plan.slots,
        slotBytes: plan.slotBytes,
        prefetch: o.prefetch !== false,
        probe: o.log !== undefined,
        mmap: true, // where FFI is allowed: upload straight from the page cache
        trace: o.trace, // TRACE
      });
      await o.trace?.attach(o.gpu, plan, cfg.numLayers); // TRACE
      if (reader.probeRates) o.log?.(describeFloor(plan, reader.probeRates));
      return new Forward({
        o,
        plan,
        kv,
        reader,
        embed,
        files: opened,
        layers,
        head,
        buffers,
        state,
        scratchEstimate,
      });
    } catch (e) {
      for (const f of opened) f.close();
      throw e;
    }
  }

  /** Per-layer sync for timing. */
  get profile(): boolean {
    return this.#stats.profile;
  }

  set profile(on: boolean) {
    this.#stats.profile = on;
  }

  /** Totals since {@link Forward.resetStats}. */
  get stats(): ForwardStats {
    return this.#stats.stats;
  }

  /** Peak bytes the engine had on the GPU (the plan's total plus any extra readback buffer). */
  get peakGpuBytes(): number {
    return this.#peakGpuBytes;
  }

  /** Zeroes the totals. */
  resetStats(): void {
    this.#stats.reset();
  }

  /** Forgets the KV cache (a new sequence). */
  reset(): void {
    this.kv.reset();
  }

  /**
   * Runs `ids` (T ≤ maxT tokens) at positions kv.length.. and returns the
   * top-k of the last row's logits (and all V logits when `logits`). One
   * readback per call.
   */
  async forward(
    ids: number[],
    opts: { logits?: boolean } = {},
  ): Promise<{ topk: TopK; logits?: Float32Array }> {
    if (this.#failed !== null) {
      throw new StrataError(
        `the model failed in an earlier forward pass (${this.#failed}); dispose it and load it again`,
      );
    }
    this.#check(ids);
    try {
      return await this.#forward(ids, opts);
    } catch (e) {
      // usage errors are raised before anything is recorded; anything else may
      // leave the ring or the KV cache half-updated
      if (!(e instanceof UsageError)) {
        this.#failed = e instanceof Error ? e.message : String(e);
      }
      throw e;
    }
  }

  /** Usage errors, raised before anything is recorded. */
  #check(ids: number[]): void {
    const T = ids.length, pos0 = this.kv.length, V = this.config.vocabSize;
    if (T < 1 || T > this.maxT) {
      throw new UsageError(`forward: T must be 1..${this.maxT}, got ${T}`);
    }
    if (pos0 + T > this.kv.maxSeqLen) {
      throw new UsageError(
        `sequence of ${pos0 + T} tokens exceeds maxSeqLen ${this.kv.maxSeqLen}`,
      );
    }
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new UsageError(
          `token id ${id} is outside the vocabulary (0..${V - 1})`,
        );
      }
    }
  }

  async #forward(
    ids: number[],
    opts: { logits?: boolean },
  ): Promise<{ topk: TopK; logits?: Float32Array }> {
    const T = ids.length;
    const pos0 = this.kv.length;
    const device = this.#gpu.device;
    const K = this.#k, d = this.#d, L = this.config.numLayers;
    const align = device.limits.minStorageBufferOffsetAlignment;
    this.#stats.begin();
    this.trace?.passStart(T, pos0); // TRACE

    // x [T, D] = embedding rows, looked up on the CPU
    const a = this.#state.at(T);
    device.queue.writeBuffer(a.x.buffer, 0, await this.#embed.rows(ids));
    K.reset();

    for (let l = 0; l < L; l++) {
      const got = await this.#reader.acquire(l);
      const { steps, file, names, unitOf } = this.#layers[l];
      const bound = new Map<string, GpuWeight | BufferRef>();
      for (const u of got.units) {
        for (const [name, t] of bindLayout(u.layout, u.buffers)) {
          bound.set(name, t);
        }
      }
      const w = new LayerTensors({ path: file.path, bound, names, align });
      const { k, v } = this.kv.layer(l);
      const encoder = () =>
        device.createCommandEncoder({ label: `layer.${l}` });
      // streamed in units: the commands reading unit u are submitted once
      // it has arrived, so later units upload while earlier ones compute
      const U = got.units.length;
      const rec = new Recorder(
        encoder(),
        U > 1 ? { unitOf: (g) => unitOf.get(g) ?? -1, encoder } : undefined,
      );
      rec.stamp(this.trace?.gpuPass(l, true, false)); // TRACE
      const kv = { k, v, at: this.kv.rowOffset(pos0) };
      recordLayer({ steps, K, rec, a, d, T, pos0, kv }, w);
      rec.stamp(this.trace?.gpuPass(l, false, true)); // TRACE
      const commands = rec.finishUnits();
      let computeMs = 0;
      this.trace?.submitting(l); // TRACE
      for (let u = 0; u < U; u++) {
        if (u > 0) await this.#reader.arrive(l, u);
        K.submit(commands[u] ?? []);
        if (u === U - 1) this.trace?.submitted(l); // TRACE
        computeMs += await this.#stats.layerSubmitted();
        await this.#reader.release(l);
      }
      this.#stats.layerReleased(l, got.streamed, computeMs, U);
    }

    // head: logits of the last row → top-k pairs → readback (+ all logits)
    const rec = new Recorder(device.createCommandEncoder({ label: "head" }));
    rec.stamp(this.trace?.gpuPass(L, true, false)); // TRACE
    recordHead({ K, rec, a, d, T, w: this.#head, topK: this.topK });
    const readback = this.#state.readback;
    rec.copy(a.topk, { buffer: readback, offset: 0, size: a.topk.size });
    let logitsBuf: GPUBuffer | null = null;
    if (opts.logits) {
      const { buffer, added } = this.#state.logitsReadback();
      this.#gpuBytes += added;
      this.#peakGpuBytes = Math.max(this.#peakGpuBytes, this.#gpuBytes);
      logitsBuf = buffer;
      rec.copy(a.logits, { buffer, offset: 0, size: a.logits.size });
    }
    rec.stamp(this.trace?.gpuPass(L, false, true)); // TRACE
    if (this.trace) rec.raw((enc) => this.trace!.resolve(enc)); // TRACE
    this.trace?.submitting(L); // TRACE
    K.submit([rec.finish()]);
    this.trace?.submitted(L); // TRACE
    // the next pass's first streamed layers upload while the head computes
    this.#reader.pump();

    // the one readback of this pass
    const w0 = performance.now();
    await this.#stats.readback(Promise.all([
      readback.mapAsync(GPUMapMode.READ),
      logitsBuf?.mapAsync(GPUMapMode.READ),
      this.trace?.gpuDone(), // TRACE
    ]));
    this.trace?.readback(w0); // TRACE
    this.#notePeak();
    const f = new Float32Array(
      readback.getMappedRange(0, this.topK * 8).slice(0),
    );
    const u = new Uint32Array(f.buffer);
    readback.unmap();
    const values = new Float32Array(this.topK),
      topIds = new Uint32Array(this.topK);
    for (let i = 0; i < this.topK; i++) {
      values[i] = f[2 * i];
      topIds[i] = u[2 * i + 1];
    }
    let full: Float32Array | undefined;
    if (logitsBuf) {
      full = new Float32Array(logitsBuf.getMappedRange(0, d.V * 4).slice(0));
      logitsBuf.unmap();
    }
    this.kv.length = pos0 + T;
    this.#stats.end();
    return { topk: { values, ids: topIds }, logits: full };
  }

  /** Kernel scratch beyond the plan's estimate counts against the peak. */
  #notePeak(): void {
    let scratch = 0;
    for (const b of this.#k.ctx.memo.values()) {
      if (b instanceof GPUBuffer) scratch += b.size;
    }
    this.#peakGpuBytes = Math.max(
      this.#peakGpuBytes,
      this.#gpuBytes + Math.max(0, scratch - this.#scratchEstimate),
    );
    this.trace?.memory(this.#gpuBytes, scratch - this.#scratchEstimate); // TRACE
  }

  /** Frees GPU buffers and closes files. */
  async dispose(): Promise<void> {
    // uploads pumped for a next pass may still be queued: let them finish first
    await this.#gpu.device.queue.onSubmittedWorkDone();
    await this.#reader.destroy();
    this.trace?.detach(); // TRACE
    for (const b of this.#buffers) b.destroy();
    this.#state.destroy();
    this.kv.destroy();
    for (const f of this.#files) f.close();
  }
}
