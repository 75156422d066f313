/**
 * llama2.c files: the legacy ("v0") checkpoint `model.bin` and the tokenizer
 * `tokenizer.bin` (karpathy/llama2.c `run.c`, `export.py`, `tokenizer.py`).
 *
 * Checkpoint: 7 little-endian int32 (`dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len`; `vocab_size < 0` means a separate
 * classifier follows), then float32 arrays in this order: token embedding
 * [vocab, dim], rms_att [L, dim], wq [L, dim, dim], wk [L, kv, dim],
 * wv [L, kv, dim], wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim],
 * w2 [L, dim, hidden], w3 [L, hidden, dim], rms_final [dim], freq_cis_real and
 * freq_cis_imag [seq_len, head_size/2] (unused), and wcls [vocab, dim] when not
 * shared. The header is validated against the file size: the float count must
 * match exactly.
 *
 * Tokenizer: int32 max_token_length, then per token (count = the model's
 * vocab size): f32 score, int32 length, bytes. `▁` is stored as a space and
 * BOS/EOS as `"\n<s>\n"` / `"\n</s>\n"`.
 *
 * {@link openLlama2cSource} (the model source) lives in
 * `lib/split/source_llama2c.ts`.
 *
 * @module
 */

import { FormatError } from "../errors.ts";

/** The llama2.c checkpoint header. */
export interface Llama2cHeader {
  /** Model width. */
  dim: number;
  /** FFN width. */
  hiddenDim: number;
  /** Number of layers. */
  nLayers: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads. */
  nKvHeads: number;
  /** Vocabulary size (absolute value of the stored field). */
  vocabSize: number;
  /** Maximum sequence length. */
  seqLen: number;
  /** Whether the classifier is the token embedding (stored vocab_size > 0). */
  sharedClassifier: boolean;
}

/** One float32 array of the checkpoint. */
export interface Llama2cArray {
  /** llama2.c name (`wq`, `rms_att_weight`, ...). */
  name: string;
  /** Row-major shape, including the leading layer axis for per-layer arrays. */
  shape: number[];
  /** Absolute byte offset. */
  offset: number;
  /** Byte length. */
  byteLength: number;
}

/** A validated llama2.c checkpoint layout. */
export interface Llama2cCheckpoint {
  /** The header. */
  header: Llama2cHeader;
  /** The arrays in file order (freq_cis included). */
  arrays: Llama2cArray[];
  /** File size in bytes. */
  fileSize: number;
}

/**
 * Validates a llama2.c v0 header against the file size and lays out the arrays.
 *
 * @throws {FormatError} when a header field is invalid or the size does not match exactly.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { llama2cLayout } from "./llama2c.ts";
 * const header = new Int32Array([64, 172, 5, 8, 4, 512, 512]);
 * const c = llama2cLayout("m.bin", header, 28 + 264128 * 4);
 * assert.deepStrictEqual([c.header.sharedClassifier, c.arrays.length], [true, 13]);
 * ```
 */
export function llama2cLayout(
  file: string,
  h: Int32Array,
  fileSize: number,
): Llama2cCheckpoint {
  if (fileSize < 28) {
    throw new FormatError(
      file,
      `file is ${fileSize} bytes, too short for a llama2.c header (28)`,
    );
  }
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabRaw, seqLen] = Array
    .from(h);
  const pos: [string, number][] = [
    ["dim", dim],
    ["hidden_dim", hiddenDim],
    ["n_layers", nLayers],
    [
      "n_heads",
      nHeads,
    ],
    ["n_kv_heads", nKvHeads],
    ["seq_len", seqLen],
  ];
  for (const [k, v] of pos) {
    if (!(v > 0)) {
      throw new FormatError(
        file,
        `header ${k} = ${v} must be positive (not a llama2.c v0 checkpoint?)`,
      );
    }
  }
  if (vocabRaw === 0 || vocabRaw === -2147483648) {
    throw new FormatError(file, `header vocab_size = ${vocabRaw} is invalid`);
  }
  if (dim % nHeads !== 0) {
    throw new FormatError(
      file,
      `dim ${dim} is not a multiple of n_heads ${nHeads}`,
    );
  }
  if (nHeads % nKvHeads !== 0) {
    throw new FormatError(
      file,
      `n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`,
    );
  }
  const hs = dim / nHeads;
  if (hs % 2 !== 0) throw new FormatError(file, `head size ${hs} is odd`);
  const vocab = Math.abs(vocabRaw);
  const shared = vocabRaw > 0;
  const kv = nKvHeads * hs;
  const L = nLayers;
  const specs: [string, number[]][] = [
    ["token_embedding_table", [vocab, dim]],
    ["rms_att_weight", [L, dim]],
    ["wq", [L, dim, dim]],
    ["wk", [L, kv, dim]],
    ["wv", [L, kv, dim]],
    ["wo", [L, dim, dim]],
    ["rms_ffn_weight", [L, dim]],
    ["w1", [L, hiddenDim, dim]],
    ["w2", [L, dim, hiddenDim]],
    ["w3", [L, hiddenDim, dim]],
    ["rms_final_weight", [dim]],
    ["freq_cis_real", [seqLen, hs / 2]],
    ["freq_cis_imag", [seqLen, hs / 2]],
  ];
  if (!shared) specs.push(["wcls", [vocab, dim]]);
  let floats = 0n;
  for (const [, s] of specs) floats += s.reduce((a, b) => a * BigInt(b), 1n);
  const want = 28n + floats * 4n;
  if (want !== BigInt(fileSize)) {
    throw new FormatError(
      file,
      `header (dim ${dim}, hidden ${hiddenDim}, layers ${L}, heads ${nHeads}/${nKvHeads}, vocab ${vocabRaw}, seq ${seqLen}) needs ${want} bytes but the file has ${fileSize} (not a llama2.c v0 checkpoint?)`,
    );
  }
  let offset = 28;
  const arrays: Llama2cArray[] = specs.map(([name, shape]) => {
    const byteLength = shape.reduce((a, b) => a * b, 1) * 4;
    const a = { name, shape, offset, byteLength };
    offset += byteLength;
    return a;
  });
  return {
    header: {
      dim,
      hiddenDim,
      nLayers,
      nHeads,
      nKvHeads,
      vocabSize: vocab,
      seqLen,
      sharedClassifier: shared,
    },
    arrays,
    fileSize,
  };
}

