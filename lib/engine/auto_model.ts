/**
 * `AutoModel`: AirLLM's API in TypeScript idiom. `fromPretrained` resolves a
 * shard directory, checkpoint or repo id (splitting into a cache on first
 * use), plans residency under the GPU budget and returns a model whose
 * `generate` / `stream` run the layer-streaming forward pass.
 *
 * @module
 */
import { isPacked, PACKED, type Quantization } from "../quant/encoding.ts";
import { BudgetError, UsageError } from "../errors.ts";
import { ShardDir } from "../format/shards.ts";
import { type Gpu, requestGpu } from "../gpu/device.ts";
import { Kernels } from "../gpu/kernels.ts";
import { defaultGpuMemory, parseSize } from "./plan.ts";
import { formatBytes } from "../_units.ts";
import { defaultMaxSeqLen } from "./kv_cache.ts";
import { Tokenizer } from "../text/tokenizer.ts";
import { StopStrings, StreamingDetokenizer } from "../text/detokenizer.ts";
import { applyChatTemplate } from "../text/chat_template.ts";
import {
  generateIds,
  type GenerateIdsOptions,
  type GenerateOptions,
  type GenerationStats,
} from "./generate.ts";
import type { ModelConfig } from "../model/config.ts";
import { Forward, type ForwardStats } from "./forward.ts";
import type { ResidencyPlan } from "./plan.ts";
import { resolveModel } from "./resolve.ts";
import { type BatchStats, type BatchToken, generateBatch } from "./batch.ts";
import {
  type Drafter,
  generateSpeculative,
  ModelDrafter,
  NgramDrafter,
} from "./speculative.ts";
import type { Tracer } from "./trace.ts";

export type { GenerateOptions, GenerationStats } from "./generate.ts";
export type { BatchStats, BatchToken, StopReason } from "./batch.ts";
export type {
  Architecture,
  ModelConfig,
  RopeScaling,
} from "../model/config.ts";
export type { ResidencyPlan } from "./plan.ts";
export { type TraceJson, Tracer, type TracerOptions } from "./trace.ts";
export type { ForwardStats, LayerProfile } from "./forward.ts";
export type { Gpu, GpuLimits } from "../gpu/device.ts";
export type {
  DecodeOptions,
  EncodeOptions,
  Tokenizer,
} from "../text/tokenizer.ts";

/** Options of {@link AutoModel.fromPretrained}. */
export interface FromPretrainedOptions {
  /** Split-time quantization: "4bit", "8bit" (the packed encodings with that `compression`) or null (source precision). */
  compression?: "4bit" | "8bit" | null;
  /** Split-time quantization by encoding name (any packed encoding in lib/quant/encoding.ts); overrides `compression`. */
  quantize?: Quantization;
  /** GPU memory budget: bytes or "2GB", "512MiB" (default: see defaultGpuMemory in lib/io/plan.ts). */
  gpuMemory?: number | string;
  /** KV cache positions (default min(max_position_embeddings, 4096), lowered to fit the budget). */
  maxSeqLen?: number;
  /** Per-layer timing (syncs after each layer: slower). */
  profiling?: boolean;
  /** Where to write the split shards (default: the cache directory). */
  layerShardsSavingPath?: string;
  /** Read ahead and overlap reads, uploads and compute (default true). */
  prefetch?: boolean;
  /** llama2.c tokenizer file for `.bin` checkpoints. */
  tokenizer?: string;
  /** Largest prompt chunk per pass (default 64); also the most rows (tokens of every sequence) one pass carries. */
  prefillChunk?: number;
  /**
   * Sequences that share each forward pass when `generate` / `stream` get an
   * array of prompts (default 1; at most `prefillChunk`). Each has its own KV
   * cache, planned under the budget.
   */
  batchSize?: number;
  /**
   * Speculative decoding (single prompts): a draft model (path or repo id,
   * sharing the vocabulary; loaded first, all resident, its bytes taken from
   * the budget) or `"ngram"` (prompt lookup, no model) proposes
   * `draftTokens` tokens that the target verifies in one pass. Greedy output
   * is unchanged; sampled output keeps its distribution (see
   * lib/engine/speculative.ts). Default: none.
   */
  draft?: string;
  /** Tokens proposed per target pass with `draft` (default 4). */
  draftTokens?: number;
  /** Progress lines (the plan etc.); default: none. */
  log?: (line: string) => void;
  /** Use this GPU instead of requesting one. */
  gpu?: Gpu;
  /** Ring slots to plan for when layers stream (default 3 with prefetch, 1 without; benchmarks pin it). */
  ringSlots?: number;
  /**
   * What streams through the ring: "auto" (default) whole layers when at
   * least 2 slots of them fit, else sub-layer units (one or a few matrices);
   * "matrices" always sub-layer units.
   */
  streamUnits?: "auto" | "matrices";
  /**
   * Records every forward pass of this model on a timeline (reads, uploads,
   * GPU compute per layer, sampling, readback, GPU memory): pass a
   * {@link Tracer} and write it with `tracer.write(path)` when done
   * (see docs/engine.md "Tracing"). Default: off, at no cost.
   */
  trace?: Tracer;
}

