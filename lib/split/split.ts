/**
 * `splitModel`: turns a {@link ModelSource} into a shard directory (see
 * docs/format.md), tensor by tensor, atomically and resumably.
 *
 * - Peak memory is about one tensor (plus its quantized form).
 * - Every file is written as `<file>.partial`, fsynced, hashed, renamed;
 *   `manifest.json` is written last. A progress record
 *   (`.strata-split.json`) lists finished files; a re-run checks them (size
 *   and SHA-256) and skips them. Output is deterministic, so a resumed split
 *   equals an uninterrupted one byte for byte.
 * - Free disk space is checked before writing.
 * - `deleteOriginal` deletes the source files only after the whole shard
 *   directory has been verified against the manifest.
 *
 * Test hooks (environment): `STRATA_SPLIT_FAIL_AFTER=N` throws while writing
 * the file after the N-th finished one; `STRATA_SPLIT_KILL_AFTER=N` kills the
 * process with SIGKILL at the same point; `STRATA_SPLIT_FREE_BYTES=N`
 * pretends the disk has N bytes free; `STRATA_SPLIT_CHUNK_BYTES=N` sets the
 * size of the row chunks quantized at a time (default 16 MiB of f32).
 *
 * @module
 */
import {
  FormatError,
  StrataError,
  UnsupportedError,
  UsageError,
} from "../errors.ts";
import { SafetensorsWriter, type TensorDecl } from "../format/safetensors.ts";
import { recordVerified } from "../format/_integrity.ts";
import {
  EMBED_FILE,
  HEAD_FILE,
  layerFile,
  type Manifest,
  MANIFEST_FILE,
  type ManifestFile,
  type Quantization,
  type QuantLayout,
  SHARD_FORMAT,
  SHARD_VERSION,
  ShardDir,
  verifyFile,
} from "../format/shards.ts";
import { type ModelConfig, normalizeConfig } from "../model/config.ts";
import { globalTensors, layerTensors } from "../model/architectures.ts";
import { expertLayout } from "../model/expert_layout.ts";
import { toFloat32 } from "../quant/half.ts";
import {
  EMBEDDING_PACKING,
  encoding,
  isPacked,
  type PackedName,
  parseQuantization,
  storedShapes,
} from "../quant/encoding.ts";
import {
  type ModelSource,
  PROGRESS_FILE,
  type SourceTensor,
  type TensorData,
} from "./source.ts";
import { HF_TEXT_FILES } from "./source_hf.ts";
import { sliceOf } from "./_slice.ts";
import {
  checkOutDir,
  envInt,
  freeBytes,
  type Progress,
  readProgress,
  removeIfExists,
  removeStalePartials,
  syncDir,
  writeTextAtomic,
} from "./_out_dir.ts";
import { createHash } from "node:crypto";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { formatBytes } from "../_units.ts";
import { exists, hashFile } from "../_fs.ts";

/**
 * Progress of a split, reported after every tensor and skipped file.
 *
 * @example
 * ```ts
 * import type { SplitProgress } from "./split.ts";
 * const show = (p: SplitProgress) => console.log(`${p.bytesDone}/${p.bytesTotal} ${p.file}`);
 * show({ bytesDone: 1, bytesTotal: 2, file: "embed.safetensors", bytesSkipped: 0 });
 * ```
 */
export interface SplitProgress {
  /** Output bytes finished so far (including files skipped on resume). */
  bytesDone: number;
  /** Output bytes the split will have written in all (estimate ±1%). */
  bytesTotal: number;
  /** The output file being written, relative to the shard directory. */
  file: string;
  /** Of bytesDone, how many were already there from an earlier run. */
  bytesSkipped: number;
}

/**
 * Options of {@link splitModel}.
 *
 * @example
 * ```ts
 * import type { SplitOptions } from "./split.ts";
 * const o: SplitOptions = { out: "shards/tiny", quantize: "none", quantizeEmbedding: true };
 * console.log(o.quantize);
 * ```
 */
