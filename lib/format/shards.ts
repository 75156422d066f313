/**
 * The shard directory written by `split` and read by the engine: its
 * manifest, file names and verification. The byte-level description is in
 * docs/format.md.
 *
 * @module
 */
import {
  encoding,
  isPacked,
  type PackedName,
  type Quantization,
  quantizationChoices,
} from "../quant/encoding.ts";
import { FormatError, UnsupportedError } from "../errors.ts";
import { type ModelConfig, validateModelConfig } from "../model/config.ts";
import {
  expertLayout,
  type ExpertLayoutRecord,
} from "../model/expert_layout.ts";
import { isAbsolute, join, normalize } from "node:path";
import {
  checkIntegrity,
  checksumName,
  matchesChecksum,
  recordVerified,
} from "./_integrity.ts";

/**
 * The manifest's file name inside a shard directory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MANIFEST_FILE } from "./shards.ts";
 * assert.deepStrictEqual(MANIFEST_FILE, "manifest.json");
 * ```
 */
export const MANIFEST_FILE = "manifest.json";
/**
 * The value of `manifest.format`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SHARD_FORMAT } from "./shards.ts";
 * assert.deepStrictEqual(SHARD_FORMAT, "strata-shards");
 * ```
 */
export const SHARD_FORMAT = "strata-shards";
/**
 * The manifest version this code writes: 2, whose files carry a CRC-32. It
 * also reads version 1 (older splits, whose files carry a SHA-256; the shard
 * files themselves are the same).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SHARD_VERSION } from "./shards.ts";
 * assert.deepStrictEqual(SHARD_VERSION, 2);
 * ```
 */
export const SHARD_VERSION = 2;
/** Every manifest version this code reads. */
const READABLE_VERSIONS: readonly unknown[] = [1, SHARD_VERSION];
/**
 * File name of the embedding shard.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EMBED_FILE } from "./shards.ts";
 * assert.deepStrictEqual(EMBED_FILE, "embed.safetensors");
 * ```
 */
export const EMBED_FILE = "embed.safetensors";
/**
 * File name of the head shard (final norm and lm_head).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HEAD_FILE } from "./shards.ts";
 * assert.deepStrictEqual(HEAD_FILE, "head.safetensors");
 * ```
 */
export const HEAD_FILE = "head.safetensors";

export type { Quantization };

/**
 * Layout of one quantized tensor (also in the file's `__metadata__`).
 *
 * @example
 * ```ts
 * import type { QuantLayout } from "./shards.ts";
 * import assert from "node:assert/strict";
 * import { EMBEDDING_PACKING } from "../quant/encoding.ts";
 * const l: QuantLayout = { type: EMBEDDING_PACKING, shape: [64, 48], block: 32 };
 * assert.equal(Math.ceil(l.shape[1] / l.block), 2); // 2 blocks per row
 * ```
 */
export interface QuantLayout {
  /** Packing (see docs/format.md). */
  type: PackedName;
  /** Logical [rows, cols] before packing. */
  shape: [number, number];
  /** Elements per block along a row (the encoding's blockElems: 32, or 256 for the K-quants). */
  block: number;
}

/**
 * One file of the shard directory, with exactly one checksum of its bytes:
 * `crc32` (what split writes) or `sha256` (manifests of older splits).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ManifestFile } from "./shards.ts";
 * const f: ManifestFile = { path: "layers/000.safetensors", size: 1024, crc32: "0a1b2c3d" };
 * assert.equal(f.sha256, undefined);
 * ```
 */
export interface ManifestFile {
  /** Path relative to the shard directory, `/`-separated. */
  path: string;
  /** Size in bytes. */
  size: number;
  /**
   * CRC-32 of the file's bytes (IEEE polynomial, as zip and gzip), 8
   * lower-case hex digits. Guards against accidental corruption (torn,
   * truncated or altered files), not against tampering.
   */
  crc32?: string;
  /** Lower-case hex SHA-256 of the file's bytes (older splits). */
  sha256?: string;
}

