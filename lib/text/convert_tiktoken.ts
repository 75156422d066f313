/**
 * tiktoken BPE files (`<base64 token> <rank>` per line; GLM-4-9B-chat ships
 * one as `tokenizer.model`) → Hugging Face `tokenizer.json`, as transformers'
 * TikTokenConverter does it:
 *
 * 1. token id = rank; the token's bytes map through GPT-2's byte→unicode
 *    table (ByteLevel);
 * 2. merges are derived from the ranks: every split of a token into two
 *    tokens of lower rank is a merge, ordered by the merged token's rank
 *    (then the parts' ranks), so BPE by merge rank is tiktoken's "merge the
 *    adjacent pair whose concatenation has the lowest rank";
 * 3. a piece that already is a token is emitted whole (`ignore_merges`, as
 *    tiktoken looks a piece up before merging);
 * 4. the split regex is the one of the `chatglm-bpe` family (cl100k's).
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { convertGpt2 } from "./convert_gpt2.ts";
import {
  type ConvertedTokenizer,
  type SpecialTokens,
  TOKEN_TYPE,
} from "./convert_spm.ts";

/** Upper bound on the number of ranks read (GLM-4 has 151,329). */
const MAX_RANKS = 1 << 22;

/**
 * Token bytes by rank from a tiktoken BPE file; every rank 0..n-1 present
 * exactly once, every token distinct.
 *
 * @throws {FormatError} naming `file` for a malformed line, a rank out of
 * order or a repeated token.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTiktoken } from "./convert_tiktoken.ts";
 * const ranks = parseTiktoken("YQ== 0\nYg== 1\nYWI= 2\n", "tokenizer.model");
 * assert.deepEqual(ranks.map((b) => new TextDecoder().decode(b)), ["a", "b", "ab"]);
 * ```
 */
export function parseTiktoken(text: string, file: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  const seen = new Set<string>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trimEnd();
    if (line === "") continue;
    const m = /^([A-Za-z0-9+/]+={0,2}) (\d+)$/.exec(line);
    if (!m) {
      throw new FormatError(file, `line ${i + 1} is not "<base64> <rank>"`);
    }
    const rank = Number(m[2]);
    if (rank !== out.length) {
      throw new FormatError(
        file,
        `line ${i + 1}: rank ${rank} out of order (expected ${out.length})`,
      );
    }
    if (out.length >= MAX_RANKS) {
      throw new FormatError(file, `more than ${MAX_RANKS} ranks`);
    }
    if (seen.has(m[1])) {
      throw new FormatError(file, `line ${i + 1}: token ${m[1]} repeated`);
    }
    seen.add(m[1]);
    let bin: string;
    try {
      bin = atob(m[1]);
    } catch {
      throw new FormatError(file, `line ${i + 1}: invalid base64`);
    }
    out.push(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  }
  if (out.length === 0) throw new FormatError(file, "no ranks");
  return out;
}

/** GPT-2's byte → printable character table (ByteLevel). */
function byteToUnicode(): string[] {
  const keep = (b: number) =>
    (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    out[b] = String.fromCodePoint(keep(b) ? b : 256 + n++);
  }
  return out;
}

/** Input of {@link convertTiktoken}. */
export interface TiktokenVocab extends SpecialTokens {
  /** Token bytes by rank (= id), from {@link parseTiktoken}. */
  ranks: readonly Uint8Array[];
  /** Special tokens (text, id); ids past the ranks, gaps left unused. */
  special: readonly { content: string; id: number }[];
  /** File name for error messages. */
  file?: string;
}

/**
 * Merges (as `"left right"` in ByteLevel text) from tiktoken ranks.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tiktokenMerges } from "./convert_tiktoken.ts";
 * const t = (s: string) => new TextEncoder().encode(s);
 * assert.deepEqual(tiktokenMerges([t("a"), t("b"), t("c"), t("ab"), t("abc")]), ["a b", "ab c"]);
 * ```
 */
export function tiktokenMerges(ranks: readonly Uint8Array[]): string[] {
  const b2u = byteToUnicode();
  const text = ranks.map((b) => Array.from(b, (x) => b2u[x]).join(""));
  const rankOf = new Map<string, number>();
  text.forEach((t, r) => rankOf.set(t, r));
  const merges: [number, number, number, string][] = [];
  text.forEach((t, r) => {
    const cps = Array.from(t);
    for (let i = 1; i < cps.length; i++) {
      const l = cps.slice(0, i).join(""), rt = cps.slice(i).join("");
      const rl = rankOf.get(l), rr = rankOf.get(rt);
      if (rl === undefined || rr === undefined || rl >= r || rr >= r) continue;
      merges.push([r, rl, rr, `${l} ${rt}`]);
    }
  });
  merges.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  return merges.map((m) => m[3]);
}

/**
 * Converts tiktoken ranks plus special tokens into tokenizer.json /
 * tokenizer_config.json / generation_config.json.
 *
 * @throws {FormatError} when a special token's id collides with a rank or
 * another special token.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { convertTiktoken } from "./convert_tiktoken.ts";
 * const t = (s: string) => new TextEncoder().encode(s);
 * const c = convertTiktoken({ ranks: [t("a"), t("b"), t("ab")], special: [{ content: "<|end|>", id: 3 }], eosId: 3 });
 * assert.deepEqual((c.tokenizer.model as { merges: string[][] }).merges, [["a", "b"]]);
 * assert.equal(c.generationConfig.eos_token_id, 3);
 * ```
 */
export function convertTiktoken(v: TiktokenVocab): ConvertedTokenizer {
  const file = v.file ?? "tokenizer.model";
  const b2u = byteToUnicode();
  const n = Math.max(v.ranks.length, ...v.special.map((s) => s.id + 1));
  if (n > MAX_RANKS) {
    throw new FormatError(
      file,
      `special token id ${n - 1} is implausibly large`,
    );
  }
  const tokens: string[] = v.ranks.map((b) =>
    Array.from(b, (x) => b2u[x]).join("")
  );
  const types = new Int32Array(n).fill(TOKEN_TYPE.NORMAL);
  for (let i = tokens.length; i < n; i++) {
    tokens.push(`<|unused_${i}|>`); // a gap between the specials
    types[i] = TOKEN_TYPE.UNUSED;
  }
  for (const s of v.special) {
    if (s.id < v.ranks.length || types[s.id] === TOKEN_TYPE.CONTROL) {
      throw new FormatError(
        file,
        `special token ${s.content} id ${s.id} is taken`,
      );
    }
    tokens[s.id] = s.content;
    types[s.id] = TOKEN_TYPE.CONTROL;
  }
  return convertGpt2({
    ...v,
    tokens,
    types,
    merges: tiktokenMerges(v.ranks),
    pre: "chatglm-bpe",
    file,
  });
}