export interface SplitOptions {
  /** The shard directory to write (created if needed). */
  out: string;
  /** Quantize the 2-D projection weights (default "none"). */
  quantize?: Quantization;
  /** Also store the token embedding packed (as `EMBEDDING_PACKING`, lib/quant/encoding.ts). */
  quantizeEmbedding?: boolean;
  /** Delete the source files once every shard is written and verified. */
  deleteOriginal?: boolean;
  /** Called as the split advances. */
  onProgress?: (p: SplitProgress) => void;
}

type OutKind = "raw" | PackedName;

interface OutTensor {
  src: SourceTensor;
  kind: OutKind;
  decls: TensorDecl[];
  bytes: number;
}

interface OutFile {
  path: string;
  /** Text content (copied files), or tensors. */
  text?: string;
  tensors: OutTensor[];
  metadata?: Record<string, string>;
  estSize: number;
}

const PROJECTION_ROLES = new Set([
  "qProj",
  "kProj",
  "vProj",
  "oProj",
  "gateProj",
  "upProj",
  "downProj",
  "expertGate",
  "expertUp",
  "expertDown",
  "sharedGate",
  "sharedUp",
  "sharedDown",
]);

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function shapeStr(s: number[]): string {
  return `[${s.join(", ")}]`;
}

/** What a tensor becomes: its raw bytes, or a packed encoding's data + scales. */
function outTensor(src: SourceTensor, want: OutKind): OutTensor {
  let kind: OutKind = want;
  // Already-packed sources keep their packing unless asked for another.
  if (want === "raw" && isPacked(src.dtype)) kind = src.dtype;
  if (kind === "raw") {
    return {
      src,
      kind,
      decls: [{
        name: src.name,
        dtype: src.dtype as "F32" | "F16" | "BF16",
        shape: src.shape.slice(),
      }],
      bytes: src.byteLength,
    };
  }
  if (src.shape.length !== 2) {
    throw new FormatError(
      src.file ?? src.name,
      `tensor ${src.name} has shape ${
        shapeStr(src.shape)
      }; only 2-D weights can be quantized`,
    );
  }
  const [rows, cols] = src.shape;
  const shapes = storedShapes(encoding(kind), rows, cols);
  const decls: TensorDecl[] = [{ name: src.name, ...shapes.data }];
  if (shapes.scales) {
    decls.push({ name: `${src.name}.scales`, ...shapes.scales });
  }
  const [rb, sb] = encoding(kind).rowBytes(cols);
  return { src, kind, decls, bytes: rows * (rb + sb) };
}

function headerEstimate(
  decls: TensorDecl[],
  metadata?: Record<string, string>,
): number {
  const h: Record<string, unknown> = {};
  if (metadata) h.__metadata__ = metadata;
  for (const d of decls) {
    h[d.name] = {
      dtype: d.dtype,
      shape: d.shape,
      data_offsets: [1e12, 1e12],
    };
  }
  return 8 +
    Math.ceil(new TextEncoder().encode(JSON.stringify(h)).length / 8) * 8;
}

function tensorFile(path: string, tensors: OutTensor[]): OutFile {
  const quant: Record<string, QuantLayout> = {};
  for (const t of tensors) {
    if (t.kind !== "raw") {
      quant[t.src.name] = {
        type: t.kind,
        shape: [t.src.shape[0], t.src.shape[1]],
        block: encoding(t.kind).blockElems,
      };
    }
  }
  const metadata = Object.keys(quant).length
    ? { "strata.quant": JSON.stringify(quant) }
    : undefined;
  const decls = tensors.flatMap((t) => t.decls);
  const estSize = headerEstimate(decls, metadata) +
    tensors.reduce((a, t) => a + t.bytes, 0);
  return { path, tensors, metadata, estSize };
}

