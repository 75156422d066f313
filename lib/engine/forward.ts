/**
 * The forward pass, written once for every architecture in the table
 * (lib/model/architectures.ts), to be read like llama2.c's `forward()`.
 *
 * Notation: T = tokens in this pass (≤ maxT), D = hiddenSize,
 * H = numHeads, KV = numKvHeads, hd = headDim, F = intermediateSize,
 * V = vocabSize, pos0 = position of the first token (= tokens already in the
 * KV cache). Every activation is an f32 GPU buffer.
 *
 * Per pass: embedding rows read on the CPU from embed.safetensors → x; per
 * layer (resident, or streamed through the reader's ring) one command buffer;
 * final norm → lm_head on the last row → top-k → ONE readback.
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
import type { BufferRef, GpuWeight, Kernels } from "../gpu/kernels.ts";
import {
  architectureOf,
  type LayerRole,
  layerTensors,
} from "../model/architectures.ts";
import { type ModelConfig, rotaryDim } from "../model/config.ts";
import { ropeInvFreq } from "../model/rope.ts";
import {
  bindLayout,
  layoutOf,
  quantInfo,
  readImage,
  type TensorLayout,
} from "./_layout.ts";
import { decodeFloats, decodeQuantRow } from "./_decode.ts";
import { gpuUploadTarget, LayerReader, type ReaderStats } from "./reader.ts";
import { describePlan, planResidency, type ResidencyPlan } from "./plan.ts";
import { kvBytesPerLayer, KvCache } from "./kv_cache.ts";
import type { Tracer } from "./trace.ts"; // TRACE

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
  /** Per-layer sync to time compute (profiling; default false). */
  profile?: boolean;
  /** Called with the plan and other progress lines. */
  log?: (line: string) => void;
  /** Records the pipeline's timeline (see trace.ts; default none). */
  trace?: Tracer; // TRACE
}

/** The top-k of the last row's logits, descending. */
export interface TopK {
  /** Logit values. */
  values: Float32Array;
  /** Token ids. */
  ids: Uint32Array;
}

/** Per-layer profile (profile mode). */
export interface LayerProfile {
  /** Layer index. */
  layer: number;
  /** Streamed (true) or resident. */
  streamed: boolean;
  /** Background read ms. */
  readMs: number;
  /** Time waiting for the read. */
  readWaitMs: number;
  /** writeBuffer ms. */
  uploadMs: number;
  /** Submit-to-done ms (profile mode syncs per layer). */
  computeMs: number;
}

/** Totals over passes since {@link Forward.resetStats}. */
export interface ForwardStats {
  /** Passes. */
  passes: number;
  /** Wall seconds inside forward(). */
  wallS: number;
  /** Background read seconds. */
  readS: number;
  /** Seconds the pass waited on reads. */
  readWaitS: number;
  /** writeBuffer seconds for streamed layers. */
  uploadS: number;
  /** GPU compute seconds: per-layer in profile mode; otherwise the final wait for the readback. */
  computeS: number;
  /** Bytes uploaded for streamed layers. */
  bytesStreamed: number;
  /** Per-layer timings of the last profiled pass(es). */
  layers: LayerProfile[];
}

type Weights = Map<string, GpuWeight | BufferRef>;

const STORAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST

