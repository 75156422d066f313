/**
 * GGUF byte-level BPE vocabularies (tokenizer model `gpt2`: tokens + merges)
 * → Hugging Face `tokenizer.json`, reproducing llama.cpp's pipeline:
 *
 * 1. user-defined and control tokens are carved out of the text first
 *    (`added_tokens`, matched verbatim);
 * 2. the pre-tokenizer regexes chosen by `tokenizer.ggml.pre` split the text,
 *    each one splitting the pieces of the previous one, unmatched spans kept
 *    (a `Sequence` of `Split` pre-tokenizers with `behavior: "Isolated"`);
 * 3. each piece's UTF-8 bytes are mapped through GPT-2's byte→unicode table
 *    (`ByteLevel` with `use_regex: false`);
 * 4. BPE merges by rank (`ignore_merges` for the Llama-3 family).
 *
 * Supported `pre` names are the keys of {@link GPT2_PRE_TOKENIZERS}; any other
 * name is an {@link UnsupportedError}.
 *
 * @module
 */

import { UnsupportedError } from "../errors.ts";
import {
  addedTokens,
  type ConvertedTokenizer,
  type SpecialTokens,
  templateProcessing,
  tokenizerConfigs,
  vocabObject,
} from "./convert_spm.ts";

/** GPT-2's regex (llama.cpp's custom implementation also ends in `|\s+`, which changes nothing with isolated splits). */
const GPT2 = String
  .raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`;
const LLAMA3 = String
  .raw`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2 = LLAMA3.replace(String.raw`\p{N}{1,3}`, String.raw`\p{N}`);
const PUNCT = String.raw`[\p{P}\$\+<=>\^~\|]+`;
/** falcon's first regex also lists the backtick (llama.cpp `LLAMA_VOCAB_PRE_TYPE_FALCON`). */
const PUNCT_FALCON = String.raw`[\p{P}\$\+<=>\^~\|` + "`" + String.raw`]+`;

/** One pre-tokenizer family: regexes applied in order, and llama.cpp's flags. */
export interface Gpt2PreTokenizer {
  /** Regexes, each splitting the pieces of the previous one. */
  readonly regexes: readonly string[];
  /** A piece that is already a token is emitted without merging. */
  readonly ignoreMerges?: boolean;
  /** llama.cpp forces add_bos for this family. */
  readonly addBos?: boolean;
}

const FAMILIES: [string[], Gpt2PreTokenizer][] = [
  [["default"], {
    regexes: [PUNCT, GPT2, String.raw`\p{N}+`, "[0-9][0-9][0-9]"],
  }],
  [["llama3", "llama-v3", "llama-bpe", "falcon3"], {
    regexes: [LLAMA3],
    ignoreMerges: true,
    addBos: true,
  }],
  [["dbrx", "smaug-bpe"], { regexes: [LLAMA3] }],
  // GLM-4 (tiktoken, cl100k's split regex): a piece that is a token is emitted whole
  [["chatglm-bpe", "glm4"], { regexes: [LLAMA3], ignoreMerges: true }],
  [["qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"], { regexes: [QWEN2] }],
  [["deepseek-coder"], {
    regexes: [
      "[\r\n]",
      String.raw`\s?\p{L}+`,
      String.raw`\s?\p{P}+`,
      "[一-龥ࠀ-一가-퟿]+",
      String.raw`\p{N}`,
    ],
  }],
  [["falcon"], { regexes: [PUNCT_FALCON, GPT2, "[0-9][0-9][0-9]"] }],
  [["gpt-2", "phi-2", "roberta-bpe", "gigachat", "mpt", "olmo", "jais"], {
    regexes: [GPT2],
  }],
  [[
    "starcoder",
    "refact",
    "command-r",
    "smollm",
    "codeshell",
    "exaone",
    "minerva-7b",
  ], {
    regexes: [String.raw`\p{N}`, GPT2],
  }],
];

