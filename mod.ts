/**
 * Strata: run large language models on GPUs much smaller than the model, by
 * streaming decoder layers through WebGPU.
 *
 * A checkpoint (Hugging Face directory, GGUF, llama2.c or a Hub repo id) is split
 * once into per-layer shard files; generation then keeps the layers that fit the
 * memory budget resident and streams the rest, reading and uploading the next
 * layers while the current one computes.
 *
 * @example
 * ```ts ignore
 * import { AutoModel } from "jsr:@strata/strata";
 * const model = await AutoModel.fromPretrained("path/to/model", { gpuMemory: "2GB" });
 * const ids = await model.generate("Once upon a time", { maxNewTokens: 32 });
 * console.log(model.tokenizer?.decode(ids)); // tokenizer is null for a model without one
 * await model.dispose();
 * ```
 *
 * @module
 */

// The model: load, generate, stream.
export * from "./lib/engine/auto_model.ts";
export { TRACKS } from "./lib/engine/trace.ts";
export type { GpuTiming, TraceEvent, Track } from "./lib/engine/trace.ts";
export type {
  GenerateOptions,
  GenerationStats,
} from "./lib/engine/generate.ts";
export type {
  Architecture,
  ModelConfig,
  RopeScaling,
} from "./lib/model/config.ts";
export { normalizeConfig, validateModelConfig } from "./lib/model/config.ts";
export type { MoeConfig } from "./lib/model/model_config.ts";
export type { ExpertLayoutRecord } from "./lib/model/expert_layout.ts";
export type { MoeStats } from "./lib/engine/moe_stats.ts";
export { Sampler } from "./lib/engine/sampler.ts";
export type { Candidates, SamplerOptions } from "./lib/engine/sampler.ts";

// Text: tokenizer, streaming detokenizer, chat templates.
export * from "./lib/text/tokenizer.ts";
export * from "./lib/text/detokenizer.ts";
export * from "./lib/text/chat_template.ts";

// Chat: a conversation through the chat template, replies as text.
export * from "./lib/chat/session.ts";
export * from "./lib/chat/reply.ts";

// The OpenAI-compatible HTTP server (`strata serve`).
export { startServer } from "./lib/server/server.ts";
export type { RunningServer, StartServerOptions } from "./lib/server/server.ts";
export type {
  HandlerOptions,
  ServeDefaults,
  ServedModel,
} from "./lib/server/handler.ts";
export { Scheduler } from "./lib/server/scheduler.ts";
export type { SchedulerModel } from "./lib/server/scheduler.ts";

// Files: sources, the splitter, the shard directory, safetensors.
export { openSource } from "./lib/split/open_source.ts";
export type { OpenSourceOptions } from "./lib/split/open_source.ts";
export type {
  ModelSource,
  SourceDtype,
  SourceTensor,
  TensorData,
} from "./lib/split/source.ts";
export { splitModel } from "./lib/split/split.ts";
export type {
  SplitFloor,
  SplitOptions,
  SplitProgress,
} from "./lib/split/split.ts";
export { SHARD_FORMAT, SHARD_VERSION, ShardDir } from "./lib/format/shards.ts";
export type {
  Manifest,
  ManifestFile,
  QuantLayout,
} from "./lib/format/shards.ts";
export {
  SafetensorsFile,
  SafetensorsWriter,
} from "./lib/format/safetensors.ts";
export type { TensorDecl, TensorInfo } from "./lib/format/safetensors.ts";
export type { Dtype } from "./lib/format/dtype.ts";
export { encoding, ENCODINGS } from "./lib/quant/encoding.ts";
export type {
  Encoding,
  EncodingKernels,
  EncodingName,
  FloatDtype,
  PackedName,
  PackedWeight,
  Quantization,
} from "./lib/quant/encoding.ts";
export { GGML_ENCODING_NAMES } from "./lib/quant/ggml_encodings.ts";
export type { GgmlEncodingName } from "./lib/quant/ggml_encodings.ts";
export { dequantizeQ8, quantizeQ8 } from "./lib/quant/q8.ts";
export { dequantizeQ4, quantizeQ4 } from "./lib/quant/q4.ts";

// The Hugging Face Hub.
export { downloadSnapshot } from "./lib/hub/download.ts";
export type { DownloadOptions, DownloadProgress } from "./lib/hub/download.ts";

// The GPU.
export { requestGpu } from "./lib/gpu/device.ts";
export type {
  Gpu,
  GpuLimits,
  KernelChoice,
  KernelFamily,
  RequestGpuOptions,
} from "./lib/gpu/device.ts";

// Errors users may catch.
export * from "./lib/errors.ts";
