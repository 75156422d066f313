/**
 * Model sources: one normalized view of a checkpoint (Hugging Face directory,
 * GGUF file or llama2.c checkpoint) that `splitModel` turns into shards.
 *
 * @module
 */
import { FormatError, UnsupportedError, UsageError } from "../errors.ts";
import { basename, dirname, extname, join } from "node:path";
import { PROGRESS_FILE } from "./split.ts";

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
export type SourceDtype = "F32" | "F16" | "BF16" | "q8" | "q4";

/**
 * The bytes of one source tensor: raw little-endian floats, or Strata's q8/q4
 * packing (see docs/format.md) for sources that are already quantized.
 *
 * @example
 * ```ts
 * import type { TensorData } from "./source.ts";
 * const t: TensorData = { dtype: "F32", bytes: new Uint8Array(8) };
 * console.log(t.dtype);
 * ```
 */
export type TensorData =
  | { dtype: "F32" | "F16" | "BF16"; bytes: Uint8Array }
  | {
    dtype: "q8";
    data: Int8Array;
    scales: Uint16Array;
    shape: [number, number];
  }
  | {
    dtype: "q4";
    data: Uint8Array;
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
  /** Logical row-major shape (for q8/q4: the unpacked [rows, cols]). */
  shape: number[];
  /** Bytes the tensor occupies in the source. */
  byteLength: number;
  /** The file holding it, for error messages (optional). */
  file?: string;
  /** Reads the tensor; at most one tensor's worth of memory. */
  read(): Promise<TensorData>;
}

/**
 * A checkpoint opened for splitting.
 *
 * @example
 * ```ts ignore
 * import { openSource } from "./source.ts";
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

/**
 * Options of {@link openSource}.
 *
 * @example
 * ```ts ignore
 * import { openSource } from "./source.ts";
 * const src = await openSource("stories260K.bin", { tokenizer: "tok512.bin" });
 * src.close();
 * ```
 */
export interface OpenSourceOptions {
  /** llama2.c tokenizer file (`tok512.bin`, `tokenizer.bin`) for `.bin` checkpoints. */
  tokenizer?: string;
}

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new FormatError(path, `cannot stat: ${(e as Error).message}`);
  }
}

/**
 * Opens a checkpoint for splitting: a Hugging Face directory (config.json +
 * safetensors), a `.gguf` file or a llama2.c `.bin` checkpoint.
 *
 * @throws {FormatError} when the path is missing or malformed.
 * @throws {UnsupportedError} for file types Strata cannot read.
 * @example
 * ```ts ignore
 * import { openSource } from "./source.ts";
 * const src = await openSource("models/tiny-llama");
 * console.log(src.description, src.tensors.length);
 * src.close();
 * ```
 */
export async function openSource(
  path: string,
  opts: OpenSourceOptions = {},
): Promise<ModelSource> {
  const st = await statOrNull(path);
  if (!st) throw new FormatError(path, "no such file or directory");
  if (st.isDirectory) {
    if (await statOrNull(join(path, "manifest.json"))) {
      throw new UsageError(
        `${path}: is already a Strata shard directory (manifest.json); it needs no split`,
      );
    }
    if (await statOrNull(join(path, PROGRESS_FILE))) {
      throw new FormatError(
        path,
        "an unfinished Strata split (no manifest.json yet): run the same split command again to finish it",
      );
    }
    if (!(await statOrNull(join(path, "config.json")))) {
      throw new FormatError(
        path,
        "not a Hugging Face checkpoint directory (no config.json)",
      );
    }
    const { openHfSource } = await import("./source_hf.ts");
    return await openHfSource(path);
  }
  const ext = extname(path).toLowerCase();
  if (ext === ".gguf") {
    const { openGgufSource } = await import("../format/gguf.ts");
    return await openGgufSource(path);
  }
  if (ext === ".bin") {
    let tokenizer = opts.tokenizer;
    if (tokenizer === undefined) {
      const guess = join(dirname(path), "tokenizer.bin");
      if (await statOrNull(guess)) tokenizer = guess;
    }
    if (tokenizer === undefined) {
      throw new UsageError(
        `${path}: a llama2.c checkpoint needs its tokenizer: pass --tokenizer tok.bin`,
      );
    }
    const { openLlama2cSource } = await import("../format/llama2c.ts");
    return await openLlama2cSource(path, { tokenizer });
  }
  if (ext === ".safetensors") {
    throw new UnsupportedError(
      path,
      `a bare .safetensors file has no config.json; pass its directory (${
        dirname(path)
      })`,
    );
  }
  throw new UnsupportedError(
    path,
    `unknown model file type '${
      basename(path)
    }' (expected a Hugging Face directory, a .gguf file or a llama2.c .bin)`,
  );
}
