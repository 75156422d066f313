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
import { StrataError, UsageError } from "../errors.ts";
import { SafetensorsFile } from "../format/safetensors.ts";
import type { Gpu } from "../gpu/device.ts";
import type { Kernels } from "../gpu/kernels.ts";
import { architectureOf } from "../model/architectures.ts";
import type { ModelConfig } from "../model/config.ts";
import { bindLayout } from "./_layout.ts";
import { EmbeddingTable } from "./_embedding.ts";
import { type LayerShard, openLayer } from "./_layer_shard.ts";
import { type Dims, dimsOf, RunState, runStateBytes } from "./_run_state.ts";
import { checkSteps, Recorder, recordHead, recordLayer } from "./_steps.ts";
import { describeFloor, type ForwardStats, StatsCollector } from "./_stats.ts";
import type { BufferRef, GpuWeight } from "../gpu/kernels.ts";
import {
  headLayouts,
  type HeadWeights,
  LayerTensors,
  uploadHead,
} from "./_weights.ts";
import { gpuUploadTarget, LayerReader } from "./reader.ts";
import { describePlan, type ResidencyPlan } from "./plan.ts";
import type { Tracer } from "./trace.ts"; // TRACE
import { kvBytesPerLayer, KvCache } from "./kv_cache.ts";
import { type MoeRunner, moeScratchBytes } from "./_moe_step.ts"; // MOE
import { createMoeRunner, planWithExperts } from "./_moe_setup.ts"; // MOE
import {
  checkSeqs,
  type SeqInput,
  type SeqOutput,
  sequenceSizes,
  SequenceState,
  sequenceStateBytes,
  splitOutputs,
} from "./_sequences.ts";

export type { ForwardStats, LayerProfile } from "./_stats.ts";
export type { RowTopK, SeqInput, SeqOutput } from "./_sequences.ts";

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
  /** Sequences that may share a pass: one KV cache each, planned (default 1). */
  sequences?: number;
  /** Rows whose top-k one pass may read back (default `sequences`; > 1: see {@link Forward.forwardSeqs}). */
  headRows?: number;
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
  /**
   * Mixture-of-experts models: load experts one by one through the expert
   * cache (default true), or keep them in their layer's shard image (whole
   * layers resident or streamed, every expert computed).
   */
  expertStreaming?: boolean;
}

/** The top-k of the last row's logits, descending. */
export interface TopK {
  /** Logit values. */
  values: Float32Array;
  /** Token ids. */
  ids: Uint32Array;
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
  /** The KV cache (of the single-sequence {@link Forward.forward}; `caches[0]`). */
  readonly kv: KvCache;
  /** One KV cache per sequence a pass may carry (`sequences` of them). */
  readonly caches: readonly KvCache[];
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
  readonly #seq: SequenceState | null;
  readonly #stats: StatsCollector;
  readonly #d: Dims;
  readonly #moe: MoeRunner | null; // MOE
  #gpuBytes: number;
  #peakGpuBytes: number;
  #scratchEstimate: number;
  #failed: string | null = null;
  /** The timeline recorder, if tracing. */
  readonly trace: Tracer | undefined; // TRACE

