/**
 * SentencePiece (pieces + scores, GGUF tokenizer model `llama`, llama2.c
 * `tokenizer.bin`) → Hugging Face `tokenizer.json` (BPE with byte fallback),
 * the way transformers' `LlamaConverter` writes the real Llama-2 file:
 *
 * - normalizer: Sequence[Prepend "▁", Replace " " → "▁"] (only Replace when the
 *   vocabulary does not add a space prefix); no pre-tokenizer;
 * - model: BPE, `byte_fallback: true`, `fuse_unk: true`, unk `<unk>`, ids = SPM ids;
 * - merges: every pair (l, r) where l, r and l+r are all pieces, sorted by the
 *   score of l+r descending, ties by id(l) then id(r) ascending. This is the
 *   order of the older `SentencePieceExtractor` and reproduces the 61,249
 *   merges of the real Llama-2 `tokenizer.json` exactly. Merging by rank then
 *   equals SentencePiece/llama.cpp's "merge the adjacent pair whose
 *   concatenation has the highest score";
 * - decoder: Sequence[Replace "▁" → " ", ByteFallback, Fuse, Strip(" ", 1, 0)];
 * - post-processor: TemplateProcessing adding BOS (and EOS) as configured;
 * - added_tokens: control / unknown tokens (special) and user-defined tokens
 *   (not special), all `normalized: false`.
 *
 * @module
 */

/** llama.cpp token types (`llama_token_type` / `tokenizer.ggml.token_type`). */
export const TOKEN_TYPE = {
  UNDEFINED: 0,
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

/** Special-token ids and flags shared by both converters. */
export interface SpecialTokens {
  /** BOS id, or null. */
  bosId?: number | null;
  /** EOS id, or null. */
  eosId?: number | null;
  /** Unknown-token id, or null. */
  unkId?: number | null;
  /** Padding id, or null. */
  padId?: number | null;
  /** Extra end-of-generation ids (`eot`, `eom`) for generation_config.json. */
  extraEosIds?: number[];
  /** Whether encoding adds BOS. */
  addBos?: boolean;
  /** Whether encoding adds EOS. */
  addEos?: boolean;
  /** Jinja chat template, copied into tokenizer_config.json. */
  chatTemplate?: string | null;
}

/** Input of {@link convertSpm}. */
export interface SpmVocab extends SpecialTokens {
  /** Piece text by id (`▁` marks a space, `<0xXX>` are byte pieces). */
  tokens: readonly string[];
  /** Piece scores by id (higher merges first). */
  scores: ArrayLike<number>;
  /** Token types by id ({@link TOKEN_TYPE}); inferred when absent. */
  types?: ArrayLike<number>;
  /** Prepend `▁` to the text (SentencePiece `add_dummy_prefix`); default true. */
  addSpacePrefix?: boolean;
}

/** A converted tokenizer: the `tokenizer.json` and `tokenizer_config.json` objects. */
export interface ConvertedTokenizer {
  /** Contents of tokenizer.json. */
  tokenizer: Record<string, unknown>;
  /** Contents of tokenizer_config.json. */
  tokenizerConfig: Record<string, unknown>;
  /** Contents of generation_config.json (bos/eos ids). */
  generationConfig: Record<string, unknown>;
}

const BYTE_PIECE = /^<0x[0-9A-F]{2}>$/;

/**
 * Token types when the source has none: id 0 unknown, ids 1–2 control,
 * `<0xXX>` pieces byte, the rest normal (the layout of every Llama/llama2.c
 * SentencePiece vocabulary).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { inferSpmTypes } from "./convert_spm.ts";
 * assert.deepStrictEqual(Array.from(inferSpmTypes(["<unk>", "<s>", "</s>", "<0x00>", "▁a"])), [2, 3, 3, 6, 1]);
 * ```
 */
export function inferSpmTypes(tokens: readonly string[]): Int32Array {
  const t = new Int32Array(tokens.length);
  tokens.forEach((p, i) => {
    t[i] = i === 0
      ? TOKEN_TYPE.UNKNOWN
      : i <= 2
      ? TOKEN_TYPE.CONTROL
      : BYTE_PIECE.test(p)
      ? TOKEN_TYPE.BYTE
      : TOKEN_TYPE.NORMAL;
  });
  return t;
}

/**
 * The vocab object (piece → id); when a piece occurs twice the first id wins.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { vocabObject } from "./convert_spm.ts";
 * assert.deepStrictEqual({ ...vocabObject(["a", "b", "a"]) }, { a: 0, b: 1 });
 * ```
 */
export function vocabObject(tokens: readonly string[]): Record<string, number> {
  const vocab: Record<string, number> = Object.create(null);
  tokens.forEach((p, i) => {
    if (!(p in vocab)) vocab[p] = i;
  });
  return vocab;
}

/**
 * SentencePiece merges derived from scores: every (l, r) with l, r, l+r all
 * pieces, sorted by score(l+r) descending, then id(l), then id(r).
 *
 * @example
 * ```ts
 * import { spmMerges } from "./convert_spm.ts";
 * console.log(spmMerges(["a", "b", "ab", "c", "abc"], [0, 0, -1, 0, -2]));
 * // [["a", "b"], ["ab", "c"]]
 * ```
 */
export function spmMerges(
  tokens: readonly string[],
  scores: ArrayLike<number>,
): [string, string][] {
  const ids = new Map<string, number>();
  tokens.forEach((p, i) => {
    if (!ids.has(p)) ids.set(p, i);
  });
  const found: { l: number; r: number; s: number }[] = [];
  for (const [p, id] of ids) {
    const cps = Array.from(p);
    if (cps.length < 2) continue;
    let left = "";
    for (let k = 1; k < cps.length; k++) {
      left += cps[k - 1];
      const l = ids.get(left);
      if (l === undefined) continue;
      const r = ids.get(p.slice(left.length));
      if (r === undefined) continue;
      found.push({ l, r, s: scores[id] });
    }
  }
  found.sort((a, b) => b.s - a.s || a.l - b.l || a.r - b.r);
  return found.map((m) => [tokens[m.l], tokens[m.r]]);
}

/**
 * The `added_tokens` list: control and unknown tokens as special, user-defined
 * tokens as non-special; all matched verbatim (`normalized: false`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addedTokens } from "./convert_spm.ts";
 * assert.deepStrictEqual(addedTokens(["<unk>", "x"], [2, 1]).length, 1);
 * ```
 */
export function addedTokens(
  tokens: readonly string[],
  types: ArrayLike<number>,
): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = types[i];
    if (
      t !== TOKEN_TYPE.CONTROL && t !== TOKEN_TYPE.UNKNOWN &&
      t !== TOKEN_TYPE.USER_DEFINED
    ) continue;
    if (tokens[i] === "") continue;
    out.push({
      id: i,
      content: tokens[i],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: t !== TOKEN_TYPE.USER_DEFINED,
    });
  }
  return out;
}

