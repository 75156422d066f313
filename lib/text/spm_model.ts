/**
 * SentencePiece `tokenizer.model` files (a protobuf `ModelProto`; ChatGLM2/3
 * ship one) read into the pieces, scores and types {@link convertSpm}
 * converts. Only the fields the conversion needs are decoded:
 *
 * - `pieces` (field 1, repeated): piece (1, string), score (2, float), type
 *   (3, enum: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5,
 *   BYTE 6; the numbering of llama.cpp's token types);
 * - `trainer_spec` (2): model_type (3: UNIGRAM 1, BPE 2, WORD 3, CHAR 4),
 *   byte_fallback (35);
 * - `normalizer_spec` (3): add_dummy_prefix (3, default true).
 *
 * @module
 */
import { FormatError, UnsupportedError } from "../errors.ts";
import type { SpmVocab } from "./convert_spm.ts";

/** A protobuf wire reader over one message's bytes. */
class Wire {
  #at = 0;
  constructor(readonly b: Uint8Array, readonly file: string) {}

  get done(): boolean {
    return this.#at >= this.b.length;
  }

  fail(problem: string): never {
    throw new FormatError(this.file, `${problem} (byte ${this.#at})`);
  }

  varint(): number {
    let v = 0, mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.#at >= this.b.length) this.fail("truncated varint");
      const x = this.b[this.#at++];
      v += (x & 0x7f) * mul;
      if (!(x & 0x80)) return v;
      mul *= 128;
    }
    this.fail("varint too long");
  }

  bytes(n: number): Uint8Array {
    if (n > this.b.length - this.#at) this.fail("field runs past the end");
    const out = this.b.subarray(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }

  /** The next field: number, wire type and (for LEN) its bytes or (varint/fixed) its value. */
  field(): { no: number; wt: number; len?: Uint8Array; value?: number } {
    const key = this.varint();
    const no = Math.floor(key / 8), wt = key & 7;
    switch (wt) {
      case 0:
        return { no, wt, value: this.varint() };
      case 1:
        this.bytes(8);
        return { no, wt };
      case 2:
        return { no, wt, len: this.bytes(this.varint()) };
      case 5: {
        const b = this.bytes(4);
        return {
          no,
          wt,
          value: new DataView(b.buffer, b.byteOffset, 4).getFloat32(0, true),
        };
      }
      default:
        this.fail(`unsupported wire type ${wt}`);
    }
  }
}

/** What {@link parseSpmModel} reads. */
export interface SpmModel {
  /** Pieces, scores and types by id. */
  vocab: Pick<SpmVocab, "tokens" | "scores" | "types" | "addSpacePrefix">;
  /** `trainer_spec.model_type`: 1 unigram, 2 BPE, 3 word, 4 char. */
  modelType: number;
  /** `trainer_spec.byte_fallback`. */
  byteFallback: boolean;
}

/** Upper bound on the pieces read. */
const MAX_PIECES = 1 << 22;

/**
 * Reads a SentencePiece model file.
 *
 * @throws {FormatError} naming `file` for malformed protobuf or a piece
 * without text.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSpmModel } from "./spm_model.ts";
 * // one piece "a" (score -1, NORMAL), trainer_spec.model_type = BPE
 * const piece = [0x0a, 1, 0x61, 0x15, 0, 0, 0x80, 0xbf, 0x18, 1];
 * const bytes = new Uint8Array([0x0a, piece.length, ...piece, 0x12, 2, 0x18, 2]);
 * const m = parseSpmModel(bytes, "tokenizer.model");
 * assert.deepEqual(m.vocab.tokens, ["a"]);
 * assert.equal(m.vocab.scores[0], -1);
 * assert.equal(m.modelType, 2);
 * ```
 */
export function parseSpmModel(bytes: Uint8Array, file: string): SpmModel {
  const w = new Wire(bytes, file);
  const tokens: string[] = [], scores: number[] = [], types: number[] = [];
  let modelType = 1, byteFallback = false, addSpacePrefix = true;
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  while (!w.done) {
    const f = w.field();
    if (f.no === 1 && f.len) {
      if (tokens.length >= MAX_PIECES) w.fail(`more than ${MAX_PIECES} pieces`);
      const p = new Wire(f.len, file);
      let piece: string | null = null, score = 0, type = 1;
      while (!p.done) {
        const g = p.field();
        if (g.no === 1 && g.len) {
          try {
            piece = utf8.decode(g.len);
          } catch {
            p.fail(`piece ${tokens.length} is not UTF-8`);
          }
        } else if (g.no === 2 && g.wt === 5) score = g.value!;
        else if (g.no === 3 && g.wt === 0) type = g.value!;
      }
      if (piece === null) {
        throw new FormatError(file, `piece ${tokens.length} has no text`);
      }
      tokens.push(piece);
      scores.push(score);
      types.push(type);
    } else if (f.no === 2 && f.len) {
      const t = new Wire(f.len, file);
      while (!t.done) {
        const g = t.field();
        if (g.no === 3 && g.wt === 0) modelType = g.value!;
        if (g.no === 35 && g.wt === 0) byteFallback = g.value !== 0;
      }
    } else if (f.no === 3 && f.len) {
      const n = new Wire(f.len, file);
      while (!n.done) {
        const g = n.field();
        if (g.no === 3 && g.wt === 0) addSpacePrefix = g.value !== 0;
      }
    }
  }
  if (tokens.length === 0) throw new FormatError(file, "no pieces");
  return {
    vocab: { tokens, scores, types, addSpacePrefix },
    modelType,
    byteFallback,
  };
}

/**
 * Refuses a SentencePiece model {@link convertSpm} cannot reproduce: only
 * BPE models convert (their merges follow from the scores).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkSpmConvertible } from "./spm_model.ts";
 * assert.throws(() => checkSpmConvertible({ modelType: 1 } as never, "t.model"));
 * ```
 */
export function checkSpmConvertible(m: SpmModel, file: string): void {
  if (m.modelType !== 2) {
    throw new UnsupportedError(
      file,
      `SentencePiece model type ${m.modelType} (only BPE, 2, converts to tokenizer.json)`,
    );
  }
}