  private constructor(init: {
    o: ForwardOptions;
    plan: ResidencyPlan;
    caches: KvCache[];
    seq: SequenceState | null;
    reader: LayerReader<GPUBuffer>;
    embed: EmbeddingTable;
    files: SafetensorsFile[];
    layers: LayerShard[];
    head: HeadWeights;
    buffers: GPUBuffer[];
    state: RunState;
    scratchEstimate: number;
    moe: MoeRunner | null; // MOE
    moeBytes: number; // MOE
  }) {
    this.#gpu = init.o.gpu;
    this.#k = init.o.kernels;
    this.trace = init.o.trace; // TRACE
    this.config = init.o.shards.config;
    this.plan = init.plan;
    this.caches = init.caches;
    this.kv = init.caches[0];
    this.#seq = init.seq;
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
    this.#moe = init.moe; // MOE
    this.#gpuBytes = init.plan.totalBytes + init.moeBytes;
    this.#peakGpuBytes = this.#gpuBytes;
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
      const hl = headLayouts({
        headFile,
        embedFile,
        names: row,
        maxBinding,
        maxBuffer,
      });

      // --- the plan ---
      const { activationBytes, scratchEstimate } = runStateBytes(cfg, {
        maxT,
        topK,
        maxSeqLen: o.maxSeqLen,
      });
      const seqSizes = sequenceSizes({
        ...o,
        maxT,
        topK,
        layers: cfg.numLayers,
      });
      const sequences = seqSizes?.sequences ?? 1;
      const planInput = {
        layerBytes: layers.map((l) => l.layout.bytes),
        headBytes: hl.head.bytes + (hl.tied?.bytes ?? 0),
        kvBytesPerLayer: kvBytesPerLayer(cfg, o.maxSeqLen) * sequences,
        activationBytes: activationBytes + moeScratchBytes(cfg, maxT) + // MOE
          (seqSizes ? sequenceStateBytes(cfg, seqSizes) : 0) +
          (o.trace?.gpuBytes(o.gpu, cfg.numLayers) ?? 0), // TRACE
        slots: o.slots ?? (o.prefetch === false ? 1 : 3),
        unitBytes: layers.map((l) => l.units?.map((u) => u.bytes) ?? null),
        maxSlotBytes: maxBuffer,
        units: o.units,
      };
      // MOE: experts on their own share the budget with the plan
      const files = layers.map((l) => l.file);
      const planned = planWithExperts({
        cfg,
        files,
        limits: o.gpu.limits,
        budget: o.budget,
        input: planInput,
        expertStreaming: o.expertStreaming,
      });
      const plan = planned.plan;
      o.log?.(describePlan(plan));

      // --- allocate: run state, KV cache, the head (resident, in as many
      // buffers as maxBufferSize requires), the reader's resident set and ring
      const state = RunState.create(device, cfg, { maxT, topK });
      const caches: KvCache[] = [];
      for (let i = 0; i < sequences; i++) {
        caches.push(new KvCache(device, cfg, o.maxSeqLen, maxBinding));
      }
      const seq = seqSizes ? SequenceState.create(device, cfg, seqSizes) : null;
      const target = gpuUploadTarget(device);
      const buffers: GPUBuffer[] = [];
      const head = await uploadHead({
        target,
        headFile,
        embedFile,
        layouts: hl,
        names: row,
        owned: buffers,
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
      const moe = await createMoeRunner({ // MOE
        device,
        cfg,
        maxT,
        files,
        limits: o.gpu.limits,
        target,
        budget: o.budget,
        planned,
        log: o.log,
      });
      if (reader.probeRates) o.log?.(describeFloor(plan, reader.probeRates));
      return new Forward({
        o,
        plan,
        caches,
        seq,
        reader,
        embed,
        files: opened,
        layers,
        head,
        buffers,
        state,
        scratchEstimate,
        moe, // MOE
        moeBytes: planned.exPlan?.cacheBytes ?? 0, // MOE
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
    this.#moe?.resetStats(); // MOE
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
    return await this.#guard(() => {
      this.#check(ids);
      return this.#forward(ids, opts);
    });
  }

  /** Runs a pass unless an earlier one failed; a failure (not a usage error) marks the model failed. */
  async #guard<R>(pass: () => Promise<R>): Promise<R> {
    if (this.#failed !== null) {
      throw new StrataError(
        `the model failed in an earlier forward pass (${this.#failed}); dispose it and load it again`,
      );
    }
    try {
      return await pass();
    } catch (e) {
      // usage errors are raised before anything is recorded; anything else may
      // leave the ring or the KV cache half-updated
      if (!(e instanceof UsageError)) {
        this.#failed = e instanceof Error ? e.message : String(e);
      }
      throw e;
    }
  }

  /**
   * Runs several sequences in one pass: sequence i's `ids` at positions
   * `kv.length..` of its own KV cache (their rows concatenated, ≤ maxT in
   * all; each cache at most once), and returns, per sequence, the top-k (and
   * all V logits when `logits`) of its `heads` rows. One readback per call.
   * Needs a Forward created with `sequences` > 1 or `headRows` > 1.
   *
   * @example
   * ```ts ignore
   * const [a, b] = fwd.caches;
   * const out = await fwd.forwardSeqs([
   *   { kv: a, ids: [1, 15, 27], heads: [2] },
   *   { kv: b, ids: [1, 9], heads: [1] },
   * ]);
   * const nextA = out[0].topk[0].ids[0];
   * ```
   */
  async forwardSeqs(
    seqs: SeqInput[],
    opts: { logits?: boolean } = {},
  ): Promise<SeqOutput[]> {
    const one = seqs.length === 1 ? seqs[0] : null;
    if (
      one?.kv === this.kv && one.heads.length === 1 &&
      one.heads[0] === one.ids.length - 1
    ) {
      // one sequence, its last row: the plain pass
      const { topk, logits } = await this.forward(one.ids, opts);
      return [{ topk: [topk], logits: logits && [logits] }];
    }
    if (!this.#seq) {
      throw new UsageError(
        "forwardSeqs needs a Forward created with sequences > 1 or headRows > 1",
      );
    }
    const ids = seqs.flatMap((s) => s.ids);
    checkSeqs(seqs, this.#seq.sizes.rows);
    return await this.#guard(async () => {
      for (const s of seqs) this.#check(s.ids, s.kv);
      this.#check(ids, this.kv, true);
      return (await this.#forward(ids, opts, seqs)).seqs!;
    });
  }

  /** Usage errors, raised before anything is recorded. */
  #check(ids: number[], kv = this.kv, rowsOnly = false): void {
    const T = ids.length, pos0 = kv.length, V = this.config.vocabSize;
    if (T < 1 || T > this.maxT) {
      throw new UsageError(`forward: T must be 1..${this.maxT}, got ${T}`);
    }
    if (rowsOnly) return;
    if (pos0 + T > kv.maxSeqLen) {
      throw new UsageError(
        `sequence of ${pos0 + T} tokens exceeds maxSeqLen ${kv.maxSeqLen}`,
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
    many?: SeqInput[],
  ): Promise<{ topk: TopK; logits?: Float32Array; seqs?: SeqOutput[] }> {
    const T = ids.length;
    const pos0 = this.kv.length;
    const device = this.#gpu.device;
    const K = this.#k, d = this.#d, L = this.config.numLayers;
    const align = device.limits.minStorageBufferOffsetAlignment;
    this.#stats.begin();
    const moe0 = this.#moe && this.#moeCounters(); // MOE
    this.trace?.passStart(T, pos0); // TRACE

    // x [T, D] = embedding rows, looked up on the CPU
    const a = this.#state.at(T);
    device.queue.writeBuffer(a.x.buffer, 0, await this.#embed.rows(ids));
    K.reset();
    const starts: number[] = []; // first row of each of `many`
    for (const s of many ?? []) {
      starts.push((starts.at(-1) ?? 0) + s.ids.length);
    }
    starts.unshift(0);

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
      const seqs = many && this.#seq!.layer(
        many.map((s, i) => ({
          row: starts[i],
          T: s.ids.length,
          pos0: s.kv.length,
          ...s.kv.layer(l),
        })),
      );
      const moe = this.#moe?.at(l); // MOE
      recordLayer({ steps, K, rec, a, d, T, pos0, kv, seqs, moe }, w);
      rec.stamp(this.trace?.gpuPass(l, false, true)); // TRACE
      const commands = rec.finishUnits();
      let computeMs = 0;
      this.trace?.submitting(l); // TRACE
      for (let u = 0; u < U; u++) {
        if (u > 0) await this.#reader.arrive(l, u);
        K.submit(commands[u] ?? []);
        if (u === U - 1) {
          this.trace?.submitted(l); // TRACE
          if (this.#moe) await this.#moe.finish(l); // MOE: streamed experts
        }
        computeMs += await this.#stats.layerSubmitted();
        await this.#reader.release(l);
      }
      this.#stats.layerReleased(l, got.streamed, computeMs, U);
    }

    // head: logits of the last row → top-k pairs → readback (+ all logits)
    const rec = new Recorder(device.createCommandEncoder({ label: "head" }));
    rec.stamp(this.trace?.gpuPass(L, true, false)); // TRACE
    if (many) {
      return await this.#seqsHead({
        many,
        starts,
        rec,
        a,
        logits: opts.logits,
      });
    }
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
    if (this.#moe && moe0) { // MOE
      const m1 = this.#moeCounters();
      this.#moe.passDone(T, m1[0] - moe0[0], m1[1] - moe0[1], m1[2] - moe0[2]);
      this.#stats.stats.experts = this.#moe.totals();
    }
    return { topk: { values, ids: topIds }, logits: full };
  }