function validId(id: number | null | undefined, n: number): number | null {
  return id !== null && id !== undefined && Number.isInteger(id) && id >= 0 &&
      id < n
    ? id
    : null;
}

/**
 * TemplateProcessing that adds BOS before (and EOS after) each sequence.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { templateProcessing } from "./convert_spm.ts";
 * assert.deepStrictEqual(templateProcessing(["<unk>", "<s>"], 1, null).type, "TemplateProcessing");
 * ```
 */
export function templateProcessing(
  tokens: readonly string[],
  bos: number | null,
  eos: number | null,
): Record<string, unknown> {
  const special: Record<string, unknown> = {};
  const seq = (id: "A" | "B", typeId: number) => {
    const items: Record<string, unknown>[] = [];
    if (bos !== null) {
      items.push({ SpecialToken: { id: tokens[bos], type_id: typeId } });
    }
    items.push({ Sequence: { id, type_id: typeId } });
    if (eos !== null) {
      items.push({ SpecialToken: { id: tokens[eos], type_id: typeId } });
    }
    return items;
  };
  for (const id of [bos, eos]) {
    if (id !== null) {
      special[tokens[id]] = { id: tokens[id], ids: [id], tokens: [tokens[id]] };
    }
  }
  return {
    type: "TemplateProcessing",
    single: seq("A", 0),
    pair: [...seq("A", 0), ...seq("B", 1)],
    special_tokens: special,
  };
}

