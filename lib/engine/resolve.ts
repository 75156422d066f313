/**
 * Model resolution: a path or Hugging Face repo id → a shard directory.
 *
 * - a shard directory (manifest.json) is used as is;
 * - a Hugging Face checkpoint directory, a `.gguf` file or a llama2.c `.bin`
 *   (+ tokenizer) is split on first use into a cache directory
 *   (`layerShardsSavingPath`, else `$STRATA_CACHE/<name>-<hash>-<quant>`,
 *   else `~/.cache/strata/<name>-<hash>-<quant>`) and reused afterwards (a
 *   finished split has its manifest.json, written last);
 * - `org/name[@revision]` is downloaded into the Hugging Face cache first.
 *
 * @module
 */
import { parseQuantization, type Quantization } from "../quant/encoding.ts";
import { basename, dirname, join, resolve } from "node:path";
import { createHash } from "node:crypto";
import { FormatError, UsageError } from "../errors.ts";
import { ShardDir } from "../format/shards.ts";
import { downloadSnapshot } from "../hub/download.ts";
import { parseRepoId } from "../hub/repo_id.ts";
import { openSource } from "../split/open_source.ts";
import { splitModel } from "../split/split.ts";
import { PROGRESS_FILE } from "../split/source.ts";
import { exists } from "../_fs.ts";

/** Options of {@link resolveModel}. */
export interface ResolveOptions {
  /** Split-time quantization (default "none"). */
  quantize?: Quantization;
  /** Where to write the shards (overrides the cache directory). */
  layerShardsSavingPath?: string;
  /** llama2.c tokenizer file for `.bin` checkpoints. */
  tokenizer?: string;
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
}

function homeDir(): string {
  return Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE") ?? ".";
}

/**
 * The root of Strata's cache: `$STRATA_CACHE`, else `~/.cache/strata`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cacheRoot } from "./resolve.ts";
 * assert.ok(cacheRoot().length > 0);
 * ```
 */
export function cacheRoot(): string {
  return Deno.env.get("STRATA_CACHE") ?? join(homeDir(), ".cache", "strata");
}

/**
 * The cache directory for a split of `source` with `quantize`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cacheDirFor } from "./resolve.ts";
 * const dir = cacheDirFor("/models/llama", "none"); // ~/.cache/strata/llama-1a2b3c4d-none
 * assert.match(dir, /llama-[0-9a-f]{8}-none$/);
 * // with a fingerprint of the source files, a changed source gets a new directory:
 * assert.notEqual(cacheDirFor("/models/llama", "none", "1234:1700000000000"), dir);
 * ```
 */
export function cacheDirFor(
  source: string,
  quantize: string,
  fingerprint = "",
): string {
  const root = cacheRoot();
  const abs = resolve(source);
  const hash = createHash("sha256").update(abs).update("\0").update(
    fingerprint,
  ).digest("hex").slice(0, 8);
  return join(root, `${cacheName(abs)}-${hash}-${quantize}`);
}

/** Creates the cache root, naming STRATA_CACHE (or its default) on failure. */
async function makeCacheRoot(out: string): Promise<void> {
  const root = dirname(out);
  try {
    await Deno.mkdir(root, { recursive: true });
  } catch (e) {
    const env = Deno.env.get("STRATA_CACHE");
    throw new UsageError(
      `cannot create the split cache ${root} (${
        env ? `STRATA_CACHE=${env}` : "the default; STRATA_CACHE is unset"
      }): ${(e as Error).message}; set STRATA_CACHE to a writable directory`,
    );
  }
}

/**
 * The readable part of a cache directory's name: the file or directory name,
 * or for a Hugging Face snapshot (`…/models--org--name/snapshots/<commit>`)
 * the repo and the commit's first 8 digits (`org--name-0123abcd`).
 */
function cacheName(abs: string): string {
  const hub = /models--([^/\\]+)[/\\]snapshots[/\\]([0-9a-f]{8})[0-9a-f]*\/?$/
    .exec(abs);
  const name = hub
    ? `${hub[1]}-${hub[2]}`
    : basename(abs).replace(/\.(gguf|bin)$/, "");
  return name.replace(/[^A-Za-z0-9._-]/g, "_");
}

/**
 * Size and modification time of every file a split reads (the checkpoint,
 * or the top-level files of a checkpoint directory, and the tokenizer), so
 * that a source replaced at the same path, or another `--tokenizer`, gets a
 * fresh cache directory instead of a stale split.
 */
async function sourceFingerprint(
  source: string,
  tokenizer: string | undefined,
): Promise<string> {
  const paths: string[] = [];
  const st = await Deno.stat(source);
  if (st.isDirectory) {
    for await (const e of Deno.readDir(source)) {
      if (e.isFile || e.isSymlink) paths.push(join(source, e.name));
    }
    paths.sort();
  } else paths.push(source);
  if (tokenizer !== undefined) paths.push(resolve(tokenizer));
  const parts: string[] = [];
  for (const p of paths) {
    try {
      const s = await Deno.stat(p);
      parts.push(`${basename(p)}:${s.size}:${s.mtime?.getTime() ?? 0}`);
    } catch {
      parts.push(`${basename(p)}:missing`);
    }
  }
  return parts.join("|");
}

/**
 * Resolves `pathOrId` to a shard directory, splitting (and downloading)
 * on first use.
 *
 * @throws {FormatError} when the path does not exist and is not a repo id.
 * @example
 * ```ts ignore
 * import { resolveModel } from "./resolve.ts";
 * const dir = await resolveModel("models/tiny-llama", { quantize: "none" });
 * ```
 */
export async function resolveModel(
  pathOrId: string,
  opts: ResolveOptions = {},
): Promise<string> {
  const quantize = parseQuantization(opts.quantize);
  if (await ShardDir.isShardDir(pathOrId)) {
    if (opts.quantize && opts.quantize !== "none") {
      const sd = await ShardDir.open(pathOrId);
      if (sd.manifest.quantization !== opts.quantize) {
        opts.log?.(
          `note: ${pathOrId} is a shard directory split with quantization ${sd.manifest.quantization}; --quantize ${opts.quantize} is ignored`,
        );
      }
    }
    return pathOrId;
  }
  let source = pathOrId;
  if (!(await exists(pathOrId))) {
    if (parseRepoId(pathOrId) === null || pathOrId.startsWith(".")) {
      throw new FormatError(
        pathOrId,
        "no such file or directory (and not a Hugging Face repo id org/name)",
      );
    }
    opts.log?.(
      `fetching ${pathOrId} from the Hugging Face Hub (or its cache) …`,
    );
    source = await downloadSnapshot(pathOrId);
  }
  const out = opts.layerShardsSavingPath ??
    cacheDirFor(
      source,
      quantize,
      await sourceFingerprint(source, opts.tokenizer),
    );
  if (await ShardDir.isShardDir(out)) return out;
  if (opts.layerShardsSavingPath === undefined) await makeCacheRoot(out);
  opts.log?.(
    (await exists(join(out, PROGRESS_FILE)))
      ? `resuming the unfinished split of ${source} in ${out} (quantize ${quantize}) …`
      : `splitting ${source} into ${out} (quantize ${quantize}) …`,
  );
  const src = await openSource(source, { tokenizer: opts.tokenizer });
  try {
    await splitModel(src, { out, quantize });
  } finally {
    src.close();
  }
  return out;
}
