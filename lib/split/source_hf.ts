/**
 * The Hugging Face checkpoint source: a directory with `config.json` and
 * either `model.safetensors` or `model.safetensors.index.json` naming shard
 * files. Tensors must be F32, F16 or BF16.
 *
 * @module
 */
import { FormatError, UnsupportedError } from "../errors.ts";
import { SafetensorsFile } from "../format/safetensors.ts";
import type { ModelSource, SourceTensor } from "./source.ts";
import { basename, join, normalize, resolve } from "node:path";
import { exists } from "../_fs.ts";
import { chatglmTextFiles } from "../text/convert_glm.ts";

/**
 * Extra text files copied from a Hugging Face directory when present.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HF_TEXT_FILES } from "./source_hf.ts";
 * assert.deepStrictEqual(HF_TEXT_FILES.includes("tokenizer.json"), true);
 * ```
 */
export const HF_TEXT_FILES: readonly string[] = [
  "config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "generation_config.json",
  "chat_template.jinja",
];

const FLOAT_DTYPES = new Set(["F32", "F16", "BF16"]);

/**
 * A whole text file; a FormatError naming it when it is missing, not a
 * regular file (a directory, a FIFO) or unreadable.
 */
async function readText(path: string): Promise<string> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new FormatError(
        path,
        (await isBrokenLink(path))
          ? "is a broken symbolic link (an incomplete download?)"
          : "no such file",
      );
    }
    throw new FormatError(path, `cannot read: ${(e as Error).message}`);
  }
  if (!st.isFile) throw new FormatError(path, "not a regular file");
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    throw new FormatError(path, `cannot read: ${(e as Error).message}`);
  }
}

async function isBrokenLink(path: string): Promise<boolean> {
  try {
    return (await Deno.lstat(path)).isSymlink;
  } catch {
    return false;
  }
}

