/**
 * Model sources: one normalized view of a checkpoint (Hugging Face directory,
 * GGUF file or llama2.c checkpoint) that `splitModel` turns into shards.
 *
 * @module
 */
import type { FloatDtype, PackedName } from "../quant/encoding.ts";

/**
 * Name of the progress record inside the output directory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PROGRESS_FILE } from "./source.ts";
 * assert.deepStrictEqual(PROGRESS_FILE, ".strata-split.json");
 * ```
 */
export const PROGRESS_FILE = ".strata-split.json";

/**
 * Element types a source tensor may have.
 *
 * @example
 * ```ts
 * import type { SourceDtype } from "./source.ts";
 * const d: SourceDtype = "BF16";
 * console.log(d);
 * ```
 */
export type SourceDtype = FloatDtype | PackedName;

/**
 * The bytes of one source tensor: raw little-endian floats, or a packed
 * encoding's data and scales (lib/quant/encoding.ts, docs/format.md) for
 * sources that are already quantized.
 *
 * @example
 * ```ts
 * import type { TensorData } from "./source.ts";
 * const t: TensorData = { dtype: "F32", bytes: new Uint8Array(8) };
 * console.log(t.dtype);
 * ```
 */
export type TensorData =
  | { dtype: FloatDtype; bytes: Uint8Array }
  | {
    dtype: PackedName;
    /** The data tensor's bytes (the 8-bit packing: int8 values). */
    data: Uint8Array | Int8Array;
    /** f16 bits [rows, nb] (empty for an encoding without a scales tensor). */
    scales: Uint16Array;
    shape: [number, number];
  };

/**
 * One tensor of a source, under its Hugging Face name and layout.
 *
 * @example
 * ```ts
 * import type { SourceTensor } from "./source.ts";
 * const t: SourceTensor = {
 *   name: "model.norm.weight", dtype: "F32", shape: [2], byteLength: 8,
 *   read: () => Promise.resolve({ dtype: "F32", bytes: new Uint8Array(8) }),
 * };
 * console.log(t.name);
 * ```
 */
export interface SourceTensor {
  /** Hugging Face name, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  name: string;
  /** Element type in the source. */
  dtype: SourceDtype;
  /** Logical row-major shape (packed encodings: the unpacked [rows, cols]). */
  shape: number[];
  /** Bytes the tensor occupies in the source. */
  byteLength: number;
  /** The file holding it, for error messages (optional). */
  file?: string;
  /** Reads the tensor; at most one tensor's worth of memory. */
  read(): Promise<TensorData>;
  /**
   * Optional, for float tensors stored as they are (F32/F16/BF16, row-major):
   * fills `into` with the tensor's bytes from byte `start` of its data, so
   * the split can copy or pack it in chunks without holding it whole.
   */
  readRange?(start: number, into: Uint8Array): Promise<Uint8Array>;
  /**
   * Optional, with `readRange`: the tensor's bytes lie as they are at
   * absolute byte `offset` of file `path`, so a quantization worker may
   * read its chunks itself (straight into its packing memory).
   */
  fileRange?: { path: string; offset: number };
}

/**
 * A checkpoint opened for splitting.
 *
 * @example
 * ```ts ignore
 * import { openSource } from "./open_source.ts";
 * const src = await openSource("models/tiny-llama");
 * console.log(src.kind, src.description, src.tensors.length);
 * src.close();
 * ```
 */
export interface ModelSource {
  /** Which reader produced it. */
  kind: "hf" | "gguf" | "llama2c";
  /** The path it was opened from (directory or file). */
  path: string;
  /** One line for humans, e.g. "Hugging Face checkpoint, 2 safetensors files, BF16". */
  description: string;
  /** Hugging Face-style config.json object (model_type, hidden_size, ...). */
  config: Record<string, unknown>;
  /**
   * Extra text files to copy into the shard directory, by file name:
   * `config.json` (original text, optional), `tokenizer.json`,
   * `tokenizer_config.json`, `generation_config.json`.
   */
  files: Record<string, string>;
  /** Every tensor, Hugging Face names and layout. */
  tensors: SourceTensor[];
  /** The files `--delete-original` may delete once the split is verified. */
  sourceFiles: string[];
  /** Releases open files. */
  close(): void;
}
