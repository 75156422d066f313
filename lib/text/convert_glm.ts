/**
 * ChatGLM's `tokenizer.model` → tokenizer.json, at split time: ChatGLM2/3
 * ship a SentencePiece model, GLM-4-9B-chat a tiktoken BPE file, both read
 * by a remote-code `tokenization_chatglm.py` that adds the special tokens
 * after the vocabulary. The result behaves as that code does:
 *
 * - special tokens: `added_tokens_decoder` of tokenizer_config.json when it
 *   has one, else the lists of tokenization_chatglm.py (ChatGLM2/3: [MASK],
 *   [gMASK], [sMASK], sop, eop, <|system|>, <|user|>, <|assistant|>,
 *   <|observation|> from the SentencePiece size on; GLM-4: <|endoftext|>
 *   151329 … <|end_of_video|> 151342);
 * - encoding with special tokens prefixes `[gMASK]` and `sop` / `<sop>`
 *   (`get_prefix_tokens`);
 * - generation stops on the config's eos ids and on `<|user|>` and
 *   `<|observation|>` (the chat code's end-of-turn tokens);
 * - the chat template is the source tokenizer_config.json's, else
 *   {@link CHATGLM3_TEMPLATE} / {@link GLM4_TEMPLATE}.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import {
  type ConvertedTokenizer,
  convertSpm,
  templateProcessing,
  TOKEN_TYPE,
} from "./convert_spm.ts";
import { convertTiktoken, parseTiktoken } from "./convert_tiktoken.ts";
import { checkSpmConvertible, parseSpmModel } from "./spm_model.ts";

/** ChatGLM3's chat format: role tokens, "\n " before each message (from SentencePiece's dummy prefix). */
export const CHATGLM3_TEMPLATE =
  "[gMASK]sop{% for message in messages %}<|{{ message['role'] }}|>\n {{ message['content'] }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";

/** GLM-4's chat format: `[gMASK]<sop>`, then `<|role|>\n` before each message. */
export const GLM4_TEMPLATE =
  "[gMASK]<sop>{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";

const CHATGLM_SPECIAL = [
  "[MASK]",
  "[gMASK]",
  "[sMASK]",
  "sop",
  "eop",
  "<|system|>",
  "<|user|>",
  "<|assistant|>",
  "<|observation|>",
];

const GLM4_SPECIAL = [
  "<|endoftext|>",
  "[MASK]",
  "[gMASK]",
  "[sMASK]",
  "<sop>",
  "<eop>",
  "<|system|>",
  "<|user|>",
  "<|assistant|>",
  "<|observation|>",
  "<|begin_of_image|>",
  "<|end_of_image|>",
  "<|begin_of_video|>",
  "<|end_of_video|>",
];

/** Whether the file starts like a tiktoken BPE file (`<base64> <rank>` lines). */
function isTiktoken(bytes: Uint8Array): boolean {
  const head = new TextDecoder().decode(bytes.subarray(0, 256));
  return /^[A-Za-z0-9+/]+={0,2} \d+\n/.test(head);
}

type Json = Record<string, unknown>;

/** Special tokens from tokenizer_config.json's `added_tokens_decoder`, or null. */
function addedTokensDecoder(
  cfg: Json | undefined,
  file: string,
): { content: string; id: number }[] | null {
  const d = cfg?.added_tokens_decoder;
  if (typeof d !== "object" || d === null || Array.isArray(d)) return null;
  const out: { content: string; id: number }[] = [];
  for (const [k, v] of Object.entries(d as Json)) {
    const id = Number(k);
    const content = (v as Json | null)?.content;
    if (!Number.isSafeInteger(id) || id < 0 || typeof content !== "string") {
      throw new FormatError(file, `added_tokens_decoder[${k}] is malformed`);
    }
    out.push({ content, id });
  }
  return out.length > 0 ? out : null;
}

/** Options of {@link convertChatglmTokenizer}. */
export interface ChatglmTokenizerSource {
  /** The bytes of tokenizer.model. */
  bytes: Uint8Array;
  /** Its path, for errors. */
  file: string;
  /** The model's config.json (eos ids). */
  config: Json;
  /** The source tokenizer_config.json, when there is one. */
  tokenizerConfig?: Json;
}

/**
 * Converts a ChatGLM `tokenizer.model` (SentencePiece or tiktoken) into
 * tokenizer.json / tokenizer_config.json / generation_config.json.
 *
 * @throws {FormatError} for a malformed file; {@link UnsupportedError} for a
 * SentencePiece model other than BPE.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { convertChatglmTokenizer } from "./convert_glm.ts";
 * const bytes = new TextEncoder().encode("YQ== 0\nYg== 1\nYWI= 2\n");
 * const c = convertChatglmTokenizer({ bytes, file: "tokenizer.model",
 *   config: { eos_token_id: [3, 10] } });
 * // the specials follow the ranks, as in GLM-4 (151,329 ranks, <|endoftext|> = 151329)
 * const first = (c.tokenizer.added_tokens as { id: number; content: string }[])[0];
 * assert.deepEqual([first.id, first.content], [3, "<|endoftext|>"]);
 * // eos ids plus <|user|> (10) and <|observation|> (12)
 * assert.deepEqual(c.generationConfig.eos_token_id, [3, 10, 12]);
 * assert.match(String(c.tokenizerConfig.chat_template), /^\[gMASK\]<sop>/);
 * ```
 */