async function readJson(path: string): Promise<unknown> {
  const text = await readText(path);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError(path, `invalid JSON: ${(e as Error).message}`);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Opens a Hugging Face checkpoint directory.
 *
 * @throws {FormatError} for a missing or malformed config.json, index or
 * safetensors file (including a shard named in the index that is absent).
 * @throws {UnsupportedError} for tensor dtypes other than F32/F16/BF16.
 * @example
 * ```ts ignore
 * import { openHfSource } from "./source_hf.ts";
 * const src = await openHfSource("models/tiny-llama");
 * console.log(src.tensors.map((t) => t.name));
 * src.close();
 * ```
 */
export async function openHfSource(dir: string): Promise<ModelSource> {
  const configPath = join(dir, "config.json");
  const config = await readJson(configPath);
  if (!isRecord(config)) {
    throw new FormatError(configPath, "config.json is not a JSON object");
  }
  const files: Record<string, string> = {};
  for (const name of HF_TEXT_FILES) {
    const p = join(dir, name);
    if (await exists(p) || await isBrokenLink(p)) {
      const text = await readText(p);
      if (name !== "config.json" && name.endsWith(".json")) {
        try {
          JSON.parse(text);
        } catch (e) {
          throw new FormatError(p, `invalid JSON: ${(e as Error).message}`);
        }
      }
      files[name] = text;
    }
  }

  // ChatGLM2/3 and GLM-4-9B-chat ship tokenizer.model (SentencePiece or
  // tiktoken) for remote code: converted to tokenizer.json here
  const tokModel = join(dir, "tokenizer.model");
  if (
    config.model_type === "chatglm" && files["tokenizer.json"] === undefined &&
    await exists(tokModel)
  ) {
    const bytes = await Deno.readFile(tokModel);
    Object.assign(
      files,
      chatglmTextFiles(files, { bytes, file: tokModel, config }),
    );
  }

  const indexPath = join(dir, "model.safetensors.index.json");
  const singlePath = join(dir, "model.safetensors");
  const opened: SafetensorsFile[] = [];
  const sourceFiles: string[] = [];
  const tensors: SourceTensor[] = [];
  const closeAll = () => opened.forEach((f) => f.close());
  try {
    // weight_map: tensor name -> shard file, or null for a single file.
    let weightMap: Map<string, string> | null = null;
    let shardNames: string[];
    if (await exists(indexPath)) {
      const index = await readJson(indexPath);
      if (!isRecord(index) || !isRecord(index.weight_map)) {
        throw new FormatError(indexPath, "no weight_map object");
      }
      weightMap = new Map();
      const seen = new Set<string>();
      for (const [name, file] of Object.entries(index.weight_map)) {
        if (typeof file !== "string" || file === "") {
          throw new FormatError(
            indexPath,
            `weight_map[${JSON.stringify(name)}] is not a file name`,
          );
        }
        const norm = normalize(file);
        if (norm.startsWith("..") || norm.startsWith("/") || norm !== file) {
          throw new FormatError(
            indexPath,
            `weight_map names a file outside the directory: ${
              JSON.stringify(file)
            }`,
          );
        }
        weightMap.set(name, file);
        seen.add(file);
      }
      if (weightMap.size === 0) {
        throw new FormatError(indexPath, "weight_map is empty");
      }
      shardNames = [...seen].sort();
      for (const s of shardNames) {
        if (!(await exists(join(dir, s)))) {
          throw new FormatError(
            indexPath,
            `shard ${s} named in the index is missing`,
          );
        }
      }
      sourceFiles.push(resolve(indexPath));
    } else if (await exists(singlePath)) {
      shardNames = ["model.safetensors"];
    } else {
      for (const p of [indexPath, singlePath]) {
        if (await isBrokenLink(p)) {
          throw new FormatError(
            p,
            "is a broken symbolic link (an incomplete download?)",
          );
        }
      }
      const torch = await exists(join(dir, "pytorch_model.bin")) ||
        await exists(join(dir, "pytorch_model.bin.index.json"));
      throw new FormatError(
        dir,
        "no model.safetensors or model.safetensors.index.json" +
          (torch
            ? " (PyTorch .bin weights are not supported: convert them to safetensors)"
            : ""),
      );
    }

    const seenNames = new Set<string>();
    for (const s of shardNames) {
      const path = join(dir, s);
      const f = await SafetensorsFile.open(path);
      opened.push(f);
      sourceFiles.push(resolve(path));
      for (const info of f.tensors.values()) {
        if (weightMap) {
          const want = weightMap.get(info.name);
          // Tensors the index does not map to this file are ignored, as
          // transformers does.
          if (want !== s) continue;
        }
        if (seenNames.has(info.name)) {
          throw new FormatError(path, `tensor ${info.name} appears twice`);
        }
        seenNames.add(info.name);
        if (!FLOAT_DTYPES.has(info.dtype)) {
          throw new UnsupportedError(
            path,
            `tensor ${info.name} has dtype ${info.dtype}; only F32, F16 and BF16 are supported`,
          );
        }
        const file = f;
        const name = info.name;
        tensors.push({
          name,
          dtype: info.dtype as "F32" | "F16" | "BF16",
          shape: info.shape.slice(),
          byteLength: info.byteLength,
          file: path,
          fileRange: { path, offset: info.offset },
          read: async () => ({
            dtype: info.dtype as "F32" | "F16" | "BF16",
            bytes: await file.read(name),
          }),
          readRange: (start, into) => {
            if (start < 0 || start + into.length > info.byteLength) {
              return Promise.reject(
                new FormatError(
                  path,
                  `read of ${into.length} bytes at ${start} is outside tensor ${name} (${info.byteLength} bytes)`,
                ),
              );
            }
            return file.readRange(info.offset + start, into);
          },
        });
      }
    }
    if (weightMap) {
      for (const [name, file] of weightMap) {
        if (!seenNames.has(name)) {
          throw new FormatError(
            join(dir, file),
            `tensor ${name} named in ${basename(indexPath)} is not in the file`,
          );
        }
      }
    }
    const dtypes = [...new Set(tensors.map((t) => t.dtype))].join("/");
    const description = `Hugging Face checkpoint (${
      weightMap
        ? `${shardNames.length} safetensors shards`
        : "model.safetensors"
    }, ${dtypes}, ${tensors.length} tensors)`;
    return {
      kind: "hf",
      path: resolve(dir),
      description,
      config,
      files,
      tensors,
      sourceFiles,
      close: closeAll,
    };
  } catch (e) {
    closeAll();
    throw e;
  }
}
