/**
 * GGUF → model source: metadata to a Hugging Face `config.json` object, GGUF
 * tensors to Hugging Face names and layout, and the tokenizer metadata to
 * `tokenizer.json` / `tokenizer_config.json` / `generation_config.json`.
 *
 * - Architectures: `llama` (also Mistral-style files), `qwen2`, `qwen3`,
 *   `chatglm`, `glm4` (see _gguf_glm.ts), the experts of Mixtral (`llama`
 *   with `expert_count`), `qwen2moe` and `qwen3moe` (_gguf_experts.ts).
 *   Others: UnsupportedError.
 * - Tensor types: F32, F16, BF16 as raw bytes; the GGUF types an encoding
 *   names in its `gguf` field (lib/quant/encoding.ts) repacked into it
 *   without dequantizing. Others: UnsupportedError.
 *   Q8_0 and Q4_0 become q8 and q4 (scales moved to their own tensor);
 *   Q4_1, Q5_0, Q5_1, IQ4_NL and Q2_K..Q6_K are kept exactly as in the file
 *   (lib/quant/ggml_encodings.ts).
 * - Layout: dims reversed (GGUF `[in, out]` = HF `[out, in]`, no transpose).
 *   For `llama` only, llama.cpp's convert permuted the rows of q_proj/k_proj
 *   so RoPE rotates adjacent pairs (2i, 2i+1); we undo it (FORMATS.md §2.7):
 *   within each head of `hd` rows, HF row `s·hd/2 + i` = GGUF row `2i + s`.
 *   Whole rows move, so quantized rows are moved without dequantizing.
 * - `rope_freqs.weight` (Llama-3 rope scaling stored as per-frequency factors)
 *   is converted back to `rope_scaling: {rope_type: "llama3", ...}` when the
 *   factors fit the Llama-3 formula exactly; otherwise UnsupportedError.
 *
 * @module
 */

import { FormatError, UnsupportedError } from "../errors.ts";
import * as glm from "./_gguf_glm.ts";
import { unpermuteChecked } from "./_unpermute.ts";
import { GgufFile, type GgufTensorInfo } from "../format/gguf.ts";
import { type ConvertedTokenizer, convertSpm } from "../text/convert_spm.ts";
import { convertGpt2 } from "../text/convert_gpt2.ts";
import type { ModelSource, SourceTensor, TensorData } from "./source.ts";
import { ENCODINGS, ggufEncoding, isPacked } from "../quant/encoding.ts";
import * as moe from "./_gguf_experts.ts";

const DENSE_ARCHS = ["llama", "qwen2", "qwen3", "chatglm", "glm4"];
const SUPPORTED_ARCHS = new Set([...DENSE_ARCHS, ...moe.ARCHS]);
const PACKED_GGUF = [...ENCODINGS.values()].flatMap((e) =>
  e.gguf ? [e.gguf.type] : []
);
const SUPPORTED_TYPES = `F32, F16, BF16, ${PACKED_GGUF.join(", ")}`;

/** Token texts llama.cpp always treats as end of generation. */
const EOG_TEXTS = new Set([
  "<|eot_id|>",
  "<|im_end|>",
  "<|end|>",
  "<|return|>",
  "<|call|>",
  "<end_of_turn>",
  "<|endoftext|>",
  "<|eom_id|>",
  "<EOT>",
  "_<EOT>",
  "<｜end▁of▁sentence｜>",
]);

/**
 * The tokenizer of a GGUF file as Hugging Face files. Works for any
 * architecture (vocab-only files included).
 *
 * @throws {UnsupportedError} for tokenizer models other than `llama`/`gpt2` or an unknown `pre`.
 * @example
 * ```ts ignore
 * import { GgufFile } from "../format/gguf.ts";
 * import { ggufTokenizer } from "./source_gguf.ts";
 * const g = await GgufFile.open("../shared/vocab/ggml-vocab-gpt-2.gguf");
 * const { tokenizer, tokenizerConfig } = ggufTokenizer(g);
 * ```
 */
