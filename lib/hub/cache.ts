/**
 * The standard Hugging Face cache layout (shared with `huggingface_hub`,
 * `transformers`, llama.cpp, ...):
 *
 * ```
 * <cache>/models--<org>--<name>/
 *   blobs/<etag>                  file contents (etag = sha256 for LFS files, git sha1 otherwise)
 *   blobs/<etag>.incomplete       a download in progress (resumed with HTTP Range)
 *   refs/<revision>               the commit hash the revision pointed to
 *   snapshots/<commit>/<file>     relative symlinks to ../../blobs/<etag>
 * ```
 *
 * @module
 */
import { dirname, isAbsolute, join, relative } from "node:path";
import { FormatError } from "../errors.ts";
import { exists } from "../_fs.ts";

/**
 * The cache directory: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
 * `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
 *
 * @example
 * ```ts ignore
 * import { hubCacheDir } from "./cache.ts";
 * console.log(hubCacheDir()); // "/home/me/.cache/huggingface/hub"
 * ```
 */
export function hubCacheDir(): string {
  const env = (k: string) => {
    const v = Deno.env.get(k);
    return v === undefined || v === "" ? undefined : v;
  };
  const direct = env("HF_HUB_CACHE") ?? env("HUGGINGFACE_HUB_CACHE");
  if (direct) return direct;
  const home = env("HF_HOME");
  if (home) return join(home, "hub");
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return join(xdg, "huggingface", "hub");
  const user = env("HOME") ?? env("USERPROFILE") ?? ".";
  return join(user, ".cache", "huggingface", "hub");
}

/**
 * The folder of a model repo in the cache: `models--org--name`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { repoFolderName } from "./cache.ts";
 * assert.deepStrictEqual(repoFolderName("Qwen/Qwen3-0.6B"), "models--Qwen--Qwen3-0.6B");
 * ```
 */
export function repoFolderName(repoId: string): string {
  return `models--${repoId.split("/").join("--")}`;
}

/**
 * Checks that a file name from the hub stays inside the snapshot folder:
 * relative, `/`-separated, no `..` / `.` / empty segments, no backslash, no
 * drive letter, no control characters. Throws {@linkcode FormatError}.
 *
 * @example
 * ```ts
 * import { checkRepoFileName } from "./cache.ts";
 * checkRepoFileName("org/name", "model.safetensors"); // ok
 * try { checkRepoFileName("org/name", "../evil"); } catch (e) { console.log((e as Error).message); }
 * ```
 */
export function checkRepoFileName(repoId: string, name: string): void {
  const bad = (why: string) =>
    new FormatError(
      repoId,
      `refusing file name ${JSON.stringify(name)} from the hub: ${why}`,
    );
  if (name.length === 0) throw bad("it is empty");
  if (name.includes("\\")) throw bad("it contains a backslash");
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    throw bad("it contains control characters");
  }
  if (name.startsWith("/") || isAbsolute(name) || /^[A-Za-z]:/.test(name)) {
    throw bad("it is an absolute path");
  }
  for (const seg of name.split("/")) {
    if (seg === "..") throw bad("it escapes the cache directory (..)");
    if (seg === "" || seg === ".") {
      throw bad("it has an empty or '.' path segment");
    }
  }
}

/**
 * Turns an HTTP ETag into a blob name: drops `W/` and the quotes. Returns
 * null when what is left is not a plain hex/alphanumeric id.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalizeEtag } from "./cache.ts";
 * assert.deepStrictEqual(normalizeEtag('W/"abc123"'), "abc123");
 * ```
 */
export function normalizeEtag(etag: string | null | undefined): string | null {
  if (!etag) return null;
  const e = etag.trim().replace(/^W\//, "").replace(/^"|"$/g, "");
  return /^[A-Za-z0-9_-]{1,128}$/.test(e) ? e : null;
}

/** Paths of one repo in the cache. */
export interface RepoCachePaths {
  /** `<cache>/models--org--name`. */
  root: string;
  /** `<root>/blobs`. */
  blobs: string;
  /** `<root>/refs`. */
  refs: string;
  /** `<root>/snapshots`. */
  snapshots: string;
}

/**
 * The folders of `repoId` under `cacheDir`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { repoCachePaths } from "./cache.ts";
 * assert.deepStrictEqual(repoCachePaths("/c", "a/b").blobs, "/c/models--a--b/blobs");
 * ```
 */
export function repoCachePaths(
  cacheDir: string,
  repoId: string,
): RepoCachePaths {
  const root = join(cacheDir, repoFolderName(repoId));
  return {
    root,
    blobs: join(root, "blobs"),
    refs: join(root, "refs"),
    snapshots: join(root, "snapshots"),
  };
}

/**
 * The relative symlink target from `snapshots/<commit>/<file>` to its blob.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { blobLinkTarget } from "./cache.ts";
 * assert.deepStrictEqual(blobLinkTarget("sub/x.json", "abc"), "../../../blobs/abc");
 * ```
 */
export function blobLinkTarget(file: string, etag: string): string {
  // snapshots/<commit>/<file> → <root>; relative() works on any base.
  const from = dirname(join("/r/snapshots/c", file));
  return relative(from, join("/r/blobs", etag));
}

const COMMIT = /^[0-9a-f]{40}$/;

/**
 * Whether `s` is a full commit hash.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isCommitHash } from "./cache.ts";
 * assert.deepStrictEqual(isCommitHash("main"), false);
 * ```
 */
export function isCommitHash(s: string): boolean {
  return COMMIT.test(s);
}

/**
 * The snapshot folder for `revision` if the cache holds a complete one:
 * `config.json` present, and every weight file of
 * `model.safetensors.index.json` present (or, without an index, at least one
 * `*.safetensors`), with every link resolving. Returns null otherwise.
 *
 * @example
 * ```ts ignore
 * import { cachedSnapshot } from "./cache.ts";
 * const dir = await cachedSnapshot("/home/me/.cache/huggingface/hub", "org/name", "main");
 * ```
 */
export async function cachedSnapshot(
  cacheDir: string,
  repoId: string,
  revision: string,
): Promise<string | null> {
  const p = repoCachePaths(cacheDir, repoId);
  let commit = revision;
  if (!isCommitHash(revision)) {
    try {
      commit = (await Deno.readTextFile(join(p.refs, revision))).trim();
    } catch {
      return null;
    }
    if (!isCommitHash(commit)) return null;
  }
  const dir = join(p.snapshots, commit);
  if (!(await exists(join(dir, "config.json")))) return null;
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) names.push(e.name);
  } catch {
    return null;
  }
  for (const n of names) if (!(await exists(join(dir, n)))) return null;
  if (names.includes("model.safetensors.index.json")) {
    let map: Record<string, string>;
    try {
      const idx = JSON.parse(
        await Deno.readTextFile(join(dir, "model.safetensors.index.json")),
      );
      map = idx.weight_map ?? {};
    } catch {
      return null;
    }
    for (const f of new Set(Object.values(map))) {
      if (typeof f !== "string" || !(await exists(join(dir, f)))) return null;
    }
    return dir;
  }
  return names.some((n) => n.endsWith(".safetensors")) ? dir : null;
}