/** Routes and checks the source's tensors; returns the output files in write order. */
function plan(
  source: ModelSource,
  cfg: ModelConfig,
  quantize: Quantization,
  quantizeEmbedding: boolean,
): OutFile[] {
  const byName = new Map<string, SourceTensor>();
  for (const t of source.tensors) {
    if (byName.has(t.name)) {
      throw new FormatError(
        t.file ?? source.path,
        `tensor ${t.name} appears twice`,
      );
    }
    byName.set(t.name, t);
  }
  const used = new Set<string>();
  const take = (name: string, shape: number[]): SourceTensor => {
    const t = byName.get(name);
    if (!t) {
      throw new FormatError(
        source.path,
        `missing tensor ${name} (required by the ${cfg.architecture} config)`,
      );
    }
    if (!sameShape(t.shape, shape)) {
      throw new FormatError(
        t.file ?? source.path,
        `tensor ${name} has shape ${shapeStr(t.shape)}, the config implies ${
          shapeStr(shape)
        }`,
      );
    }
    used.add(name);
    return t;
  };
  const projKind: OutKind = quantize === "none" ? "raw" : quantize;

  const files: OutFile[] = [];
  for (const name of HF_TEXT_FILES) {
    let text = source.files[name];
    if (name === "config.json" && text === undefined) {
      text = JSON.stringify(source.config, null, 2) + "\n";
    }
    if (text === undefined) continue;
    files.push({
      path: name,
      text,
      tensors: [],
      estSize: new TextEncoder().encode(text).length,
    });
  }

  const globals = new Map(globalTensors(cfg).map((g) => [g.role, g]));
  const emb = globals.get("embed")!;
  files.push(tensorFile(EMBED_FILE, [
    outTensor(
      take(emb.name, emb.shape),
      quantizeEmbedding ? EMBEDDING_PACKING : "raw",
    ),
  ]));
  for (let i = 0; i < cfg.numLayers; i++) {
    const ts = layerTensors(cfg, i).map((lt) =>
      outTensor(
        lt.slice
          ? sliceOf(take(lt.slice.of, [lt.slice.total]), lt)
          : take(lt.name, lt.shape),
        PROJECTION_ROLES.has(lt.role) ? projKind : "raw",
      )
    );
    files.push(tensorFile(layerFile(i), ts));
  }
  const norm = globals.get("finalNorm")!;
  const head = [outTensor(take(norm.name, norm.shape), "raw")];
  const lm = globals.get("lmHead");
  if (lm) head.push(outTensor(take(lm.name, lm.shape), projKind));
  files.push(tensorFile(HEAD_FILE, head));

  for (const t of source.tensors) {
    if (used.has(t.name)) continue;
    // recomputed (ChatGLM's rotary_pos_emb.inv_freq also ignores rope_ratio)
    if (/rotary_(pos_)?emb\.inv_freq$/.test(t.name)) continue;
    if (t.name === "lm_head.weight" && cfg.tieWordEmbeddings) continue; // tied copy
    throw new UnsupportedError(
      t.file ?? source.path,
      `unexpected tensor ${t.name} for a ${cfg.architecture} model`,
    );
  }
  return files;
}