/**
 * tokenizer_config.json and generation_config.json from the special tokens.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tokenizerConfigs } from "./convert_spm.ts";
 * const { tokenizerConfig } = tokenizerConfigs(["<unk>", "<s>", "</s>"], { bosId: 1, eosId: 2, addBos: true }, "LlamaTokenizer");
 * assert.deepStrictEqual(tokenizerConfig.bos_token, "<s>");
 * ```
 */
export function tokenizerConfigs(
  tokens: readonly string[],
  sp: SpecialTokens,
  tokenizerClass: string,
  extra: Record<string, unknown> = {},
): {
  tokenizerConfig: Record<string, unknown>;
  generationConfig: Record<string, unknown>;
} {
  const n = tokens.length;
  const bos = validId(sp.bosId, n),
    eos = validId(sp.eosId, n),
    unk = validId(sp.unkId, n),
    pad = validId(sp.padId, n);
  const tokenizerConfig: Record<string, unknown> = {
    tokenizer_class: tokenizerClass,
    add_bos_token: sp.addBos ?? false,
    add_eos_token: sp.addEos ?? false,
    bos_token: bos === null ? null : tokens[bos],
    eos_token: eos === null ? null : tokens[eos],
    unk_token: unk === null ? null : tokens[unk],
    clean_up_tokenization_spaces: false,
    ...extra,
  };
  if (pad !== null) tokenizerConfig.pad_token = tokens[pad];
  if (sp.chatTemplate) tokenizerConfig.chat_template = sp.chatTemplate;
  const eosIds = [
    ...new Set([
      eos,
      ...(sp.extraEosIds ?? []).map((i) => validId(i, n)),
    ].filter((i) => i !== null)),
  ];
  const generationConfig: Record<string, unknown> = {
    bos_token_id: bos,
    eos_token_id: eosIds.length === 1 ? eosIds[0] : eosIds,
  };
  if (pad !== null) generationConfig.pad_token_id = pad;
  return { tokenizerConfig, generationConfig };
}

/**
 * Converts a SentencePiece vocabulary (pieces + scores) into an equivalent
 * Hugging Face BPE `tokenizer.json` with byte fallback, plus
 * tokenizer_config.json / generation_config.json.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { convertSpm } from "./convert_spm.ts";
 * const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
 * const tokens = ["<unk>", "<s>", "</s>", ...bytes, "▁", "h", "i", "▁h", "▁hi"];
 * const scores = tokens.map((_, i) => (i < 259 ? 0 : -i));
 * const { tokenizer } = convertSpm({ tokens, scores, bosId: 1, eosId: 2, unkId: 0, addBos: true });
 * assert.deepStrictEqual((tokenizer.model as { merges: string[][] }).merges, [["▁", "h"], ["▁h", "i"]]);
 * ```
 */
export function convertSpm(v: SpmVocab): ConvertedTokenizer {
  const { tokens, scores } = v;
  const n = tokens.length;
  const types = v.types ?? inferSpmTypes(tokens);
  const unk = validId(v.unkId ?? 0, n);
  const bos = validId(v.bosId, n), eos = validId(v.eosId, n);
  const addBos = v.addBos ?? true, addEos = v.addEos ?? false;
  const prefix = v.addSpacePrefix ?? true;
  const replace = { type: "Replace", pattern: { String: " " }, content: "▁" };
  const decoders: Record<string, unknown>[] = [
    { type: "Replace", pattern: { String: "▁" }, content: " " },
    { type: "ByteFallback" },
    { type: "Fuse" },
  ];
  if (prefix) decoders.push({ type: "Strip", content: " ", start: 1, stop: 0 });
  const tokenizer: Record<string, unknown> = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens(tokens, types),
    normalizer: prefix
      ? {
        type: "Sequence",
        normalizers: [{ type: "Prepend", prepend: "▁" }, replace],
      }
      : replace,
    pre_tokenizer: null,
    post_processor: templateProcessing(
      tokens,
      addBos ? bos : null,
      addEos ? eos : null,
    ),
    decoder: { type: "Sequence", decoders },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: unk === null ? null : tokens[unk],
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: vocabObject(tokens),
      merges: spmMerges(tokens, scores),
    },
  };
  const { tokenizerConfig, generationConfig } = tokenizerConfigs(
    tokens,
    { ...v, unkId: unk, addBos, addEos },
    "LlamaTokenizer",
    { legacy: true },
  );
  return { tokenizer, tokenizerConfig, generationConfig };
}