export function ggufTokenizer(g: GgufFile): ConvertedTokenizer {
  const model = g.getString("tokenizer.ggml.model");
  if (model === undefined) {
    throw new FormatError(
      g.path,
      "no tokenizer.ggml.model (no tokenizer in this file)",
    );
  }
  const tokensE = g.get("tokenizer.ggml.tokens");
  if (
    !tokensE || !Array.isArray(tokensE.value) ||
    typeof tokensE.value[0] !== "string"
  ) {
    throw new FormatError(
      g.path,
      "tokenizer.ggml.tokens is missing or not an array of strings",
    );
  }
  const tokens = tokensE.value as string[];
  const n = tokens.length;
  const arr = (key: string, ctor: string): ArrayLike<number> | undefined => {
    const e = g.get(key);
    if (!e) return undefined;
    if (
      e.value?.constructor?.name !== ctor ||
      (e.value as ArrayLike<number>).length !== n
    ) {
      throw new FormatError(
        g.path,
        `${key} must be ${ctor === "Float32Array" ? "FLOAT32" : "INT32"}[${n}]`,
      );
    }
    return e.value as ArrayLike<number>;
  };
  const types = arr("tokenizer.ggml.token_type", "Int32Array");
  const id = (k: string): number | null | undefined => {
    const v = g.getNumber(`tokenizer.ggml.${k}_token_id`);
    if (v === undefined) return undefined;
    return Number.isInteger(v) && v >= 0 && v < n ? v : null; // out of range: ignored (llama.cpp warns)
  };
  // read where each tokenizer model needs them, after its own checks
  const specialIds = () => ({
    bos: id("bos"),
    eos: id("eos"),
    unk: id("unknown"),
    pad: id("padding"),
  });
  const chatTemplate = g.getString("tokenizer.chat_template") ?? null;
  // End of generation as llama.cpp decides it (llama-vocab.cpp, "maintain a
  // list of tokens that cause end-of-generation"): EOS, EOT, EOM, and any
  // token spelled like a known end-of-turn marker. Many GGUF files name only
  // EOS (e.g. Llama 3 files with eos <|end_of_text|> and no eot_token_id),
  // and a chat would otherwise run past <|eot_id|> / <end_of_turn>.
  const extraEosIds = [id("eot"), id("eom")].filter((x): x is number =>
    typeof x === "number"
  );
  tokens.forEach((t, i) => {
    if (EOG_TEXTS.has(t) && !extraEosIds.includes(i)) extraEosIds.push(i);
  });
  const addBos = g.getBool("tokenizer.ggml.add_bos_token");
  const addEos = g.getBool("tokenizer.ggml.add_eos_token");
  if (model === "llama") {
    const scores = arr("tokenizer.ggml.scores", "Float32Array");
    if (!scores) {
      throw new FormatError(
        g.path,
        "tokenizer.ggml.scores is required for a llama (SentencePiece) tokenizer",
      );
    }
    const { bos, eos, unk, pad } = specialIds();
    return convertSpm({
      tokens,
      scores,
      types,
      bosId: bos === undefined ? 1 : bos,
      eosId: eos === undefined ? 2 : eos,
      unkId: unk === undefined ? 0 : unk,
      padId: pad ?? null,
      extraEosIds,
      addBos: addBos ?? true,
      addEos: addEos ?? false,
      addSpacePrefix: g.getBool("tokenizer.ggml.add_space_prefix") ?? true,
      chatTemplate,
    });
  }
  if (model === "gpt2") {
    const mergesE = g.get("tokenizer.ggml.merges");
    if (
      !mergesE || !Array.isArray(mergesE.value) ||
      (mergesE.value.length > 0 && typeof mergesE.value[0] !== "string")
    ) {
      throw new FormatError(
        g.path,
        "tokenizer.ggml.merges is required for a gpt2 tokenizer",
      );
    }
    const { bos, eos, unk, pad } = specialIds();
    return convertGpt2({
      file: g.path,
      tokens,
      types,
      merges: mergesE.value as string[],
      pre: g.getString("tokenizer.ggml.pre") ?? null,
      bosId: bos === undefined ? 11 : bos,
      eosId: eos === undefined ? 11 : eos,
      unkId: unk ?? null,
      padId: pad ?? null,
      extraEosIds,
      addBos,
      addEos,
      chatTemplate,
    });
  }
  throw new UnsupportedError(g.path, `unsupported tokenizer model ${model}`);
}

// ---------------------------------------------------------------------------
// config