  /** MOE: bytes through the ring, expert bytes and experts loaded so far. */
  #moeCounters(): [number, number, number] {
    const st = this.#moe?.store?.stats;
    return [
      this.#reader.stats.bytesStreamed,
      st?.bytesMoved ?? 0,
      st?.loaded ?? 0,
    ];
  }

  /** The head of a multi-sequence pass, its readback, the end of the pass. */
  async #seqsHead(o: {
    many: SeqInput[];
    starts: number[];
    rec: Recorder;
    a: ReturnType<RunState["at"]>;
    logits?: boolean;
  }): Promise<{ topk: TopK; seqs: SeqOutput[] }> {
    const seq = this.#seq!, d = this.#d, L = this.config.numLayers;
    const rows = o.many.flatMap((s, i) => s.heads.map((h) => o.starts[i] + h));
    let logitsTo: GPUBuffer | undefined;
    if (o.logits) {
      const { buffer, added } = seq.logitsReadback(rows.length, d.V);
      this.#gpuBytes += added;
      this.#peakGpuBytes = Math.max(this.#peakGpuBytes, this.#gpuBytes);
      logitsTo = buffer;
    }
    const { rec } = o;
    seq.recordHead({
      K: this.#k,
      rec,
      a: o.a,
      d,
      w: this.#head,
      rows,
      logitsTo,
    });
    rec.stamp(this.trace?.gpuPass(L, false, true)); // TRACE
    if (this.trace) rec.raw((enc) => this.trace!.resolve(enc)); // TRACE
    this.trace?.submitting(L); // TRACE
    this.#k.submit([rec.finish()]);
    this.trace?.submitted(L); // TRACE
    this.#reader.pump();
    const w0 = performance.now();
    await this.#stats.readback(
      Promise.all([seq.map(logitsTo), this.trace?.gpuDone()]), // TRACE
    );
    this.trace?.readback(w0); // TRACE
    this.#notePeak();
    const got = seq.read(rows.length, d.V, logitsTo);
    const out = splitOutputs(o.many, got);
    this.#stats.end();
    return { topk: got.topk[0], seqs: out };
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
    await this.#moe?.destroy(); // MOE
    this.trace?.detach(); // TRACE
    for (const b of this.#buffers) b.destroy();
    this.#state.destroy();
    this.#seq?.destroy();
    for (const kv of this.caches) kv.destroy();
    for (const f of this.#files) f.close();
  }
}