/** Everything measured over the last generate/stream call. */
export interface ModelStats extends GenerationStats {
  /** Batched calls: sequences, each one's stop reason, passes. */
  batch?: Pick<BatchStats, "sequences" | "stopReasons" | "passes">;
  /** Forward-pass totals (read, upload, compute, bytes streamed). */
  forward: ForwardStats;
  /** Weight bytes streamed per forward pass. */
  bytesStreamedPerToken: number;
  /** Peak GPU bytes. */
  peakGpuBytes: number;
}

/**
 * A model ready to generate.
 *
 * @example
 * ```ts ignore
 * import { AutoModel } from "./auto_model.ts";
 * const model = await AutoModel.fromPretrained("models/tiny-llama", { gpuMemory: "2GB" });
 * const ids = await model.generate([1, 15, 27], { maxNewTokens: 16, temperature: 0 });
 * assert.ok(ids.length <= 16);
 * const streamed: number[] = [];
 * for await (const id of model.stream("Once upon a time", { maxNewTokens: 32, seed: 1 })) streamed.push(id);
 * await model.dispose();
 * ```
 */
export class AutoModel {
  /** The normalized config. */
  readonly config: ModelConfig;
  /** The tokenizer (null when the shard directory has no tokenizer.json). */
  readonly tokenizer: Tokenizer | null;
  /** The shard directory in use. */
  readonly dir: string;
  /** The residency plan. */
  readonly plan: ResidencyPlan;
  /** Stats of the last generate/stream call. */
  lastStats: ModelStats | null = null;
  #fwd: Forward;
  #busy = false;
  #draft: AutoModel | "ngram" | null = null;
  #draftTokens = 4;

  private constructor(dir: string, fwd: Forward, tokenizer: Tokenizer | null) {
    this.dir = dir;
    this.#fwd = fwd;
    this.config = fwd.config;
    this.plan = fwd.plan;
    this.tokenizer = tokenizer;
  }