/**
 * Reads and validates the header of a llama2.c checkpoint file.
 *
 * @example
 * ```ts ignore
 * import { readLlama2cCheckpoint } from "./llama2c.ts";
 * const c = await readLlama2cCheckpoint("../shared/models/stories260K/stories260K.bin");
 * console.log(c.header.dim); // 64
 * ```
 */
export async function readLlama2cCheckpoint(
  path: string,
): Promise<Llama2cCheckpoint> {
  const f = await Deno.open(path, { read: true });
  try {
    const size = (await f.stat()).size;
    const buf = new Uint8Array(28);
    let done = 0;
    while (done < Math.min(28, size)) {
      const n = await f.read(buf.subarray(done, Math.min(28, size)));
      if (n === null) break;
      done += n;
    }
    const h = new Int32Array(7);
    const dv = new DataView(buf.buffer);
    for (let i = 0; i < 7; i++) h[i] = dv.getInt32(i * 4, true);
    return llama2cLayout(path, h, size);
  } finally {
    f.close();
  }
}

/** A llama2.c tokenizer: pieces (with `▁` restored) and scores. */
export interface Llama2cTokenizer {
  /** The stored max_token_length. */
  maxTokenLength: number;
  /** Piece text by id, SentencePiece spelling (`▁` for space, `<s>`, `</s>`). */
  tokens: string[];
  /** Scores by id. */
  scores: Float32Array;
}

/**
 * Parses a llama2.c `tokenizer.bin` of `vocabSize` entries. The entries must
 * use the whole file. Spaces become `▁` and ids 1–2 (`"\n<s>\n"`,
 * `"\n</s>\n"`) become `<s>` / `</s>`, giving back the SentencePiece pieces.
 *
 * @throws {FormatError} on truncation, bad lengths, invalid UTF-8 or trailing bytes.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseLlama2cTokenizer } from "./llama2c.ts";
 * const enc = new TextEncoder();
 * const parts: number[] = [];
 * const push = (score: number, s: string) => {
 *   const b = enc.encode(s);
 *   const head = new DataView(new ArrayBuffer(8));
 *   head.setFloat32(0, score, true); head.setInt32(4, b.length, true);
 *   parts.push(...new Uint8Array(head.buffer), ...b);
 * };
 * push(0, "<unk>"); push(0, "\n<s>\n"); push(0, "\n</s>\n"); push(-1, " a");
 * const bytes = new Uint8Array([6, 0, 0, 0, ...parts]);
 * assert.deepStrictEqual(parseLlama2cTokenizer(bytes, 4, "t.bin").tokens, ["<unk>", "<s>", "</s>", "▁a"]);
 * ```
 */
export function parseLlama2cTokenizer(
  bytes: Uint8Array,
  vocabSize: number,
  file: string,
): Llama2cTokenizer {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 4) {
    throw new FormatError(file, "too short for a llama2.c tokenizer");
  }
  const maxTokenLength = dv.getInt32(0, true);
  if (maxTokenLength < 0) {
    throw new FormatError(
      file,
      `max_token_length ${maxTokenLength} is negative`,
    );
  }
  if (vocabSize * 8 > bytes.byteLength - 4) {
    throw new FormatError(
      file,
      `${bytes.byteLength} bytes cannot hold ${vocabSize} tokens (the model's vocab size): the tokenizer of another model?`,
    );
  }
  const dec = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const tokens: string[] = new Array(vocabSize);
  const scores = new Float32Array(vocabSize);
  let p = 4;
  for (let i = 0; i < vocabSize; i++) {
    if (p + 8 > bytes.byteLength) {
      throw new FormatError(
        file,
        p === bytes.byteLength
          ? `holds ${i} tokens but the model's vocab size is ${vocabSize}: the tokenizer of another model?`
          : `token ${i} at byte ${p} runs past the end of the file`,
      );
    }
    scores[i] = dv.getFloat32(p, true);
    const len = dv.getInt32(p + 4, true);
    p += 8;
    if (len < 0 || p + len > bytes.byteLength) {
      throw new FormatError(
        file,
        `token ${i}: length ${len} at byte ${
          p - 4
        } runs past the end of the file`,
      );
    }
    let s: string;
    try {
      s = dec.decode(bytes.subarray(p, p + len));
    } catch {
      throw new FormatError(file, `token ${i} at byte ${p} is not valid UTF-8`);
    }
    p += len;
    if (i === 1 && s === "\n<s>\n") s = "<s>";
    else if (i === 2 && s === "\n</s>\n") s = "</s>";
    else s = s.replaceAll(" ", "▁");
    tokens[i] = s;
  }
  if (p !== bytes.byteLength) {
    throw new FormatError(
      file,
      `${
        bytes.byteLength - p
      } bytes left after ${vocabSize} tokens (vocab size mismatch with the model?)`,
    );
  }
  return { maxTokenLength, tokens, scores };
}
