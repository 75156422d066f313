/**
 * Checks a parsed `tokenizer.json` before it is handed to
 * `@huggingface/tokenizers`: the structure of the model, the added tokens and
 * the post-processor, every token id against the vocabulary (plus added
 * tokens, under a hard cap) and the number of entries. The library trusts its
 * input: an id of 1e9 makes it spin, a post-processor with a null template
 * fails on the first encode. Every problem here is one {@linkcode FormatError}
 * naming the file.
 *
 * @module
 */
import { FormatError } from "../errors.ts";

/**
 * Largest tokenizer.json read from disk, in bytes. The largest real ones
 * (Gemma 3: 33 MB) fit with room to spare; a file of this size needs about
 * 1 GB of memory to parse and build.
 */
export const MAX_TOKENIZER_BYTES = 48 * 2 ** 20;

/** Largest number of vocabulary entries, merges or added tokens, and the cap on ids. */
export const MAX_TOKENIZER_ENTRIES = 2 ** 21;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

const MODEL_TYPES = ["BPE", "Unigram", "WordPiece"];
const NORMALIZERS = [
  "BertNormalizer",
  "Precompiled",
  "Sequence",
  "Replace",
  "NFC",
  "NFD",
  "NFKC",
  "NFKD",
  "Strip",
  "StripAccents",
  "Lowercase",
  "Prepend",
];
const PRE_TOKENIZERS = [
  "BertPreTokenizer",
  "Sequence",
  "Whitespace",
  "WhitespaceSplit",
  "Metaspace",
  "ByteLevel",
  "Split",
  "Punctuation",
  "Digits",
  "Replace",
  "FixedLength",
];
const DECODERS = [
  "ByteLevel",
  "WordPiece",
  "Metaspace",
  "BPEDecoder",
  "CTC",
  "Sequence",
  "Replace",
  "Fuse",
  "Strip",
  "ByteFallback",
];

class Checker {
  constructor(readonly file: string) {}

  fail(problem: string): never {
    throw new FormatError(this.file, problem);
  }

  str(v: unknown, what: string): string {
    if (typeof v !== "string") {
      this.fail(`${what} must be a string, got ${describe(v)}`);
    }
    return v;
  }

  optStr(v: unknown, what: string): void {
    if (v !== undefined && v !== null) this.str(v, what);
  }

  optBool(v: unknown, what: string): void {
    if (v !== undefined && v !== null && typeof v !== "boolean") {
      this.fail(`${what} must be a boolean, got ${describe(v)}`);
    }
  }

  id(v: unknown, what: string, limit = MAX_TOKENIZER_ENTRIES): number {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      this.fail(`${what} must be a non-negative integer, got ${describe(v)}`);
    }
    if (v >= limit) {
      this.fail(
        `${what} ${v} is out of range (ids must be below ${limit}: vocabulary plus added tokens)`,
      );
    }
    return v;
  }

  count(n: number, what: string): void {
    if (n > MAX_TOKENIZER_ENTRIES) {
      this.fail(
        `${what} has ${n} entries (limit ${MAX_TOKENIZER_ENTRIES})`,
      );
    }
  }

  /**
   * A component's object and its `type`, one of `types`; null when it is
   * null or absent.
   */
  typed(
    v: unknown,
    what: string,
    types: string[],
  ): { o: Json; type: string } | null {
    if (v === undefined || v === null) return null;
    if (!isObject(v)) this.fail(`${what} must be an object or null`);
    const type = v.type;
    if (typeof type !== "string" || !types.includes(type)) {
      throw new FormatError(
        this.file,
        `unsupported ${what} type ${describe(type)} (supported: ${
          types.join(", ")
        })`,
      );
    }
    return { o: v, type };
  }

  /** A component: null, or an object whose `type` is one of `types`. */
  component(
    v: unknown,
    what: string,
    types: string[],
    seqKey: string,
    depth = 0,
  ): void {
    const t = this.typed(v, what, types);
    if (t === null) return;
    const { o, type } = t;
    if (type === "Sequence") {
      if (depth > 8) this.fail(`${what} Sequence nests too deeply`);
      const list = o[seqKey];
      if (!Array.isArray(list)) {
        this.fail(`${what} Sequence must have a "${seqKey}" list`);
      }
      if (list.length > 64) this.fail(`${what} Sequence is too long`);
      list.forEach((c, i) =>
        this.component(c, `${what}.${seqKey}[${i}]`, types, seqKey, depth + 1)
      );
    }
    for (const key of ["pattern", "content", "prepend", "replacement"]) {
      const p = o[key];
      if (p === undefined) continue;
      if (key === "pattern") this.pattern(p, `${what}.pattern`);
      else this.str(p, `${what}.${key}`);
    }
  }

  /** `{String: s}` or `{Regex: r}`; the library compiles the regex and reports its errors. */
  pattern(p: unknown, what: string): void {
    if (
      !isObject(p) ||
      (typeof p.String !== "string" && typeof p.Regex !== "string")
    ) {
      this.fail(`${what} must be {String} or {Regex}`);
    }
  }
}