export function convertChatglmTokenizer(
  src: ChatglmTokenizerSource,
): ConvertedTokenizer {
  const { bytes, file } = src;
  const added = addedTokensDecoder(src.tokenizerConfig, file);
  const eosIds = [src.config.eos_token_id].flat().filter((x): x is number =>
    typeof x === "number"
  );
  let c: ConvertedTokenizer;
  let template: string;
  if (isTiktoken(bytes)) {
    const ranks = parseTiktoken(new TextDecoder().decode(bytes), file);
    const special = added ??
      GLM4_SPECIAL.map((content, i) => ({ content, id: ranks.length + i }));
    c = convertTiktoken({ ranks, special, file, eosId: eosIds[0] ?? null });
    template = GLM4_TEMPLATE;
  } else {
    const m = parseSpmModel(bytes, file);
    checkSpmConvertible(m, file);
    const tokens = [...m.vocab.tokens];
    const scores = Array.from(m.vocab.scores);
    const types = Array.from(m.vocab.types!);
    const n = tokens.length;
    const special = added ??
      CHATGLM_SPECIAL.map((content, i) => ({ content, id: n + i }));
    for (const s of special) {
      if (s.id < n) continue; // already a piece
      while (tokens.length <= s.id) {
        tokens.push(`<unused_${tokens.length}>`);
        scores.push(0);
        types.push(TOKEN_TYPE.UNUSED);
      }
      tokens[s.id] = s.content;
      types[s.id] = TOKEN_TYPE.CONTROL;
    }
    c = convertSpm({
      tokens,
      scores,
      types,
      addSpacePrefix: m.vocab.addSpacePrefix,
      unkId: 0,
      bosId: 1,
      eosId: eosIds[0] ?? 2,
      addBos: false,
    });
    template = CHATGLM3_TEMPLATE;
  }
  const model = c.tokenizer.model as { vocab: Record<string, number> };
  const idOf = (t: string) =>
    Object.hasOwn(model.vocab, t) ? model.vocab[t] : null;
  const tokens: string[] = [];
  for (const [t, id] of Object.entries(model.vocab)) tokens[id] = t;
  // get_prefix_tokens: [gMASK] then sop / <sop>
  const gmask = idOf("[gMASK]"), sop = idOf("<sop>") ?? idOf("sop");
  if (gmask !== null && sop !== null) {
    const pp = templateProcessing(tokens, gmask, null);
    const prefix = { SpecialToken: { id: tokens[sop], type_id: 0 } };
    for (const key of ["single", "pair"] as const) {
      (pp[key] as unknown[]).splice(1, 0, prefix);
    }
    (pp.special_tokens as Json)[tokens[sop]] = {
      id: tokens[sop],
      ids: [sop],
      tokens: [tokens[sop]],
    };
    c.tokenizer.post_processor = pp;
  }
  const stop = [
    ...eosIds,
    ...["<|user|>", "<|observation|>"].map(idOf).filter((x) => x !== null),
  ];
  c.generationConfig.eos_token_id = [...new Set(stop)];
  const srcTemplate = src.tokenizerConfig?.chat_template;
  c.tokenizerConfig.chat_template = typeof srcTemplate === "string"
    ? srcTemplate
    : template;
  return c;
}

/**
 * The text files of a ChatGLM checkpoint directory with its tokenizer.model
 * converted (see {@link convertChatglmTokenizer}): tokenizer.json and
 * tokenizer_config.json replace the remote-code ones; generation_config.json
 * keeps its fields and gains the end-of-turn ids.
 *
 * @throws {FormatError} for a malformed tokenizer.model or tokenizer_config.json.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chatglmTextFiles } from "./convert_glm.ts";
 * const bytes = new TextEncoder().encode("YQ== 0\nYg== 1\n");
 * const out = chatglmTextFiles({ "generation_config.json": '{"eos_token_id": 2}' }, {
 *   bytes, file: "tokenizer.model", config: { eos_token_id: 2 } });
 * assert.deepEqual(JSON.parse(out["generation_config.json"]).eos_token_id, [2, 9, 11]);
 * assert.ok("tokenizer.json" in out);
 * ```
 */
export function chatglmTextFiles(
  files: Readonly<Record<string, string>>,
  src: Omit<ChatglmTokenizerSource, "tokenizerConfig">,
): Record<string, string> {
  const parse = (name: string): Json | undefined => {
    const t = files[name];
    if (t === undefined) return undefined;
    const v = JSON.parse(t);
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new FormatError(name, "is not a JSON object");
    }
    return v as Json;
  };
  const c = convertChatglmTokenizer({
    ...src,
    tokenizerConfig: parse("tokenizer_config.json"),
  });
  const gen = parse("generation_config.json") ?? {};
  const eos = [
    ...new Set([gen.eos_token_id, c.generationConfig.eos_token_id].flat()),
  ].filter((x) => typeof x === "number");
  return {
    ...files,
    "tokenizer.json": JSON.stringify(c.tokenizer),
    "tokenizer_config.json": JSON.stringify(c.tokenizerConfig, null, 2),
    "generation_config.json": JSON.stringify(
      { ...c.generationConfig, ...gen, eos_token_id: eos },
      null,
      2,
    ),
  };
}
