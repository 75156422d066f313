/**
 * Routing a path to its model source: a Hugging Face directory, a `.gguf` file
 * or a llama2.c `.bin` checkpoint.
 *
 * @module
 */

import { FormatError, UnsupportedError, UsageError } from "../errors.ts";
import { basename, dirname, extname, join } from "node:path";
import { type ModelSource, PROGRESS_FILE } from "./source.ts";

/**
 * Options of {@link openSource}.
 *
 * @example
 * ```ts ignore
 * import { openSource } from "./open_source.ts";
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
 * import { openSource } from "./open_source.ts";
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
    const { openGgufSource } = await import("./source_gguf.ts");
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
    const { openLlama2cSource } = await import("./source_llama2c.ts");
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