/** Shortest decimal that rounds to the same f32 (1e-5 instead of 9.99999974e-6). */
function f32Decimal(x: number): number {
  for (let p = 1; p <= 17; p++) {
    const d = Number(x.toPrecision(p));
    if (Math.fround(d) === Math.fround(x)) return d;
  }
  return x;
}

/**
 * The Hugging Face `config.json` object of a GGUF model (llama / qwen2 / qwen3).
 *
 * @throws {UnsupportedError} for other architectures; {@link FormatError} for missing keys.
 * @example
 * ```ts ignore
 * import { GgufFile } from "../format/gguf.ts";
 * import { ggufConfig } from "./source_gguf.ts";
 * const g = await GgufFile.open("../shared/models/gguf/stories260K.gguf");
 * console.log(ggufConfig(g).num_hidden_layers); // 5
 * ```
 */
export function ggufConfig(
  g: GgufFile,
  ropeScaling: Record<string, unknown> | null = null,
): Record<string, unknown> {
  const arch = g.getString("general.architecture");
  if (arch === undefined) {
    throw new FormatError(g.path, "no general.architecture");
  }
  if (!SUPPORTED_ARCHS.has(arch)) {
    throw new UnsupportedError(
      g.path,
      `unsupported architecture ${arch} (Strata runs GGUF files of ${
        [...SUPPORTED_ARCHS].join(", ")
      })`,
    );
  }
  const num = (key: string, dflt?: number): number => {
    const e = g.get(`${arch}.${key}`);
    if (e === undefined) {
      if (dflt === undefined) {
        throw new FormatError(g.path, `missing metadata ${arch}.${key}`);
      }
      return dflt;
    }
    if (typeof e.value !== "number") {
      if (ArrayBuffer.isView(e.value)) {
        const a = Array.from(e.value as ArrayLike<number | bigint>, Number);
        if (a.length > 0 && a.every((x) => x === a[0])) return a[0];
        throw new UnsupportedError(
          g.path,
          `per-layer ${arch}.${key} values are not supported`,
        );
      }
      throw new FormatError(g.path, `metadata ${arch}.${key} is not a number`);
    }
    return e.value;
  };
  const hidden = num("embedding_length");
  const heads = num("attention.head_count");
  const kvHeads = num("attention.head_count_kv", heads);
  const layers = num("block_count");
  const ff = num("feed_forward_length");
  for (
    const [k, v] of [
      ["embedding_length", hidden],
      ["attention.head_count", heads],
      ["block_count", layers],
      ["feed_forward_length", ff],
      ["attention.head_count_kv", kvHeads],
    ] as const
  ) {
    if (!Number.isSafeInteger(v) || v <= 0) {
      throw new FormatError(
        g.path,
        `${arch}.${k} = ${v} is not a positive integer`,
      );
    }
  }
  if (heads % kvHeads !== 0) {
    throw new FormatError(
      g.path,
      `head_count ${heads} is not a multiple of head_count_kv ${kvHeads}`,
    );
  }
  const headDim = num("attention.key_length", Math.floor(hidden / heads));
  const valueLen = num("attention.value_length", headDim);
  if (valueLen !== headDim) {
    throw new UnsupportedError(
      g.path,
      `value_length ${valueLen} != key_length ${headDim}`,
    );
  }
  const ropeDim = num("rope.dimension_count", headDim);
  const tokensE = g.get("tokenizer.ggml.tokens");
  const nTokens = tokensE && Array.isArray(tokensE.value)
    ? tokensE.value.length
    : undefined;
  const embed = g.tensors.get("token_embd.weight");
  const vocab = num("vocab_size", nTokens ?? embed?.dims[1] ?? 0);
  if (!(vocab > 0)) {
    throw new FormatError(g.path, "cannot determine the vocabulary size");
  }
  const tied = !g.tensors.has("output.weight");
  const modelType = glm.ggufModelType(g, arch);
  const archClass = {
    llama: "LlamaForCausalLM",
    qwen2: "Qwen2ForCausalLM",
    qwen3: "Qwen3ForCausalLM",
    ...glm.GLM_CLASSES,
  }[modelType];
  const tokId = (k: string, dflt: number | null): number | null => {
    const v = g.getNumber(`tokenizer.ggml.${k}_token_id`);
    if (v === undefined) return dflt;
    return v >= 0 && v < vocab ? v : null;
  };
  const spm = g.getString("tokenizer.ggml.model") === "llama";
  const cfg: Record<string, unknown> = {
    architectures: [archClass],
    model_type: modelType,
    hidden_act: "silu",
    hidden_size: hidden,
    intermediate_size: ff,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    max_position_embeddings: num("context_length", 2048),
    rms_norm_eps: f32Decimal(num("attention.layer_norm_rms_epsilon", 1e-5)),
    rope_theta: f32Decimal(num("rope.freq_base", 10000)),
    vocab_size: vocab,
    tie_word_embeddings: tied,
    bos_token_id: tokId("bos", spm ? 1 : null),
    eos_token_id: tokId("eos", spm ? 2 : null),
    torch_dtype: "float32",
    rope_scaling: null as unknown,
  };
  if (ropeDim !== headDim) {
    if (arch === "llama") {
      throw new FormatError(
        g.path,
        `rope.dimension_count ${ropeDim} != head dim ${headDim}`,
      );
    }
    cfg.partial_rotary_factor = ropeDim / headDim;
  }
  if (arch === "qwen2") cfg.attention_bias = true;
  const qBias = g.tensors.has("blk.0.attn_q.bias");
  if (arch === "llama" || arch === "qwen3") cfg.attention_bias = qBias;
  Object.assign(cfg, glm.ggufGlmConfig(g, arch, ropeDim / headDim));
  // rope scaling from KVs
  const sType = g.getString(`${arch}.rope.scaling.type`);
  const factor = g.getNumber(`${arch}.rope.scaling.factor`) ??
    g.getNumber(`${arch}.rope.scale_linear`);
  if (ropeScaling) {
    cfg.rope_scaling = ropeScaling;
  } else if (sType === undefined || sType === "none") {
    if (sType === undefined && factor !== undefined && factor !== 1) {
      cfg.rope_scaling = {
        rope_type: "linear",
        type: "linear",
        factor: f32Decimal(factor),
      };
    }
  } else if (sType === "linear") {
    if (factor !== undefined && factor !== 1) {
      cfg.rope_scaling = {
        rope_type: "linear",
        type: "linear",
        factor: f32Decimal(factor),
      };
    }
  } else {
    throw new UnsupportedError(
      g.path,
      `unsupported rope scaling type ${sType}`,
    );
  }
  return Object.assign(cfg, moe.ggufMoeConfig(g, arch, cfg)); // experts
}