/**
 * Supported `tokenizer.ggml.pre` names → regexes and flags (from llama.cpp's
 * `llm_tokenizer_bpe`; see FORMATS.md §3). A missing `pre` means `default`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GPT2_PRE_TOKENIZERS } from "./convert_gpt2.ts";
 * assert.deepStrictEqual(GPT2_PRE_TOKENIZERS.get("starcoder")?.regexes.length, 2);
 * ```
 */
export const GPT2_PRE_TOKENIZERS: ReadonlyMap<string, Gpt2PreTokenizer> =
  new Map(
    FAMILIES.flatMap(([names, p]) =>
      names.map((n) => [n, p] as [string, Gpt2PreTokenizer])
    ),
  );

/** Input of {@link convertGpt2}. */
export interface Gpt2Vocab extends SpecialTokens {
  /** Token text by id (GPT-2 byte→unicode text, `Ġ` = space). */
  tokens: readonly string[];
  /** Token types by id (llama.cpp `token_type`); all normal when absent. */
  types?: ArrayLike<number>;
  /** Merges as `"left right"`, rank = index. */
  merges: readonly string[];
  /** `tokenizer.ggml.pre`, or null/undefined for `default`. */
  pre?: string | null;
  /** File name for error messages. */
  file?: string;
}

/**
 * Splits a GGUF merge `"left right"` at the first space at index ≥ 1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitMerge } from "./convert_gpt2.ts";
 * assert.deepStrictEqual(splitMerge("Ġ t"), ["Ġ", "t"]);
 * ```
 */
export function splitMerge(m: string): [string, string] {
  const i = m.indexOf(" ", 1);
  if (i < 0) return [m, ""];
  return [m.slice(0, i), m.slice(i + 1)];
}

/**
 * Converts a GGUF `gpt2` vocabulary into tokenizer.json / tokenizer_config.json.
 *
 * @throws {UnsupportedError} for an unknown `pre` name.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { convertGpt2 } from "./convert_gpt2.ts";
 * const c = convertGpt2({ tokens: ["a", "b", "ab"], merges: ["a b"], pre: "gpt-2" });
 * assert.deepStrictEqual((c.tokenizer.model as { merges: string[][] }).merges, [["a", "b"]]);
 * ```
 */
export function convertGpt2(v: Gpt2Vocab): ConvertedTokenizer {
  const pre = v.pre ?? "default";
  const family = GPT2_PRE_TOKENIZERS.get(pre);
  if (!family) {
    throw new UnsupportedError(
      v.file ?? "tokenizer",
      `unsupported pre-tokenizer ${pre}`,
    );
  }
  const tokens = v.tokens;
  const types = v.types ?? new Int32Array(tokens.length).fill(1);
  const n = tokens.length;
  const ok = (id: number | null | undefined) =>
    id !== null && id !== undefined && id >= 0 && id < n ? id : null;
  const addBos = v.addBos ?? family.addBos ?? false;
  const addEos = v.addEos ?? false;
  const tokenizer: Record<string, unknown> = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens(tokens, types),
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        ...family.regexes.map((r) => ({
          type: "Split",
          pattern: { Regex: r },
          behavior: "Isolated",
          invert: false,
        })),
        {
          type: "ByteLevel",
          add_prefix_space: false,
          trim_offsets: true,
          use_regex: false,
        },
      ],
    },
    post_processor: templateProcessing(
      tokens,
      addBos ? ok(v.bosId) : null,
      addEos ? ok(v.eosId) : null,
    ),
    decoder: {
      type: "ByteLevel",
      add_prefix_space: true,
      trim_offsets: true,
      use_regex: true,
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: family.ignoreMerges ?? false,
      vocab: vocabObject(tokens),
      merges: v.merges.map(splitMerge),
    },
  };
  const { tokenizerConfig, generationConfig } = tokenizerConfigs(
    tokens,
    { ...v, addBos, addEos },
    "PreTrainedTokenizerFast",
  );
  return { tokenizer, tokenizerConfig, generationConfig };
}