/**
 * The contents of `manifest.json`.
 *
 * @example
 * ```ts ignore
 * import { ShardDir } from "./shards.ts";
 * const { manifest } = await ShardDir.open("shards/tiny");
 * console.log(manifest.quantization, manifest.layers.length, manifest.files.length);
 * ```
 */
export interface Manifest {
  /** Always `"strata-shards"`. */
  format: typeof SHARD_FORMAT;
  /** Format version: 2 (1: an older split; its files carry a SHA-256). */
  version: number;
  /** Where the shards came from. */
  source: { kind: string; path: string; description: string };
  /** The normalized model configuration. */
  config: ModelConfig;
  /** The `--quantize` the split ran with. */
  quantization: Quantization;
  /** Every quantized tensor by name (empty when none). */
  quant: Record<string, QuantLayout>;
  /** The embedding shard (`embed.safetensors`). */
  embed: string;
  /** The head shard (`head.safetensors`). */
  head: string;
  /** One shard per decoder layer, in order (`layers/000.safetensors`, ...). */
  layers: string[];
  /** Every file but the manifest itself, with size and checksum. */
  files: ManifestFile[];
  /**
   * SHA-256 over the split plan (source tensors and options); a re-run with
   * the same plan resumes, a different plan is refused.
   */
  plan: string;
  /**
   * Mixture-of-experts models: how the routed experts are stored (one tensor
   * per expert and role; lib/model/expert_layout.ts). Absent for dense models.
   */
  experts?: ExpertLayoutRecord;
}

/**
 * The relative path of decoder layer `i`'s shard: `layers/000.safetensors`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layerFile } from "./shards.ts";
 * assert.deepStrictEqual(layerFile(7), "layers/007.safetensors");
 * ```
 */