/**
 * Llama-3 rope scaling recovered from `rope_freqs.weight` (one factor per
 * frequency: the angle of pair i is divided by factor i). llama3 scaling gives
 * factor 1 for high frequencies, `factor` for low ones and, in between,
 * `1/f = (1-s)/factor + s` with `s` linear in `1/wavelen`; any
 * `original_max_position_embeddings` can express that line, so we use the
 * file's context length (or 8192) and solve for low/high_freq_factor, then
 * check every recomputed factor against the file (relative error 1e-4).
 * Returns null when the file has no such tensor.
 */
async function llama3RopeScaling(
  g: GgufFile,
  cfg: Record<string, unknown>,
): Promise<Record<string, unknown> | null> {
  const t = g.tensors.get("rope_freqs.weight");
  if (!t) return null;
  const fail = (why: string) =>
    new UnsupportedError(g.path, `rope_freqs.weight: ${why}`);
  if (t.type.name !== "F32") throw fail(`type ${t.type.name} (expected F32)`);
  const dim = cfg.head_dim as number;
  const half = dim / 2;
  if (t.dims.length !== 1 || t.dims[0] !== half) {
    throw fail(`shape [${t.dims}] (expected [${half}])`);
  }
  const f = new Float32Array((await g.read(t.name)).buffer);
  const theta = cfg.rope_theta as number;
  const freq = (i: number) => Math.pow(theta, -(2 * i) / dim);
  const factor = Math.max(...f);
  if (!(factor >= 1)) throw fail("factors below 1");
  if (factor === 1) return null;
  const mid: [number, number][] = []; // (1/wavelen, s)
  for (let i = 0; i < half; i++) {
    if (Math.abs(f[i] - 1) > 1e-6 && Math.abs(f[i] - factor) > 1e-6 * factor) {
      mid.push([
        freq(i) / (2 * Math.PI),
        (1 / f[i] - 1 / factor) / (1 - 1 / factor),
      ]);
    }
  }
  if (mid.length < 2) {
    throw fail(
      "cannot recover the llama3 parameters (fewer than 2 interpolated factors)",
    );
  }
  const [x0, s0] = mid[0], [x1, s1] = mid[mid.length - 1];
  const a = (s1 - s0) / (x1 - x0), b = s0 - a * x0; // s = a·(1/wavelen) + b = (orig/wavelen - low)/(high - low)
  const orig = 8192;
  const high_minus_low = orig / a;
  const low = -b * high_minus_low;
  const high = low + high_minus_low;
  const scaling = {
    rope_type: "llama3",
    type: "llama3",
    factor: f32Decimal(factor),
    low_freq_factor: low,
    high_freq_factor: high,
    original_max_position_embeddings: orig,
  };
  // verify
  for (let i = 0; i < half; i++) {
    const wavelen = 2 * Math.PI / freq(i);
    let want: number;
    if (wavelen < orig / high) want = 1;
    else if (wavelen > orig / low) want = factor;
    else {
      const s = (orig / wavelen - low) / (high - low);
      want = 1 / ((1 - s) / factor + s);
    }
    if (Math.abs(want - f[i]) > 1e-4 * Math.max(1, f[i])) {
      throw fail(`factor ${i} = ${f[i]} does not fit the llama3 formula`);
    }
  }
  return scaling;
}