function planHash(
  source: ModelSource,
  cfg: ModelConfig,
  quantize: Quantization,
  quantizeEmbedding: boolean,
  files: OutFile[],
): string {
  const h = createHash("sha256");
  h.update(JSON.stringify({
    format: SHARD_FORMAT,
    version: SHARD_VERSION,
    kind: source.kind,
    description: source.description,
    config: cfg,
    quantize,
    quantizeEmbedding,
    tensors: source.tensors.map((
      t,
    ) => [t.name, t.dtype, t.shape, t.byteLength]),
  }));
  for (const f of files) if (f.text !== undefined) h.update(f.text);
  return h.digest("hex");
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Rows quantized at a time: bounds the f32 copy to about 16 MB. */
const CHUNK_F32_BYTES = 16 << 20;

/**
 * Reads `t` from its source and writes its declared tensors to `writer`.
 * Float sources are quantized a chunk of rows at a time (the packed data is
 * written as it is made; the scales, 1/16 of the packed size or less, follow),
 * so peak memory is the source tensor plus about 16 MB.
 */
async function emit(t: OutTensor, writer: SafetensorsWriter): Promise<void> {
  const d: TensorData = await t.src.read();
  const where = t.src.file ?? t.src.name;
  const [dataName, scalesName] = [t.decls[0].name, t.decls[1]?.name];
  if (t.kind === "raw") {
    if ("data" in d) {
      throw new FormatError(
        where,
        `tensor ${t.src.name}: unexpected packed data`,
      );
    }
    await writer.write(dataName, d.bytes);
    return;
  }
  const [rows, cols] = t.src.shape;
  const enc = encoding(t.kind);
  const writePacked = async (
    q: { data: ArrayBufferView; scales?: Uint16Array },
  ) => {
    await writer.write(dataName, bytesOf(q.data));
    if (scalesName) await writer.write(scalesName, bytesOf(q.scales!));
  };
  if (d.dtype === t.kind) return await writePacked(d);
  if ("data" in d) {
    // Repacking another packing: rare (GGUF), done whole.
    const w = encoding(d.dtype).decode(
      { data: bytesOf(d.data), scales: d.scales },
      rows,
      cols,
    );
    return await writePacked(enc.encode(w, rows, cols));
  }
  const elBytes = d.dtype === "F32" ? 4 : 2;
  if (d.bytes.length !== rows * cols * elBytes) {
    throw new FormatError(
      where,
      `tensor ${t.src.name}: ${d.bytes.length} bytes for ${d.dtype} ${
        shapeStr(t.src.shape)
      }`,
    );
  }
  const nb = Math.ceil(cols / enc.blockElems);
  const scales = new Uint16Array(rows * nb);
  const chunk = envInt("STRATA_SPLIT_CHUNK_BYTES") ?? CHUNK_F32_BYTES;
  const step = Math.max(1, Math.floor(chunk / (4 * Math.max(cols, 1))));
  for (let r0 = 0; r0 < rows; r0 += step) {
    const r1 = Math.min(rows, r0 + step);
    const w = toFloat32(
      d.bytes.subarray(r0 * cols * elBytes, r1 * cols * elBytes),
      d.dtype,
    );
    const q = enc.encode(w, r1 - r0, cols);
    if (q.scales) scales.set(q.scales, r0 * nb);
    await writer.write(dataName, bytesOf(q.data));
  }
  if (scalesName) await writer.write(scalesName, bytesOf(scales));
}

function configLabel(source: ModelSource): string {
  return source.kind === "hf" ? join(source.path, "config.json") : source.path;
}

/**
 * Splits `source` into a shard directory at `opts.out` and returns the
 * manifest. Re-running after a failure resumes; re-running after success
 * verifies and returns the existing manifest.
 *
 * @throws {FormatError} when the source is malformed or incomplete.
 * @throws {UsageError} when `out` holds shards of a different split.
 * @throws {StrataError} when the disk lacks space (the message says how much is needed).
 * @example
 * ```ts ignore
 * import { openSource } from "./open_source.ts";
 * import { splitModel } from "./split.ts";
 * const src = await openSource("models/tiny-llama");
 * try {
 *   const m = await splitModel(src, { out: "shards/tiny-llama", quantize: "none" });
 *   console.log(m.layers.length);
 * } finally {
 *   src.close();
 * }
 * ```
 */
export async function splitModel(
  source: ModelSource,
  opts: SplitOptions,
): Promise<Manifest> {
  const quantize = parseQuantization(opts.quantize, "--quantize");
  const quantizeEmbedding = opts.quantizeEmbedding ?? false;
  const out = opts.out;
  const cfg = normalizeConfig(source.config, configLabel(source));
  const files = plan(source, cfg, quantize, quantizeEmbedding);
  const planId = planHash(source, cfg, quantize, quantizeEmbedding, files);

  const outAbs = resolve(out);
  for (const f of source.sourceFiles) {
    if (resolve(f) === outAbs) {
      throw new UsageError(`--out ${out} is a source file`);
    }
  }
  const manifestPath = join(out, MANIFEST_FILE);
  const progressPath = join(out, PROGRESS_FILE);

  // Already finished?
  if (await ShardDir.isShardDir(out)) {
    const existing = await ShardDir.open(out);
    if (existing.manifest.plan !== planId) {
      throw new UsageError(
        `${out} already holds shards of a different model or --quantize setting; choose another --out or remove it`,
      );
    }
    await existing.verify();
    const total = existing.manifest.files.reduce((a, f) => a + f.size, 0);
    opts.onProgress?.({
      bytesDone: total,
      bytesTotal: total,
      file: MANIFEST_FILE,
      bytesSkipped: total,
    });
    if (opts.deleteOriginal) await deleteSources(source, out);
    return existing.manifest;
  }

  await checkOutDir(out);
  const createdOut = !(await exists(out));
  try {
    await Deno.mkdir(join(out, "layers"), { recursive: true });
  } catch (e) {
    throw new UsageError(
      `--out ${out}: cannot create the shard directory: ${
        (e as Error).message
      }`,
    );
  }
  await removeStalePartials(out);

  // Resume: files finished by an earlier run of the same plan.
  const finished = new Map<string, ManifestFile>();
  const progress = await readProgress(progressPath);
  if (progress && progress.plan === planId) {
    for (const f of files) {
      const rec = progress.done[f.path];
      if (!rec) continue;
      const entry = { path: f.path, size: rec.size, sha256: rec.sha256 };
      try {
        await verifyFile(out, entry);
        finished.set(f.path, entry);
      } catch {
        // changed or missing: write it again
      }
    }
  } else if (progress) {
    // An unfinished split of something else: its files must not linger
    // under final names.
    for (const rel of Object.keys(progress.done)) {
      if (/^(layers\/)?[\w.-]+$/.test(rel)) {
        await removeIfExists(join(out, rel));
      }
    }
  }
  const record: Progress = { plan: planId, done: {} };
  for (const [p, e] of finished) {
    record.done[p] = { size: e.size, sha256: e.sha256 };
  }
  await writeTextAtomic(progressPath, JSON.stringify(record), false);

  // Disk space.
  const bytesTotal = files.reduce(
    (a, f) => a + (finished.get(f.path)?.size ?? f.estSize),
    0,
  );
  const needed = files.reduce(
    (a, f) => a + (finished.has(f.path) ? 0 : f.estSize),
    0,
  ) + 64 * 1024;
  const free = await freeBytes(out);
  if (needed > free) {
    // Leave nothing behind that this run created.
    if (createdOut) await Deno.remove(out, { recursive: true });
    throw new StrataError(
      `${out}: not enough free disk space: the split needs ${
        formatBytes(needed, 1000)
      }, ${formatBytes(free, 1000)} available`,
    );
  }

  const failAfter = envInt("STRATA_SPLIT_FAIL_AFTER");
  const killAfter = envInt("STRATA_SPLIT_KILL_AFTER");
  /** Test hooks: fail or die once `completed` files are finished in this run. */
  const injectFailure = (target: string, completed: number) => {
    if (killAfter !== null && completed >= killAfter) {
      Deno.kill(Deno.pid, "SIGKILL");
    }
    if (failAfter !== null && completed >= failAfter) {
      throw new StrataError(
        `${target}: injected failure (STRATA_SPLIT_FAIL_AFTER=${failAfter})`,
      );
    }
  };
  let completed = 0;
  let bytesDone = 0;
  let bytesSkipped = 0;
  const entries: ManifestFile[] = [];
  for (const f of files) {
    const target = join(out, f.path);
    const done = finished.get(f.path);
    if (done) {
      entries.push(done);
      bytesDone += done.size;
      bytesSkipped += done.size;
      opts.onProgress?.({ bytesDone, bytesTotal, file: f.path, bytesSkipped });
      continue;
    }
    const inject = () => injectFailure(target, completed);
    const partial = target + ".partial";
    if (f.text !== undefined) {
      await Deno.writeTextFile(partial, f.text);
      inject();
    } else {
      const writer = await SafetensorsWriter.create(
        partial,
        f.tensors.flatMap((t) => t.decls),
        f.metadata,
      );
      try {
        for (const t of f.tensors) {
          await emit(t, writer);
          bytesDone += t.bytes;
          opts.onProgress?.({
            bytesDone,
            bytesTotal,
            file: f.path,
            bytesSkipped,
          });
          inject();
        }
        await writer.close();
      } catch (e) {
        try {
          await writer.close();
        } catch {
          // incomplete on purpose
        }
        await removeIfExists(partial);
        throw e;
      }
    }
    const { sha256, size } = await hashFile(partial, { sync: true });
    await Deno.rename(partial, target);
    await syncDir(dirname(target));
    const entry = { path: f.path, size, sha256 };
    entries.push(entry);
    if (f.text !== undefined) bytesDone += size;
    else bytesDone += size - f.tensors.reduce((a, t) => a + t.bytes, 0);
    record.done[f.path] = { size, sha256 };
    await writeTextAtomic(progressPath, JSON.stringify(record), false);
    completed++;
  }

  // Every shard is in place; the manifest is not yet (the last hook point).
  injectFailure(manifestPath, completed);
  const quant: Record<string, QuantLayout> = {};
  for (const f of files) {
    if (f.metadata?.["strata.quant"]) {
      Object.assign(quant, JSON.parse(f.metadata["strata.quant"]));
    }
  }
  const manifest: Manifest = {
    format: SHARD_FORMAT,
    version: SHARD_VERSION,
    source: {
      kind: source.kind,
      path: source.path,
      description: source.description,
    },
    config: cfg,
    quantization: effectiveQuantization(quantize, quant),
    quant,
    embed: EMBED_FILE,
    head: HEAD_FILE,
    layers: Array.from({ length: cfg.numLayers }, (_, i) => layerFile(i)),
    files: entries,
    plan: planId,
  };
  const experts = expertLayout(cfg); // one tensor per expert (docs/format.md)
  if (experts) manifest.experts = experts;
  await writeTextAtomic(manifestPath, JSON.stringify(manifest, null, 2) + "\n");
  await recordVerified(out, entries); // just hashed: the first run need not
  await removeIfExists(progressPath);
  if (opts.deleteOriginal) await deleteSources(source, out);
  return manifest;
}

/** "none" unless projections are packed; the fewest bits per weight when they are mixed. */
function effectiveQuantization(
  requested: Quantization,
  quant: Record<string, QuantLayout>,
): Quantization {
  if (requested !== "none") return requested;
  const types = new Set(
    Object.entries(quant)
      .filter(([n]) => n !== "model.embed_tokens.weight")
      .map(([, q]) => q.type),
  );
  if (types.size === 0) return "none";
  const bits = (n: PackedName) => {
    const e = encoding(n);
    return (e.blockBytes + e.scaleBytes) / e.blockElems;
  };
  return [...types].reduce((a, b) => bits(b) < bits(a) ? b : a);
}

async function deleteSources(source: ModelSource, out: string): Promise<void> {
  // Verify everything against the manifest first: only then delete.
  const shards = await ShardDir.open(out);
  await shards.verify();
  source.close();
  const outAbs = resolve(out);
  for (const f of source.sourceFiles) {
    const abs = resolve(f);
    const rel = relative(outAbs, abs);
    if (!rel.startsWith("..") && !isAbsolute(rel)) continue; // never inside out/
    await removeIfExists(abs);
  }
}