function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  const s = JSON.stringify(v);
  return s === undefined ? typeof v : s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/**
 * Checks parsed tokenizer.json `json` (see the module doc) and returns the
 * number of ids it may use: vocabulary entries plus added tokens.
 *
 * @throws {FormatError} naming `file` on the first problem.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { validateTokenizerJson } from "./_validate_tokenizer.ts";
 * const json = {
 *   model: { type: "BPE", vocab: { a: 0, b: 1, ab: 2 }, merges: ["a b"] },
 *   added_tokens: [{ id: 3, content: "<s>", special: true }],
 * };
 * assert.equal(validateTokenizerJson(json, "tokenizer.json"), 4);
 * json.added_tokens[0].id = 2 ** 31;
 * assert.throws(() => validateTokenizerJson(json, "tokenizer.json"), /out of range/);
 * ```
 */
export function validateTokenizerJson(json: unknown, file: string): number {
  const c: Checker = new Checker(file);
  if (!isObject(json)) c.fail("not a JSON object");
  const model = json.model;
  if (!isObject(model)) c.fail('has no "model" object');
  const type = model.type ?? (Array.isArray(model.vocab) ? "Unigram" : "BPE");
  if (typeof type !== "string" || !MODEL_TYPES.includes(type)) {
    throw new FormatError(
      file,
      `unsupported tokenizer model type ${describe(type)} (supported: ${
        MODEL_TYPES.join(", ")
      })`,
    );
  }

  // Added tokens: their number bounds the id range together with the vocab.
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) c.fail("added_tokens must be a list");
  c.count(added.length, "added_tokens");

  // Vocabulary.
  const vocab = model.vocab;
  let vocabCount: number;
  const vocabIds: [string, unknown][] = [];
  if (type === "Unigram") {
    if (!Array.isArray(vocab)) {
      c.fail("model.vocab must be a list of [piece, score]");
    }
    c.count(vocab.length, "model.vocab");
    vocab.forEach((e, i) => {
      if (
        !Array.isArray(e) || e.length < 2 || typeof e[0] !== "string" ||
        typeof e[1] !== "number" || !Number.isFinite(e[1])
      ) {
        c.fail(`model.vocab[${i}] must be [piece, score], got ${describe(e)}`);
      }
    });
    vocabCount = vocab.length;
  } else {
    if (!isObject(vocab)) c.fail("model.vocab must be an object of token → id");
    const entries = Object.entries(vocab);
    c.count(entries.length, "model.vocab");
    for (const e of entries) vocabIds.push(e);
    vocabCount = entries.length;
  }
  const limit = Math.min(MAX_TOKENIZER_ENTRIES, vocabCount + added.length);
  if (limit === 0) c.fail("the vocabulary is empty");
  for (const [tok, id] of vocabIds) {
    c.id(id, `model.vocab[${describe(tok)}]`, limit);
  }

  if (type === "Unigram") {
    if (model.unk_id !== undefined && model.unk_id !== null) {
      c.id(model.unk_id, "model.unk_id", vocabCount);
    }
  } else {
    c.optStr(model.unk_token, "model.unk_token");
    c.optStr(
      model.continuing_subword_prefix,
      "model.continuing_subword_prefix",
    );
    c.optStr(model.end_of_word_suffix, "model.end_of_word_suffix");
  }
  if (type === "BPE") {
    const merges = model.merges ?? [];
    if (!Array.isArray(merges)) c.fail("model.merges must be a list");
    c.count(merges.length, "model.merges");
    merges.forEach((m, i) => {
      const ok = typeof m === "string"
        ? m.includes(" ")
        : Array.isArray(m) && m.length === 2 &&
          typeof m[0] === "string" && typeof m[1] === "string";
      if (!ok) {
        c.fail(
          `model.merges[${i}] must be "a b" or ["a", "b"], got ${describe(m)}`,
        );
      }
    });
    c.optBool(model.byte_fallback, "model.byte_fallback");
    c.optBool(model.fuse_unk, "model.fuse_unk");
    c.optBool(model.ignore_merges, "model.ignore_merges");
  }
  if (type === "WordPiece") {
    const m = model.max_input_chars_per_word;
    if (
      m !== undefined && m !== null &&
      (typeof m !== "number" || !Number.isInteger(m) || m < 0)
    ) {
      c.fail("model.max_input_chars_per_word must be a non-negative integer");
    }
  }

  added.forEach((t, i) => {
    if (!isObject(t)) c.fail(`added_tokens[${i}] must be an object`);
    c.id(t.id, `added_tokens[${i}].id`, limit);
    const content = c.str(t.content, `added_tokens[${i}].content`);
    if (content === "") c.fail(`added_tokens[${i}].content is empty`);
    for (
      const k of ["special", "single_word", "lstrip", "rstrip", "normalized"]
    ) {
      c.optBool(t[k], `added_tokens[${i}].${k}`);
    }
  });

  c.component(json.normalizer, "normalizer", NORMALIZERS, "normalizers");
  c.component(
    json.pre_tokenizer,
    "pre_tokenizer",
    PRE_TOKENIZERS,
    "pretokenizers",
  );
  c.component(json.decoder, "decoder", DECODERS, "decoders");
  postProcessor(c, json.post_processor, "post_processor", limit, 0);
  return limit;
}