export { unpermuteRows } from "./_unpermute.ts";

// ---------------------------------------------------------------------------
// tensors

const GLOBAL_NAMES: Record<string, string> = {
  "token_embd.weight": "model.embed_tokens.weight",
  "output_norm.weight": "model.norm.weight",
  "output.weight": "lm_head.weight",
};
const LAYER_NAMES: Record<string, string> = {
  "attn_norm": "input_layernorm",
  "attn_q": "self_attn.q_proj",
  "attn_k": "self_attn.k_proj",
  "attn_v": "self_attn.v_proj",
  "attn_output": "self_attn.o_proj",
  "attn_q_norm": "self_attn.q_norm",
  "attn_k_norm": "self_attn.k_norm",
  "ffn_norm": "post_attention_layernorm",
  "ffn_gate": "mlp.gate_proj",
  "ffn_up": "mlp.up_proj",
  "ffn_down": "mlp.down_proj",
};

/**
 * The Hugging Face name of a GGUF tensor name, or null when it has none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hfTensorName } from "./source_gguf.ts";
 * assert.deepStrictEqual(hfTensorName("blk.3.ffn_gate.weight"), "model.layers.3.mlp.gate_proj.weight");
 * ```
 */
export function hfTensorName(name: string, mt = "llama"): string | null {
  if (mt in glm.GLM_CLASSES) return glm.glmTensorName(name, mt, LAYER_NAMES);
  if (name in GLOBAL_NAMES) return GLOBAL_NAMES[name];
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(name);
  if (!m || !(m[2] in LAYER_NAMES)) return null;
  return `model.layers.${m[1]}.${LAYER_NAMES[m[2]]}.${m[3]}`;
}

function makeTensor(
  g: GgufFile,
  t: GgufTensorInfo,
  hfName: string,
  permuteHeads: number | null,
): SourceTensor {
  const type = t.type.name;
  const shape = t.shape.slice();
  const cols = t.dims[0] ?? 1;
  const rows = t.dims.slice(1).reduce((a, b) => a * b, 1);
  const rowBytes = t.byteLength / Math.max(rows, 1);
  const load = async (): Promise<Uint8Array> => {
    const raw = await g.readInfo(t);
    return permuteHeads === null
      ? raw
      : unpermuteChecked(g.path, t.name, raw, rowBytes, permuteHeads);
  };
  if (type === "F32" || type === "F16" || type === "BF16") {
    return {
      name: hfName,
      dtype: type,
      shape,
      byteLength: t.byteLength,
      read: async (): Promise<TensorData> => ({
        dtype: type,
        bytes: await load(),
      }),
    };
  }
  const enc = ggufEncoding(type);
  if (enc?.gguf && isPacked(enc.name)) {
    const [rb, sb] = enc.rowBytes(cols);
    const dtype = enc.name;
    const repack = enc.gguf.repack;
    return {
      name: hfName,
      dtype,
      shape: [rows, cols],
      byteLength: rows * (rb + sb),
      read: async (): Promise<TensorData> => {
        const { data, scales } = repack(await load(), rows, cols);
        return {
          dtype,
          data,
          scales: scales ?? new Uint16Array(0),
          shape: [rows, cols],
        };
      },
    };
  }
  throw new UnsupportedError(
    g.path,
    `unsupported tensor type ${type} (tensor ${t.name}); Strata reads GGUF tensors in ${SUPPORTED_TYPES}: requantize the file to one of them (llama-quantize ... Q4_K_M), or use the Hugging Face checkpoint`,
  );
}