  /**
   * Loads a model from a shard directory, a Hugging Face checkpoint directory,
   * a `.gguf` / llama2.c `.bin` file, or `org/name[@rev]`.
   */
  static async fromPretrained(
    pathOrId: string,
    opts: FromPretrainedOptions = {},
  ): Promise<AutoModel> {
    const c = opts.compression ?? null;
    const packed = c === null
      ? undefined
      : PACKED.find((e) => e.compression === c);
    if (c !== null && !packed) {
      throw new UsageError(
        `compression must be "4bit", "8bit" or null (got ${c})`,
      );
    }
    const dir = await resolveModel(pathOrId, {
      quantize: opts.quantize ??
        (packed && isPacked(packed.name) ? packed.name : "none"),
      layerShardsSavingPath: opts.layerShardsSavingPath,
      tokenizer: opts.tokenizer,
      log: opts.log,
    });
    const shards = await ShardDir.open(dir);
    await shards.checkIntegrity({ log: opts.log }); // before any GPU work
    const cfg = shards.config;
    let tokenizer: Tokenizer | null = null;
    try {
      await Deno.stat(`${dir}/tokenizer.json`);
      tokenizer = await Tokenizer.fromDir(dir);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    const gpu = opts.gpu ?? await requestGpu();
    const kernels = await Kernels.create(gpu);
    let systemMemory: number | undefined;
    try {
      systemMemory = Deno.systemMemoryInfo().total;
    } catch {
      systemMemory = undefined;
    }
    const budget = opts.gpuMemory !== undefined
      ? parseSize(opts.gpuMemory)
      : defaultGpuMemory({
        isFallback: gpu.adapter.isFallback,
        maxBufferSize: gpu.limits.maxBufferSize,
        systemMemory,
      });
    if (opts.gpuMemory === undefined) {
      opts.log?.(
        `budget: ${formatBytes(budget)} by default (${
          envSet("STRATA_GPU_MEMORY")
            ? "$STRATA_GPU_MEMORY"
            : gpu.adapter.isFallback
            ? "software adapter: 50% of system RAM"
            : "75% of an assumed 8 GiB GPU"
        }); set --gpu-memory to change it`,
      );
    }
    if (
      opts.maxSeqLen !== undefined &&
      (!Number.isSafeInteger(opts.maxSeqLen) || opts.maxSeqLen < 1)
    ) {
      throw new UsageError(
        `maxSeqLen must be a positive integer, got ${opts.maxSeqLen}`,
      );
    }
    let maxSeqLen = opts.maxSeqLen ?? defaultMaxSeqLen(cfg);
    const batchSize = opts.batchSize ?? 1;
    const maxT = opts.prefillChunk ?? 64;
    const draftTokens = opts.draftTokens ?? 4;
    if (
      opts.draft !== undefined &&
      (!Number.isSafeInteger(draftTokens) || draftTokens < 1 ||
        draftTokens + 1 > maxT)
    ) {
      throw new UsageError(
        `draftTokens must be an integer 1..${maxT - 1}, got ${draftTokens}`,
      );
    }
    let draft: AutoModel | "ngram" | null = null;
    let targetBudget = budget;
    if (opts.draft === "ngram") draft = "ngram";
    else if (opts.draft !== undefined) {
      draft = await AutoModel.fromPretrained(opts.draft, {
        gpu,
        gpuMemory: budget,
        maxSeqLen: opts.maxSeqLen ?? Math.min(maxSeqLen, 4096),
        prefillChunk: opts.prefillChunk,
        log: opts.log && ((l) => opts.log!(`draft: ${l}`)),
      });
      const problem = draft.plan.streamed.length > 0
        ? `does not fit resident in the budget (${
          formatBytes(budget)
        }): ${draft.plan.streamed.length} of its layers would stream`
        : draft.config.vocabSize !== cfg.vocabSize
        ? `has a vocabulary of ${draft.config.vocabSize}, the target ${cfg.vocabSize}`
        : null;
      if (problem) {
        await draft.dispose();
        throw new (draft.plan.streamed.length > 0 ? BudgetError : UsageError)(
          `draft model ${opts.draft} ${problem}`,
        );
      }
      targetBudget = budget - draft.#fwd.peakGpuBytes;
    }
    if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > maxT) {
      throw new UsageError(
        `batchSize must be an integer 1..${maxT} (prefillChunk), got ${batchSize}`,
      );
    }
    for (;;) {
      try {
        const fwd = await Forward.create({
          gpu,
          kernels,
          shards,
          budget: targetBudget,
          maxSeqLen,
          prefetch: opts.prefetch,
          slots: opts.ringSlots,
          units: opts.streamUnits,
          profile: opts.profiling,
          maxT: opts.prefillChunk,
          sequences: batchSize,
          headRows: draft ? Math.max(batchSize, draftTokens + 1) : undefined,
          log: opts.log,
          trace: opts.trace,
        });
        const m = new AutoModel(dir, fwd, tokenizer);
        m.#draft = draft;
        m.#draftTokens = draftTokens;
        return m;
      } catch (e) {
        // the default maxSeqLen is capped by the budget: halve it until the plan fits (≥ 256)
        if (
          e instanceof BudgetError &&
          opts.maxSeqLen === undefined && maxSeqLen > 256
        ) {
          maxSeqLen = Math.max(256, Math.floor(maxSeqLen / 2));
          opts.log?.(`budget: lowering maxSeqLen to ${maxSeqLen}`);
          continue;
        }
        if (draft instanceof AutoModel) await draft.dispose();
        throw e;
      }
    }
  }

  /** The KV cache length in positions. */
  get maxSeqLen(): number {
    return this.#fwd.kv.maxSeqLen;
  }

  /** Per-layer timing on/off (syncs per layer when on). */
  set profiling(on: boolean) {
    this.#fwd.profile = on;
  }

