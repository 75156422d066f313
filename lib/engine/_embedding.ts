/**
 * The token embedding, read row by row on the CPU.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import type { SafetensorsFile } from "../format/safetensors.ts";
import type { ModelConfig } from "../model/config.ts";
import { quantInfo } from "./_layout.ts";
import { decodeFloats } from "./_decode.ts";
import { decodeRow, type Encoding, encoding } from "../quant/encoding.ts";

/**
 * Embedding rows on demand from embed.safetensors (F32/F16/BF16 or a packed encoding):
 * the table never goes to the GPU; a pass reads its T rows.
 *
 * @example
 * ```ts ignore
 * import { EmbeddingTable } from "./_embedding.ts";
 * const table = new EmbeddingTable(embedFile, "model.embed_tokens.weight", cfg);
 * const x = await table.rows([1, 15, 27]); // x [3, D]
 * ```
 */
export class EmbeddingTable {
  readonly #f: SafetensorsFile;
  readonly #offset: number;
  readonly #rowBytes: number;
  readonly #quant: {
    enc: Encoding;
    scalesOffset: number;
    scalesRow: number;
  } | null;
  readonly #dtype: "F32" | "F16" | "BF16";
  /** D. */
  readonly dim: number;
  /** V. */
  readonly vocab: number;

  /** Checks that `name` in `f` holds [V, D] rows of a supported dtype. */
  constructor(f: SafetensorsFile, name: string, cfg: ModelConfig) {
    this.#f = f;
    const t = f.info(name);
    const q = quantInfo(f).get(name);
    this.dim = cfg.hiddenSize;
    this.vocab = cfg.vocabSize;
    this.#offset = t.offset;
    this.#dtype = "F32";
    if (q) {
      const enc = encoding(q.type);
      const s = enc.scales === "tensor" ? f.info(`${name}.scales`) : null;
      const [rb, sb] = enc.rowBytes(this.dim);
      this.#quant = { enc, scalesOffset: s?.offset ?? 0, scalesRow: sb };
      this.#rowBytes = rb;
    } else {
      if (t.dtype !== "F32" && t.dtype !== "F16" && t.dtype !== "BF16") {
        throw new FormatError(f.path, `embedding ${name} has dtype ${t.dtype}`);
      }
      this.#dtype = t.dtype;
      this.#quant = null;
      this.#rowBytes = this.dim * (t.dtype === "F32" ? 4 : 2);
    }
    if (this.#rowBytes * this.vocab > t.byteLength) {
      throw new FormatError(
        f.path,
        `embedding ${name} is smaller than [${this.vocab}, ${this.dim}]`,
      );
    }
  }

  /** x [T, D] f32 for `ids`. */
  async rows(ids: number[]): Promise<Float32Array<ArrayBuffer>> {
    const x = new Float32Array(ids.length * this.dim);
    await Promise.all(ids.map(async (id, t) => {
      const raw = await this.#f.readRange(
        this.#offset + id * this.#rowBytes,
        new Uint8Array(this.#rowBytes),
      );
      const out = x.subarray(t * this.dim, (t + 1) * this.dim);
      if (this.#quant) {
        const sc = this.#quant.scalesRow > 0 // inline scales: none to read
          ? await this.#f.readRange(
            this.#quant.scalesOffset + id * this.#quant.scalesRow,
            new Uint8Array(this.#quant.scalesRow),
          )
          : undefined;
        decodeRow(this.#quant.enc, raw, sc, out);
      } else {
        out.set(decodeFloats(raw, this.#dtype));
      }
    }));
    return x;
  }
}