/** Embedding rows on demand from embed.safetensors (F32/F16/BF16 or q8/q4). */
class EmbeddingTable {
  readonly #f: SafetensorsFile;
  readonly #offset: number;
  readonly #rowBytes: number;
  readonly #quant: {
    type: "q8" | "q4";
    scalesOffset: number;
    scalesRow: number;
  } | null;
  readonly #dtype: "F32" | "F16" | "BF16";
  readonly dim: number;
  readonly vocab: number;

  constructor(f: SafetensorsFile, name: string, cfg: ModelConfig) {
    this.#f = f;
    const t = f.info(name);
    const q = quantInfo(f).get(name);
    this.dim = cfg.hiddenSize;
    this.vocab = cfg.vocabSize;
    this.#offset = t.offset;
    this.#dtype = "F32";
    const nb = Math.ceil(this.dim / 32);
    if (q) {
      const s = f.info(`${name}.scales`);
      this.#quant = { type: q.type, scalesOffset: s.offset, scalesRow: nb * 2 };
      this.#rowBytes = q.type === "q8" ? nb * 32 : nb * 16;
    } else {
      if (t.dtype !== "F32" && t.dtype !== "F16" && t.dtype !== "BF16") {
        throw new FormatError(f.path, `embedding ${name} has dtype ${t.dtype}`);
      }
      this.#dtype = t.dtype;
      this.#quant = null;
      this.#rowBytes = this.dim * (t.dtype === "F32" ? 4 : 2);
    }
    if (this.#rowBytes * this.vocab > t.byteLength) {
      throw new FormatError(
        f.path,
        `embedding ${name} is smaller than [${this.vocab}, ${this.dim}]`,
      );
    }
  }

  /** x [T, D] f32 for `ids`. */
  async rows(ids: number[]): Promise<Float32Array<ArrayBuffer>> {
    const x = new Float32Array(ids.length * this.dim);
    await Promise.all(ids.map(async (id, t) => {
      const raw = await this.#f.readRange(
        this.#offset + id * this.#rowBytes,
        new Uint8Array(this.#rowBytes),
      );
      const out = x.subarray(t * this.dim, (t + 1) * this.dim);
      if (this.#quant) {
        const sc = await this.#f.readRange(
          this.#quant.scalesOffset + id * this.#quant.scalesRow,
          new Uint8Array(this.#quant.scalesRow),
        );
        decodeQuantRow(this.#quant.type, raw, sc, this.dim, out);
      } else {
        out.set(decodeFloats(raw, this.#dtype));
      }
    }));
    return x;
  }
}

/**
 * The model on the GPU: residency plan, layer reader, KV cache, activations,
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
  /** Per-layer sync for timing. */
  profile: boolean;
  /** Totals. */
  stats: ForwardStats = Forward.#emptyStats();
  /** The timeline recorder, when tracing (see trace.ts). */
  trace: Tracer | undefined = undefined; // TRACE

  readonly #gpu: Gpu;
  readonly #k: Kernels;
  readonly #reader: LayerReader<GPUBuffer>;
  readonly #embed: EmbeddingTable;
  readonly #files: SafetensorsFile[];
  readonly #roles: Partial<Record<LayerRole, string>>[];
  readonly #head: Weights;
  readonly #headNames: { finalNorm: string; lmHead: string };
  readonly #buffers: GPUBuffer[];
  readonly #a: Record<string, GPUBuffer>;
  readonly #readback: GPUBuffer;
  #readbackLogits: GPUBuffer | null = null;
  #gpuBytes: number;
  #peakGpuBytes: number;
  #scratchEstimate: number;
  #failed: string | null = null;

  private constructor(init: {
    gpu: Gpu;
    kernels: Kernels;
    config: ModelConfig;
    plan: ResidencyPlan;
    kv: KvCache;
    reader: LayerReader<GPUBuffer>;
    embed: EmbeddingTable;
    files: SafetensorsFile[];
    roles: Partial<Record<LayerRole, string>>[];
    head: Weights;
    headNames: { finalNorm: string; lmHead: string };
    buffers: GPUBuffer[];
    a: Record<string, GPUBuffer>;
    readback: GPUBuffer;
    maxT: number;
    topK: number;
    profile: boolean;
    gpuBytes: number;
    scratchEstimate: number;
  }) {
    this.#gpu = init.gpu;
    this.#k = init.kernels;
    this.config = init.config;
    this.plan = init.plan;
    this.kv = init.kv;
    this.#reader = init.reader;
    this.#embed = init.embed;
    this.#files = init.files;
    this.#roles = init.roles;
    this.#head = init.head;
    this.#headNames = init.headNames;
    this.#buffers = init.buffers;
    this.#a = init.a;
    this.#readback = init.readback;
    this.maxT = init.maxT;
    this.topK = init.topK;
    this.profile = init.profile;
    this.#gpuBytes = init.gpuBytes;
    this.#peakGpuBytes = init.gpuBytes;
    this.#scratchEstimate = init.scratchEstimate;
  }

  static #emptyStats(): ForwardStats {
    return {
      passes: 0,
      wallS: 0,
      readS: 0,
      readWaitS: 0,
      uploadS: 0,
      computeS: 0,
      bytesStreamed: 0,
      layers: [],
    };
  }

  /** Plans residency, opens every shard, uploads the resident set, allocates the ring, KV cache and activations. */
  static async create(o: ForwardOptions): Promise<Forward> {
    const cfg = o.shards.config;
    const device = o.gpu.device;
    const maxBinding = o.gpu.limits.maxStorageBufferBindingSize;
    const maxBuffer = o.gpu.limits.maxBufferSize;
    const maxT = o.maxT ?? 64;
    const topK = Math.min(o.topK ?? 64, cfg.vocabSize);
    const row = architectureOf(cfg);
    const D = cfg.hiddenSize,
      hd = cfg.headDim,
      F = cfg.intermediateSize,
      V = cfg.vocabSize;
    const qDim = cfg.numHeads * hd, kvDim = cfg.numKvHeads * hd;

    // --- layouts of every shard file (headers only) ---
    const files: SafetensorsFile[] = [];
    const layouts: TensorLayout[] = [];
    const roles: Partial<Record<LayerRole, string>>[] = [];
    const opened: SafetensorsFile[] = [];
    try {
      for (let i = 0; i < cfg.numLayers; i++) {
        const f = await SafetensorsFile.open(o.shards.layerPath(i));
        opened.push(f);
        const want = layerTensors(cfg, i);
        const r: Partial<Record<LayerRole, string>> = {};
        for (const t of want) {
          if (!f.tensors.has(t.name)) {
            throw new FormatError(f.path, `missing tensor ${t.name}`);
          }
          r[t.role] = t.name;
        }
        files.push(f);
        roles.push(r);
        const layout = layoutOf(
          f,
          want.map((t) => t.name),
          maxBinding,
          maxBuffer,
        );
        if (layout.segments.length > 1) {
          throw new UnsupportedError(
            f.path,
            `decoder layer ${i} needs ${layout.bytes} bytes, more than one GPU buffer may hold (maxBufferSize ${maxBuffer})`,
          );
        }
        layouts.push(layout);
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
      const headBytes = headLayout.bytes + (tiedLayout?.bytes ?? 0);

      // --- activations (f32), shapes as in the math ---
      const sizes: Record<string, number> = {
        x: maxT * D, //            [T, D] residual stream
        xb: maxT * D, //           [T, D] normed x / projection output
        q: maxT * qDim, //         [T, H*hd]
        k: maxT * kvDim, //        [T, KV*hd]
        v: maxT * kvDim, //        [T, KV*hd]
        qk: row.qkNorm ? maxT * Math.max(qDim, kvDim) : 4, // [T, H*hd] scratch before the per-head q/k norm
        att: maxT * qDim, //       [T, H*hd] attention output
        hb: maxT * F, //           [T, F] gate, then silu(gate) * up
        hb2: maxT * F, //          [T, F] up
        xLast: D, //               [D] last row of x
        logits: V, //              [V]
        topk: topK * 2, //         [k] (f32 value, u32 index)
        invFreq: Math.max(1, rotaryDim(cfg) / 2), // [R/2]
      };
      const alignUp = (n: number) => Math.max(256, Math.ceil(n / 256) * 256);
      const readbackBytes = alignUp(topK * 8);
      const arenaBytes =
        Math.ceil((cfg.numLayers + 2) * 24 * 256 / (256 * 1024)) * 256 * 1024;
      // kernel scratch (kept by lib/gpu in ctx.memo): attention scores for up to
      // maxT tokens over maxSeqLen positions (~4 bytes per head and position,
      // doubled for the pool's growth), top-k candidates; checked after every pass
      const scratchEstimate = 2 * maxT * o.maxSeqLen * cfg.numHeads * 4 +
        2 * 64 * topK * 8 * 2;
      const activationBytes = Object.values(sizes).reduce((a, n) =>
        a + alignUp(n * 4), 0) +
        readbackBytes +
        arenaBytes + scratchEstimate;

      // --- the plan ---
      const slotsWanted = o.slots ?? (o.prefetch === false ? 1 : 3);
      const plan = planResidency({
        budget: o.budget,
        layerBytes: layouts.map((l) => l.bytes),
        headBytes,
        kvBytesPerLayer: kvBytesPerLayer(cfg, o.maxSeqLen),
        activationBytes: activationBytes +
          (o.trace?.gpuBytes(o.gpu, cfg.numLayers) ?? 0), // TRACE
        slots: slotsWanted,
      });
      o.log?.(describePlan(plan));

      // --- allocate ---
      const buffers: GPUBuffer[] = [];
      const a: Record<string, GPUBuffer> = {};
      for (const [name, n] of Object.entries(sizes)) {
        const b = device.createBuffer({
          label: name,
          size: alignUp(n * 4),
          usage: STORAGE,
        });
        a[name] = b;
        buffers.push(b);
      }
      const inv = Float32Array.from(ropeInvFreq(cfg));
      if (inv.length > 0) device.queue.writeBuffer(a.invFreq, 0, inv);
      const readback = device.createBuffer({
        label: "readback",
        size: readbackBytes,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      const kv = new KvCache(device, cfg, o.maxSeqLen, maxBinding);
      const target = gpuUploadTarget(device);

      // head: final norm + lm_head (or the tied embedding matrix), resident,
      // in as many buffers as maxBufferSize requires
      const uploadResident = async (
        file: SafetensorsFile,
        layout: TensorLayout,
        label: string,
      ): Promise<Weights> => {
        const bufs: GPUBuffer[] = [];
        for (let sgm = 0; sgm < layout.segments.length; sgm++) {
          const size = layout.segments[sgm];
          const buf = target.create(size, `${label}.${sgm}`);
          buffers.push(buf);
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
      };
      const head: Weights = await uploadResident(headFile, headLayout, "head");
      if (tiedLayout) {
        const tiedW = await uploadResident(
          embedFile,
          tiedLayout,
          "lm_head(tied)",
        );
        head.set(row.lmHead, tiedW.get(row.embed)!);
      }

      const reader = await LayerReader.create({
        target,
        files,
        layouts,
        resident: plan.resident,
        streamed: plan.streamed,
        slots: plan.slots,
        slotBytes: plan.slotBytes,
        prefetch: o.prefetch !== false,
        probe: o.log !== undefined,
        mmap: true, // where FFI is allowed: upload straight from the page cache
        trace: o.trace, // TRACE
      });
      const rates = reader.probeRates;
      if (rates) {
        const b = plan.bytesStreamedPerToken;
        const S = plan.streamed.length;
        const readMs = b / rates.readBytesPerS * 1000,
          upMs = b / rates.uploadBytesPerS * 1000;
        const f = (ms: number) => ms < 10 ? ms.toFixed(2) : ms.toFixed(1);
        // per layer and per token, timed like the --profile table's read and
        // upload columns (upload = time in writeBuffer on the JS thread)
        const read = rates.mapped
          ? "no read (the layer files are memory-mapped; the upload copies from the page cache)"
          : `read ${(rates.readBytesPerS / 1e9).toFixed(2)} GB/s = ${
            f(readMs / S)
          } ms/layer`;
        o.log?.(
          `streaming floor (timed on the first ${rates.layers} streamed layer(s), like the profile's read and upload columns): ${read}, upload (writeBuffer) ${
            (rates.uploadBytesPerS / 1e9).toFixed(2)
          } GB/s = ${f(upMs / S)} ms/layer → ${f(readMs)} ms read + ${
            f(upMs)
          } ms upload per token for ${S} streamed layer(s); ≥ ${
            f(Math.max(readMs, upMs))
          } ms/token (${
            (1000 / Math.max(readMs, upMs)).toFixed(1)
          } tokens/s) if they overlap fully with each other and the compute`,
        );
      }
      const fwd = new Forward({
        gpu: o.gpu,
        kernels: o.kernels,
        config: cfg,
        plan,
        kv,
        reader,
        embed,
        files: opened,
        roles,
        head,
        headNames: { finalNorm: row.finalNorm, lmHead: row.lmHead },
        buffers,
        a,
        readback,
        maxT,
        topK,
        profile: o.profile ?? false,
        gpuBytes: plan.totalBytes,
        scratchEstimate,
      });
      fwd.#reader.profile = fwd.profile;
      fwd.trace = o.trace; // TRACE
      await o.trace?.attach(o.gpu, plan, cfg.numLayers); // TRACE
      return fwd;
    } catch (e) {
      for (const f of opened) f.close();
      throw e;
    }
  }

  /** Peak bytes the engine had on the GPU (the plan's total plus any extra readback buffer). */
  get peakGpuBytes(): number {
    return this.#peakGpuBytes;
  }

  /** Zeroes the totals. */
  resetStats(): void {
    this.stats = Forward.#emptyStats();
    this.#reader.resetStats();
  }

  /** Forgets the KV cache (a new sequence). */
  reset(): void {
    this.kv.reset();
  }

  /** f32 BufferRef of `floats` elements of activation `name`, at element offset `at`. */
  #ref(name: string, floats: number, at = 0): BufferRef {
    return { buffer: this.#a[name], offset: at * 4, size: floats * 4 };
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
    try {
      return await this.#forward(ids, opts);
    } catch (e) {
      // usage errors are raised before anything is recorded; anything else may
      // leave the ring or the KV cache half-updated
      if (!(e instanceof UsageError)) this.#failed = (e as Error).message;
      throw e;
    }
  }

  async #forward(
    ids: number[],
    opts: { logits?: boolean },
  ): Promise<{ topk: TopK; logits?: Float32Array }> {
    const cfg = this.config;
    const T = ids.length;
    const pos0 = this.kv.length;
    if (T < 1 || T > this.maxT) {
      throw new UsageError(`forward: T must be 1..${this.maxT}, got ${T}`);
    }
    if (pos0 + T > this.kv.maxSeqLen) {
      throw new UsageError(
        `sequence of ${pos0 + T} tokens exceeds maxSeqLen ${this.kv.maxSeqLen}`,
      );
    }
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) {
        throw new UsageError(
          `token id ${id} is outside the vocabulary (0..${cfg.vocabSize - 1})`,
        );
      }
    }
    const t0 = performance.now();
    this.trace?.passStart(T, pos0); // TRACE
    const device = this.#gpu.device;
    const K = this.#k;
    const D = cfg.hiddenSize,
      H = cfg.numHeads,
      KV = cfg.numKvHeads,
      hd = cfg.headDim;
    const F = cfg.intermediateSize, V = cfg.vocabSize;
    const qDim = H * hd, kvDim = KV * hd;
    const eps = cfg.rmsNormEps;
    const R = rotaryDim(cfg);
    const scale = 1 / Math.sqrt(hd);
    const row = architectureOf(cfg);

    // x [T, D] = embedding rows, looked up on the CPU
    const x0 = await this.#embed.rows(ids);
    device.queue.writeBuffer(this.#a.x, 0, x0);
    K.reset();

    const x = this.#ref("x", T * D), xb = this.#ref("xb", T * D);
    const q = this.#ref("q", T * qDim),
      k = this.#ref("k", T * kvDim),
      v = this.#ref("v", T * kvDim);
    const att = this.#ref("att", T * qDim);
    const hb = this.#ref("hb", T * F), hb2 = this.#ref("hb2", T * F);
    const invFreq = this.#ref("invFreq", Math.max(1, R / 2));
    const profiled: LayerProfile[] = [];

    for (let l = 0; l < cfg.numLayers; l++) {
      const got = await this.#reader.acquire(l);
      const w = bindLayout(got.layout, got.buffer);
      const names = this.#roles[l];
      const W = (role: LayerRole) => w.get(names[role]!) as GpuWeight;
      const B = (
        role: LayerRole,
      ) => (names[role] ? w.get(names[role]!) as BufferRef : undefined);
      const { k: kCache, v: vCache } = this.kv.layer(l);

      const enc = device.createCommandEncoder({ label: `layer.${l}` });
      let pass = enc.beginComputePass(this.trace?.gpuPass(l, true, false)); // TRACE
      // attention rmsnorm: xb [T, D] = rmsnorm(x) * w
      K.rmsnorm(pass, {
        x,
        weight: B("inputNorm")!,
        out: xb,
        rows: T,
        dim: D,
        eps,
      });
      // q [T, H*hd], k [T, KV*hd], v [T, KV*hd] = xb · Wᵀ (+ bias)
      if (row.qkNorm) {
        // per-head RMSNorm of q and k (Qwen3): project into qk, normalize each head into q / k
        const qk = this.#ref("qk", T * qDim);
        K.matmul(pass, { x: xb, w: W("qProj"), bias: B("qBias"), out: qk, T });
        K.rmsnorm(pass, {
          x: qk,
          weight: B("qNorm")!,
          out: q,
          rows: T * H,
          dim: hd,
          eps,
        });
        const kk = this.#ref("qk", T * kvDim);
        K.matmul(pass, { x: xb, w: W("kProj"), bias: B("kBias"), out: kk, T });
        K.rmsnorm(pass, {
          x: kk,
          weight: B("kNorm")!,
          out: k,
          rows: T * KV,
          dim: hd,
          eps,
        });
      } else {
        K.matmul(pass, { x: xb, w: W("qProj"), bias: B("qBias"), out: q, T });
        K.matmul(pass, { x: xb, w: W("kProj"), bias: B("kBias"), out: k, T });
      }
      K.matmul(pass, { x: xb, w: W("vProj"), bias: B("vBias"), out: v, T });
      // RoPE (rotate-half) on q and k at positions pos0..pos0+T-1
      K.rope(pass, {
        x: q,
        T,
        nHeads: H,
        headDim: hd,
        rotaryDim: R,
        pos0,
        invFreq,
      });
      K.rope(pass, {
        x: k,
        T,
        nHeads: KV,
        headDim: hd,
        rotaryDim: R,
        pos0,
        invFreq,
      });
      pass.end();
      // kCache, vCache [maxSeq, KV*hd]: rows pos0..pos0+T-1 = k, v
      enc.copyBufferToBuffer(
        k.buffer,
        0,
        kCache.buffer,
        this.kv.rowOffset(pos0),
        T * kvDim * 4,
      );
      enc.copyBufferToBuffer(
        v.buffer,
        0,
        vCache.buffer,
        this.kv.rowOffset(pos0),
        T * kvDim * 4,
      );
      pass = enc.beginComputePass(this.trace?.gpuPass(l, false, true)); // TRACE
      // att [T, H*hd] = softmax(q kᵀ * scale, causal) v   (GQA: head h reads kv head h / (H/KV))
      K.attention(pass, {
        q,
        kCache,
        vCache,
        out: att,
        T,
        pos0,
        nHeads: H,
        nKvHeads: KV,
        headDim: hd,
        scale,
      });
      // xb [T, D] = att · Woᵀ (+ bias); x += xb
      K.matmul(pass, { x: att, w: W("oProj"), bias: B("oBias"), out: xb, T });
      K.add(pass, { x, y: xb, out: x, n: T * D });
      // ffn rmsnorm: xb = rmsnorm(x) * w
      K.rmsnorm(pass, {
        x,
        weight: B("postAttentionNorm")!,
        out: xb,
        rows: T,
        dim: D,
        eps,
      });
      // hb [T, F] = xb · Wgᵀ, hb2 [T, F] = xb · Wuᵀ, hb = silu(hb) * hb2
      K.matmul(pass, { x: xb, w: W("gateProj"), out: hb, T });
      K.matmul(pass, { x: xb, w: W("upProj"), out: hb2, T });
      K.siluMul(pass, { gate: hb, up: hb2, out: hb, n: T * F });
      // xb [T, D] = hb · Wdᵀ; x += xb
      K.matmul(pass, { x: hb, w: W("downProj"), out: xb, T });
      K.add(pass, { x, y: xb, out: x, n: T * D });
      pass.end();
      this.trace?.submitting(l); // TRACE
      K.submit([enc.finish()]);
      this.trace?.submitted(l); // TRACE
      let computeMs = 0;
      if (this.profile) {
        const c0 = performance.now();
        await device.queue.onSubmittedWorkDone();
        computeMs = performance.now() - c0;
        this.stats.computeS += computeMs / 1000;
      }
      await this.#reader.release(l);
      if (this.profile) {
        const lt = got.streamed ? this.#reader.stats.loads.at(-1) : undefined;
        profiled.push({
          layer: l,
          streamed: got.streamed,
          readMs: lt?.readMs ?? 0,
          readWaitMs: lt?.readWaitMs ?? 0,
          uploadMs: lt?.uploadMs ?? 0,
          computeMs,
        });
      }
    }

    // head: xLast [D] = x[T-1]; xb[0] = rmsnorm(xLast); logits [V] = xb[0] · Wlmᵀ; top-k
    const enc = device.createCommandEncoder({ label: "head" });
    enc.copyBufferToBuffer(this.#a.x, (T - 1) * D * 4, this.#a.xLast, 0, D * 4);
    const pass = enc.beginComputePass(
      this.trace?.gpuPass(cfg.numLayers, true, true), // TRACE
    );
    const xLast = this.#ref("xLast", D),
      xn = this.#ref("xb", D),
      logits = this.#ref("logits", V);
    K.rmsnorm(pass, {
      x: xLast,
      weight: this.#head.get(this.#headNames.finalNorm) as BufferRef,
      out: xn,
      rows: 1,
      dim: D,
      eps,
    });
    K.matmul(pass, {
      x: xn,
      w: this.#head.get(this.#headNames.lmHead) as GpuWeight,
      out: logits,
      T: 1,
    });
    K.topk(pass, {
      logits,
      out: this.#ref("topk", this.topK * 2),
      V,
      k: this.topK,
    });
    pass.end();
    enc.copyBufferToBuffer(this.#a.topk, 0, this.#readback, 0, this.topK * 8);
    let logitsBuf: GPUBuffer | null = null;
    if (opts.logits) {
      if (!this.#readbackLogits) {
        const size = Math.ceil(V * 4 / 256) * 256;
        this.#readbackLogits = device.createBuffer({
          label: "readback.logits",
          size,
          usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        });
        this.#gpuBytes += size;
        this.#peakGpuBytes = Math.max(this.#peakGpuBytes, this.#gpuBytes);
      }
      logitsBuf = this.#readbackLogits;
      enc.copyBufferToBuffer(this.#a.logits, 0, logitsBuf, 0, V * 4);
    }
    this.trace?.resolve(enc); // TRACE
    this.trace?.submitting(cfg.numLayers); // TRACE
    K.submit([enc.finish()]);
    this.trace?.submitted(cfg.numLayers); // TRACE
    // the next pass's first streamed layers upload while the head computes
    this.#reader.pump();

    // the one readback of this pass
    const w0 = performance.now();
    await Promise.all([
      this.#readback.mapAsync(GPUMapMode.READ),
      logitsBuf?.mapAsync(GPUMapMode.READ),
      this.trace?.gpuDone(), // TRACE
    ]);
    const waitMs = performance.now() - w0;
    this.trace?.readback(w0); // TRACE
    if (!this.profile) this.stats.computeS += waitMs / 1000;
    // kernel scratch beyond the plan's estimate counts against the peak
    let scratch = 0;
    for (const b of this.#k.ctx.memo.values()) {
      if (b instanceof GPUBuffer) scratch += b.size;
    }
    this.#peakGpuBytes = Math.max(
      this.#peakGpuBytes,
      this.#gpuBytes + Math.max(0, scratch - this.#scratchEstimate),
    );
    this.trace?.memory(this.#gpuBytes, scratch - this.#scratchEstimate); // TRACE
    const pairs = this.#readback.getMappedRange(0, this.topK * 8);
    const f = new Float32Array(pairs.slice(0));
    const u = new Uint32Array(f.buffer);
    this.#readback.unmap();
    const values = new Float32Array(this.topK),
      topIds = new Uint32Array(this.topK);
    for (let i = 0; i < this.topK; i++) {
      values[i] = f[2 * i];
      topIds[i] = u[2 * i + 1];
    }
    let full: Float32Array | undefined;
    if (logitsBuf) {
      full = new Float32Array(logitsBuf.getMappedRange(0, V * 4).slice(0));
      logitsBuf.unmap();
    }
    this.kv.length = pos0 + T;

    const rs: ReaderStats = this.#reader.stats;
    this.stats.passes++;
    this.stats.wallS += (performance.now() - t0) / 1000;
    this.stats.readS = rs.readS;
    this.stats.readWaitS = rs.readWaitS;
    this.stats.uploadS = rs.uploadS;
    this.stats.bytesStreamed = rs.bytesStreamed;
    if (this.profile) this.stats.layers.push(...profiled);
    return { topk: { values, ids: topIds }, logits: full };
  }

  /** Frees GPU buffers and closes files. */
  async dispose(): Promise<void> {
    // uploads pumped for a next pass may still be queued: let them finish first
    await this.#gpu.device.queue.onSubmittedWorkDone();
    await this.#reader.destroy();
    for (const b of this.#buffers) b.destroy();
    this.#readback.destroy();
    this.#readbackLogits?.destroy();
    this.trace?.detach(); // TRACE
    this.kv.destroy();
    for (const f of this.#files) f.close();
  }
}