const POST_PROCESSORS = [
  "TemplateProcessing",
  "ByteLevel",
  "BertProcessing",
  "RobertaProcessing",
  "Sequence",
];

function postProcessor(
  c: Checker,
  v: unknown,
  what: string,
  limit: number,
  depth: number,
): void {
  const t = c.typed(v, what, POST_PROCESSORS);
  if (t === null) return;
  const { o, type } = t;
  switch (type) {
    case "TemplateProcessing": {
      const special = o.special_tokens ?? {};
      if (!isObject(special)) {
        c.fail(`${what}.special_tokens must be an object`);
      }
      for (const [name, s] of Object.entries(special)) {
        const w = `${what}.special_tokens[${describe(name)}]`;
        if (!isObject(s)) c.fail(`${w} must be {id, ids, tokens}`);
        c.str(s.id, `${w}.id`);
        if (!Array.isArray(s.ids) || !Array.isArray(s.tokens)) {
          c.fail(`${w} must have ids and tokens lists`);
        }
        if (s.ids.length !== s.tokens.length || s.ids.length > 64) {
          c.fail(`${w}: ids and tokens must have the same length (at most 64)`);
        }
        s.ids.forEach((id, i) => c.id(id, `${w}.ids[${i}]`, limit));
        s.tokens.forEach((t, i) => c.str(t, `${w}.tokens[${i}]`));
      }
      for (const key of ["single", "pair"]) {
        const list = o[key];
        if (key === "pair" && (list === undefined || list === null)) continue;
        if (!Array.isArray(list) || list.length > 64) {
          c.fail(`${what}.${key} must be a list of pieces (at most 64)`);
        }
        list.forEach((piece, i) => {
          const w = `${what}.${key}[${i}]`;
          if (!isObject(piece)) {
            c.fail(`${w} must be {SpecialToken} or {Sequence}`);
          }
          const st = piece.SpecialToken;
          const sq = piece.Sequence;
          if (isObject(st)) {
            const id = c.str(st.id, `${w}.SpecialToken.id`);
            if (!Object.hasOwn(special, id)) {
              c.fail(
                `${w}: special token ${describe(id)} is not in special_tokens`,
              );
            }
            typeId(c, st.type_id, `${w}.SpecialToken.type_id`);
          } else if (isObject(sq)) {
            if (sq.id !== "A" && sq.id !== "B") {
              c.fail(`${w}.Sequence.id must be "A" or "B"`);
            }
            typeId(c, sq.type_id, `${w}.Sequence.type_id`);
          } else {
            c.fail(`${w} must be {SpecialToken} or {Sequence}`);
          }
        });
      }
      return;
    }
    case "BertProcessing":
    case "RobertaProcessing":
      for (const key of ["sep", "cls"]) {
        const p = o[key];
        if (
          !Array.isArray(p) || p.length !== 2 || typeof p[0] !== "string"
        ) {
          c.fail(`${what}.${key} must be [token, id]`);
        }
        c.id(p[1], `${what}.${key}[1]`, limit);
      }
      return;
    case "ByteLevel":
      return;
    case "Sequence": {
      if (depth > 8) c.fail(`${what} Sequence nests too deeply`);
      const list = o.processors;
      if (!Array.isArray(list) || list.length > 64) {
        c.fail(`${what}.processors must be a list (at most 64)`);
      }
      list.forEach((p, i) =>
        postProcessor(c, p, `${what}.processors[${i}]`, limit, depth + 1)
      );
    }
  }
}

function typeId(c: Checker, v: unknown, what: string): void {
  if (v === undefined) return;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 255) {
    c.fail(`${what} must be a small non-negative integer, got ${describe(v)}`);
  }
}