export function layerFile(i: number): string {
  return `layers/${String(i).padStart(3, "0")}.safetensors`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function safeRel(file: string, p: unknown, what: string): string {
  if (typeof p !== "string" || p === "") {
    throw new FormatError(file, `${what} is not a path`);
  }
  const n = normalize(p);
  if (isAbsolute(p) || n.startsWith("..") || n !== p || p.includes("\\")) {
    throw new FormatError(
      file,
      `${what} ${JSON.stringify(p)} is not a plain relative path`,
    );
  }
  return p;
}

/**
 * Checks a parsed manifest's structure and returns it typed.
 *
 * @throws {FormatError} naming `file` when a field is missing or wrong.
 * @example
 * ```ts ignore
 * import { parseManifest } from "./shards.ts";
 * const m = parseManifest(JSON.parse(await Deno.readTextFile("s/manifest.json")), "s/manifest.json");
 * console.log(m.layers.length);
 * ```
 */
export function parseManifest(v: unknown, file: string): Manifest {
  if (!isRecord(v)) throw new FormatError(file, "not a JSON object");
  if (v.format !== SHARD_FORMAT) {
    throw new FormatError(file, `format is not "${SHARD_FORMAT}"`);
  }
  if (!READABLE_VERSIONS.includes(v.version)) {
    throw new UnsupportedError(
      file,
      `shard format version ${JSON.stringify(v.version)} (this Strata reads ${
        READABLE_VERSIONS.join(" and ")
      }); split again`,
    );
  }
  const src = v.source;
  if (
    !isRecord(src) || typeof src.kind !== "string" ||
    typeof src.path !== "string" || typeof src.description !== "string"
  ) {
    throw new FormatError(file, "source must be {kind, path, description}");
  }
  // The same rules as config.json: a manifest edited by hand (or corrupted)
  // must not reach the planner with hiddenSize 2^31 or vocabSize -5.
  const c = validateModelConfig(v.config, file);
  if (v.quantization !== "none" && !isPacked(v.quantization)) {
    throw new FormatError(
      file,
      `quantization must be ${quantizationChoices(", ", " or ")}`,
    );
  }
  const quant: Record<string, QuantLayout> = {};
  if (v.quant !== undefined) {
    if (!isRecord(v.quant)) {
      throw new FormatError(file, "quant is not an object");
    }
    for (const [name, q] of Object.entries(v.quant)) {
      if (
        !isRecord(q) || !isPacked(q.type) ||
        !Array.isArray(q.shape) || q.shape.length !== 2 ||
        !q.shape.every((d) => Number.isInteger(d) && d >= 0) ||
        q.block !== encoding(q.type).blockElems
      ) {
        throw new FormatError(
          file,
          `quant[${JSON.stringify(name)}] is malformed`,
        );
      }
      quant[name] = {
        type: q.type as PackedName,
        shape: [q.shape[0], q.shape[1]],
        block: q.block as number,
      };
    }
  }
  const layers = v.layers;
  if (!Array.isArray(layers) || layers.length !== c.numLayers) {
    throw new FormatError(
      file,
      `layers must list one file per decoder layer (${c.numLayers})`,
    );
  }
  layers.forEach((p, i) => safeRel(file, p, `layers[${i}]`));
  const embed = safeRel(file, v.embed, "embed");
  const head = safeRel(file, v.head, "head");
  if (!Array.isArray(v.files)) {
    throw new FormatError(file, "files is not a list");
  }
  const files: ManifestFile[] = v.files.map((f, i) => {
    // Exactly one checksum: crc32, or sha256 (older splits).
    const crc = isRecord(f) && typeof f.crc32 === "string" &&
      /^[0-9a-f]{8}$/.test(f.crc32) && f.sha256 === undefined;
    const sha = isRecord(f) && typeof f.sha256 === "string" &&
      /^[0-9a-f]{64}$/.test(f.sha256) && f.crc32 === undefined;
    if (
      !isRecord(f) || !Number.isSafeInteger(f.size) || (f.size as number) < 0 ||
      !(crc || sha)
    ) {
      throw new FormatError(
        file,
        `files[${i}] must be {path, size, crc32} with crc32 8 lower-case hex digits (from an older split: sha256 with 64)`,
      );
    }
    const path = safeRel(file, f.path, `files[${i}].path`);
    const size = f.size as number;
    return crc
      ? { path, size, crc32: f.crc32 as string }
      : { path, size, sha256: f.sha256 as string };
  });
  const listed = new Set(files.map((f) => f.path));
  for (const p of [embed, head, ...layers as string[]]) {
    if (!listed.has(p)) throw new FormatError(file, `${p} is not in files`);
  }
  return {
    format: SHARD_FORMAT,
    version: v.version as number,
    source: {
      kind: src.kind,
      path: src.path,
      description: src.description,
    },
    config: c,
    quantization: v.quantization as Quantization,
    quant,
    embed,
    head,
    layers: layers as string[],
    files,
    plan: typeof v.plan === "string" ? v.plan : "",
    ...parseExperts(v.experts, c, file),
  };
}

/** The `experts` record: absent, or exactly what the config implies. */
function parseExperts(
  v: unknown,
  c: ModelConfig,
  file: string,
): { experts?: ExpertLayoutRecord } {
  const want = expertLayout(c);
  if (v === undefined && !want) return {};
  if (JSON.stringify(v) !== JSON.stringify(want)) {
    throw new FormatError(
      file,
      want
        ? `experts must be ${JSON.stringify(want)}`
        : "experts is set but the config has no experts",
    );
  }
  return { experts: want };
}

/**
 * An opened shard directory.
 *
 * @example
 * ```ts ignore
 * import { ShardDir } from "./shards.ts";
 * const s = await ShardDir.open("shards/tiny");
 * console.log(s.config.numLayers, s.layerPath(0));
 * await s.verify();
 * ```
 */
export class ShardDir {
  /** The directory. */
  readonly dir: string;
  /** The parsed manifest.json. */
  readonly manifest: Manifest;

  private constructor(dir: string, manifest: Manifest) {
    this.dir = dir;
    this.manifest = manifest;
  }

  /**
   * Whether `dir` holds a manifest.json (does not validate it).
   *
   * @example
   * ```ts ignore
   * import { ShardDir } from "./shards.ts";
   * console.log(await ShardDir.isShardDir("shards/tiny"));
   * ```
   */
  static async isShardDir(dir: string): Promise<boolean> {
    try {
      return (await Deno.stat(join(dir, MANIFEST_FILE))).isFile;
    } catch {
      return false;
    }
  }

  /**
   * Reads and checks `dir/manifest.json` (not the shard files: see
   * {@link ShardDir.verify}).
   *
   * @throws {FormatError} when the manifest is missing or malformed.
   * @example
   * ```ts ignore
   * import { ShardDir } from "./shards.ts";
   * const s = await ShardDir.open("shards/tiny");
   * console.log(s.manifest.quantization);
   * ```
   */
  static async open(dir: string): Promise<ShardDir> {
    const file = join(dir, MANIFEST_FILE);
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new FormatError(file, "no such file (not a shard directory)");
      }
      throw new FormatError(file, `cannot read: ${(e as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new FormatError(file, `invalid JSON: ${(e as Error).message}`);
    }
    return new ShardDir(dir, parseManifest(json, file));
  }

  /** The normalized model config from the manifest. */
  get config(): ModelConfig {
    return this.manifest.config;
  }

  /** Absolute-or-relative path (joined to `dir`) of layer `i`'s shard. */
  layerPath(i: number): string {
    const p = this.manifest.layers[i];
    if (p === undefined) {
      throw new FormatError(
        join(this.dir, MANIFEST_FILE),
        `no layer ${i} (the model has ${this.manifest.layers.length})`,
      );
    }
    return join(this.dir, p);
  }

  /** Path of the embedding shard. */
  embedPath(): string {
    return join(this.dir, this.manifest.embed);
  }

  /** Path of the head shard. */
  headPath(): string {
    return join(this.dir, this.manifest.head);
  }

  /** Path of any file of the directory, by its manifest-relative name. */
  path(rel: string): string {
    return join(this.dir, rel);
  }

  /**
   * Checks every file listed in the manifest: present, the recorded size and
   * the recorded checksum (every byte is read: `info --verify`). Files that
   * pass are recorded as verified (see {@link ShardDir.checkIntegrity}).
   *
   * @throws {FormatError} naming the first file that differs.
   */
  async verify(): Promise<void> {
    for (const f of this.manifest.files) await verifyFile(this.dir, f);
    await recordVerified(this.dir, this.manifest.files);
  }

  /**
   * Checks every file before use: present, of the recorded size and, when it
   * changed since its checksum last matched (a sidecar record of size, times,
   * inode and checksum; see docs/format.md), of the recorded checksum. Cheap
   * on an unchanged directory: no file is read.
   *
   * @throws {FormatError} naming the file, suggesting to split again.
   * @example
   * ```ts ignore
   * import { ShardDir } from "./shards.ts";
   * const s = await ShardDir.open("shards/tiny");
   * await s.checkIntegrity({ log: console.error });
   * ```
   */
  async checkIntegrity(
    opts: { log?: (line: string) => void } = {},
  ): Promise<void> {
    const src = this.manifest.source.path;
    await checkIntegrity(this.dir, this.manifest.files, {
      log: opts.log,
      remedy:
        `delete ${this.dir} and split the model again (deno run -A cli.ts split ${
          src === "" ? "<source>" : src
        } --out ${this.dir})`,
    });
  }
}

/**
 * Checks one manifest entry against the file on disk.
 *
 * @throws {FormatError} naming the file when it is missing or differs.
 * @example
 * ```ts ignore
 * import { verifyFile } from "./shards.ts";
 * await verifyFile("shards", { path: "head.safetensors", size: 1024, crc32: "0a1b2c3d" });
 * ```
 */
export async function verifyFile(dir: string, f: ManifestFile): Promise<void> {
  const p = join(dir, f.path);
  let size: number;
  try {
    size = (await Deno.stat(p)).size;
  } catch {
    throw new FormatError(p, "missing (listed in manifest.json)");
  }
  if (size !== f.size) {
    throw new FormatError(
      p,
      `size ${size} bytes, manifest.json says ${f.size} (truncated or changed)`,
    );
  }
  if (!(await matchesChecksum(p, f))) {
    throw new FormatError(
      p,
      `${checksumName(f)} differs from manifest.json (corrupted)`,
    );
  }
}