  /** Text → ids with the tokenizer (BOS added as configured); ids pass through. */
  encode(input: number[] | string): number[] {
    if (typeof input !== "string") return input;
    if (!this.tokenizer) {
      throw new UsageError(
        `${this.dir}: no tokenizer.json; pass token ids instead of text`,
      );
    }
    const ids = this.tokenizer.encode(input);
    if (ids.length === 0 && this.tokenizer.bosTokenId !== null) {
      ids.push(this.tokenizer.bosTokenId);
    }
    return ids;
  }

  #eosIds(): number[] {
    const s = new Set<number>(this.config.eosTokenIds);
    for (const id of this.tokenizer?.eosTokenIds ?? []) s.add(id);
    return [...s];
  }

  /** Sequences that share a pass (`batchSize`). */
  get batchSize(): number {
    return this.#fwd.caches.length;
  }

  /**
   * Generates and returns the new ids (EOS included when it ends
   * generation). Given an array of prompts, generates after all of them in
   * shared passes (see {@link FromPretrainedOptions.batchSize}) and returns
   * each one's ids; `opts` may then be one object per prompt.
   */
  generate(
    input: number[] | string,
    opts?: GenerateOptions,
  ): Promise<number[]>;
  /** Generates after every prompt in shared passes; returns each one's new ids. */
  generate(
    inputs: (number[] | string)[],
    opts?: GenerateOptions | GenerateOptions[],
  ): Promise<number[][]>;
  async generate(
    input: number[] | string | (number[] | string)[],
    opts: GenerateOptions | GenerateOptions[] = {},
  ): Promise<number[] | number[][]> {
    if (isBatch(input)) {
      const out: number[][] = input.map(() => []);
      for await (const t of this.stream(input, opts)) out[t.index].push(t.id);
      return out;
    }
    const out: number[] = [];
    for await (const id of this.stream(input, opts as GenerateOptions)) {
      out.push(id);
    }
    return out;
  }

  /**
   * Streams new ids as they are sampled; given an array of prompts, streams
   * `{ index, id }` of every sequence (see {@link AutoModel.generate}).
   */
  stream(
    input: number[] | string,
    opts?: GenerateOptions,
  ): AsyncGenerator<number, void, undefined>;
  /** Streams `{ index, id }` of every prompt's sequence as ids are sampled. */
  stream(
    inputs: (number[] | string)[],
    opts?: GenerateOptions | GenerateOptions[],
  ): AsyncGenerator<BatchToken, void, undefined>;
  stream(
    input: number[] | string | (number[] | string)[],
    opts: GenerateOptions | GenerateOptions[] = {},
  ): AsyncGenerator<number | BatchToken, void, undefined> {
    if (isBatch(input)) return this.#streamBatch(input, opts);
    if (Array.isArray(opts)) {
      throw new UsageError("one prompt takes one options object");
    }
    return this.#stream(input, opts);
  }

  async *#stream(
    input: number[] | string,
    opts: GenerateOptions,
  ): AsyncGenerator<number, void, undefined> {
    if (this.#busy) {
      throw new UsageError(
        "this model is already generating; wait for the other call to finish",
      );
    }
    this.#busy = true;
    const prompt = this.encode(input);
    this.#fwd.resetStats();
    let gen: GenerationStats | null = null;
    const stops = opts.stop?.length ? new StopStrings(opts.stop) : null;
    if (stops && !this.tokenizer) {
      throw new UsageError("stop strings need a tokenizer");
    }
    const detok = stops
      ? new StreamingDetokenizer(this.tokenizer!, { prefixIds: prompt })
      : null;
    try {
      for await (
        const id of this.#generate(prompt, {
          ...opts,
          eosIds: this.#eosIds(),
          onStats: (s) => gen = s,
        })
      ) {
        yield id;
        if (stops && detok && stops.push(detok.push(id)).stopped) {
          break;
        }
      }
    } finally {
      this.#busy = false;
      if (gen) {
        if (stops?.stopped) (gen as GenerationStats).stopReason = "stop";
        this.lastStats = {
          ...(gen as GenerationStats),
          forward: { ...this.#fwd.stats },
          // MoE: measured over decode passes (experts actually moved)
          bytesStreamedPerToken: this.#fwd.stats.experts?.decodeBytesPerToken ??
            this.plan.bytesStreamedPerToken,
          peakGpuBytes: this.#fwd.peakGpuBytes,
        };
      }
    }
  }

  /** Plain or speculative generation of one prompt. */
  #generate(
    prompt: number[],
    opts: GenerateIdsOptions,
  ): AsyncGenerator<number, void, undefined> {
    const d = this.#draft;
    if (d === null) return generateIds(this.#fwd, prompt, opts);
    const drafter: Drafter = d === "ngram"
      ? new NgramDrafter()
      : new ModelDrafter(d.#fwd, opts);
    return generateSpeculative(this.#fwd, drafter, prompt, {
      ...opts,
      draftTokens: this.#draftTokens,
    });
  }

  async *#streamBatch(
    inputs: (number[] | string)[],
    opts: GenerateOptions | GenerateOptions[],
  ): AsyncGenerator<BatchToken, void, undefined> {
    if (this.#busy) {
      throw new UsageError(
        "this model is already generating; wait for the other call to finish",
      );
    }
    const each = (i: number) => (Array.isArray(opts) ? opts[i] : opts) ?? {};
    if (Array.isArray(opts) && opts.length !== inputs.length) {
      throw new UsageError(
        `${inputs.length} prompts but ${opts.length} option objects`,
      );
    }
    const prompts = inputs.map((p) => this.encode(p));
    const stops = prompts.map((p, i) => {
      const stop = each(i).stop?.filter((s) => s.length > 0) ?? [];
      if (stop.length === 0) return null;
      if (!this.tokenizer) {
        throw new UsageError("stop strings need a tokenizer");
      }
      return {
        stops: new StopStrings(stop),
        detok: new StreamingDetokenizer(this.tokenizer, { prefixIds: p }),
      };
    });
    const eosIds = this.#eosIds();
    this.#busy = true;
    this.#fwd.resetStats();
    let gen: BatchStats | null = null;
    try {
      yield* generateBatch(this.#fwd, prompts, {
        perPrompt: prompts.map((_, i) => ({ ...each(i), eosIds })),
        signal: prompts.length > 0 ? each(0).signal : undefined,
        shouldStop: (i, id) => {
          const s = stops[i];
          return s !== null && s.stops.push(s.detok.push(id)).stopped;
        },
        onStats: (s) => gen = s,
      });
    } finally {
      this.#busy = false;
      if (gen) {
        const { sequences, stopReasons, passes, ...g } = gen as BatchStats;
        this.lastStats = {
          ...g,
          batch: { sequences, stopReasons, passes },
          forward: { ...this.#fwd.stats },
          bytesStreamedPerToken: this.plan.bytesStreamedPerToken,
          peakGpuBytes: this.#fwd.peakGpuBytes,
        };
      }
    }
  }

  /** First-step logits of `ids` (all V values; for tests and debugging). */
  async logits(ids: number[]): Promise<Float32Array> {
    this.#fwd.reset();
    let out: Float32Array | undefined;
    for (let i = 0; i < ids.length; i += this.#fwd.maxT) {
      const r = await this.#fwd.forward(ids.slice(i, i + this.#fwd.maxT), {
        logits: i + this.#fwd.maxT >= ids.length,
      });
      out = r.logits;
    }
    return out!;
  }

  /**
   * Renders a conversation with the model's chat template (BOS included when
   * the template writes it: encode with `addSpecialTokens: false`).
   */
  applyChatTemplate(
    messages: { role: string; content: string }[],
    opts: { addGenerationPrompt?: boolean } = {},
  ): string {
    if (!this.tokenizer) {
      throw new UsageError(
        `${this.dir}: no tokenizer.json, so no chat template`,
      );
    }
    return applyChatTemplate(this.tokenizer, messages, {
      addGenerationPrompt: opts.addGenerationPrompt,
      model: this.dir,
    });
  }

  /** Frees the GPU buffers and closes the shard files. */
  async dispose(): Promise<void> {
    await this.#fwd.dispose();
    if (this.#draft instanceof AutoModel) await this.#draft.dispose();
  }
}

/** An array of prompts (not one prompt of ids). */
function isBatch(
  input: number[] | string | (number[] | string)[],
): input is (number[] | string)[] {
  return Array.isArray(input) &&
    input.some((x) => typeof x !== "number");
}

function envSet(name: string): boolean {
  try {
    return Boolean(Deno.env.get(name));
  } catch {
    return false; // no --allow-env
  }
}