/**
 * Opens a GGUF file as a model source (Hugging Face config, names and layout;
 * tokenizer files generated from the metadata).
 *
 * @throws {FormatError} for malformed files; {@link UnsupportedError} for unsupported
 * architectures, tensor types or tokenizers.
 * @example
 * ```ts ignore
 * import { openGgufSource } from "./source_gguf.ts";
 * const src = await openGgufSource("../shared/models/gguf/stories260K.gguf");
 * console.log(src.config.model_type, src.tensors.length); // "llama" 48
 * src.close();
 * ```
 */
export async function openGgufSource(path: string): Promise<ModelSource> {
  const g = await GgufFile.open(path);
  try {
    let config = ggufConfig(g);
    const scaling = await llama3RopeScaling(g, config);
    if (scaling) config = ggufConfig(g, scaling);
    const arch = config.model_type as string;
    const heads = config.num_attention_heads as number;
    const kvHeads = config.num_key_value_heads as number;
    const tensors: SourceTensor[] = [];
    for (const t of g.tensors.values()) {
      if (t.name === "rope_freqs.weight") continue;
      if (moe.pushExperts(tensors, g, t, config, makeTensor)) continue;
      const hf = hfTensorName(t.name, config.model_type as string);
      if (hf === null) {
        throw new UnsupportedError(path, `unexpected tensor ${t.name}`);
      }
      let permute: number | null = null;
      if (arch === "llama" || arch === "mixtral") {
        if (/\.attn_q\.(weight|bias)$/.test(t.name)) permute = heads;
        else if (/\.attn_k\.(weight|bias)$/.test(t.name)) permute = kvHeads;
      }
      if (permute !== null && t.name.endsWith(".bias")) {
        // a bias is one row of hd*h elements: permute element-wise (rows of one element)
        const el = t.byteLength / (t.dims[0] ?? 1);
        const info = t;
        tensors.push({
          ...makeTensor(g, info, hf, null),
          read: async (): Promise<TensorData> => {
            if (
              info.type.name !== "F32" && info.type.name !== "F16" &&
              info.type.name !== "BF16"
            ) {
              throw new UnsupportedError(
                path,
                `unsupported tensor type ${info.type.name} (tensor ${info.name})`,
              );
            }
            return {
              dtype: info.type.name,
              bytes: unpermuteChecked(
                path,
                info.name,
                await g.read(info.name),
                el,
                permute!,
              ),
            };
          },
        });
        continue;
      }
      tensors.push(makeTensor(g, t, hf, permute));
    }
    // a file without a vocabulary (`tokenizer.ggml.model` absent, `none` or
    // `no_vocab`) still converts; it just has no tokenizer files
    const tokModel = g.getString("tokenizer.ggml.model");
    const files: Record<string, string> = {};
    if (
      tokModel !== undefined && tokModel !== "none" && tokModel !== "no_vocab"
    ) {
      const tok = ggufTokenizer(g);
      files["tokenizer.json"] = JSON.stringify(tok.tokenizer);
      files["tokenizer_config.json"] = JSON.stringify(
        tok.tokenizerConfig,
        null,
        2,
      );
      files["generation_config.json"] = JSON.stringify(
        tok.generationConfig,
        null,
        2,
      );
    }
    const name = g.getString("general.name");
    return {
      kind: "gguf",
      path,
      description: `GGUF v${g.version} ${arch}${
        name ? ` "${name}"` : ""
      }, ${g.tensors.size} tensors`,
      config,
      files,
      tensors,
      sourceFiles: [path],
      close: () => g.close(),
    };
  } catch (e) {
    g.close();
    throw e;
  }
}
