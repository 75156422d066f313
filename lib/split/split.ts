/**
 * `splitModel`: turns a {@link ModelSource} into a shard directory (see
 * docs/format.md), tensor by tensor, atomically and resumably.
 *
 * - Tensors stream through in chunks (see _copy.ts): unquantized ones are
 *   copied in 16 MiB sequential pieces, float weights are packed a chunk of
 *   rows at a time on one worker per core (_quant_pool.ts; q8/q4 with
 *   WebAssembly SIMD). Peak memory is a few chunks per worker (a whole
 *   tensor only for sources that cannot read a range: GGUF, llama2.c).
 * - Every file is written as `<file>.partial`, hashed as it is written,
 *   fsynced once, renamed (its fsync overlaps the writing of the next file);
 *   `manifest.json` is written last. A progress record
 *   (`.strata-split.json`) lists finished files; a re-run checks them (size
 *   and CRC-32) and skips them. Output is deterministic, so a resumed split
 *   equals an uninterrupted one byte for byte.
 * - Free disk space is checked before writing.
 * - `deleteOriginal` deletes the source files only after the whole shard
 *   directory has been verified against the manifest.
 *
 * Test hooks (environment): `STRATA_SPLIT_FAIL_AFTER=N` throws while writing
 * the file after the N-th finished one; `STRATA_SPLIT_KILL_AFTER=N` kills the
 * process with SIGKILL at the same point; `STRATA_SPLIT_FREE_BYTES=N`
 * pretends the disk has N bytes free; `STRATA_SPLIT_CHUNK_BYTES=N` sets the
 * size of the row chunks quantized at a time (default 16 MiB of f32);
 * `STRATA_SPLIT_COPY_BYTES=N` the size of copied chunks (default 2 MiB);
 * `STRATA_SPLIT_WORKERS=N` the number of quantization workers (0: none);
 * `STRATA_SPLIT_FLOOR=0|1` turns the floor measurement off or on (default:
 * on for sources of 1 GB or more), `STRATA_SPLIT_FLOOR_BYTES=N` sizes its
 * probes (default 256 MiB).
 *
 * @module
 */
import { StrataError, UsageError } from "../errors.ts";
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
import { expertLayout } from "../model/expert_layout.ts";
import {
  encoding,
  type PackedName,
  parseQuantization,
} from "../quant/encoding.ts";
import { type ModelSource, PROGRESS_FILE } from "./source.ts";
import { warmCopyBuffers, writeTensorFile } from "./_copy.ts";
import { ReadAhead } from "./_read_ahead.ts";
import { QuantPool } from "./_quant_pool.ts";
import { measureSplitFloor, type SplitFloor } from "./_floor.ts";
import { type OutFile, plan } from "./_route.ts";
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
import { crc32File, exists } from "../_fs.ts";

export type { SplitFloor } from "./_floor.ts";

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
  /** Source bytes read (or skipped) so far; with `sourceBytesTotal`, the read rate. */
  sourceBytesDone?: number;
  /** Source bytes the split reads in all. */
  sourceBytesTotal?: number;
  /** Of sourceBytesDone, the bytes of files skipped on resume. */
  sourceBytesSkipped?: number;
  /** The floor measured at the start of this run, when measured. */
  floor?: SplitFloor;
  /**
   * Seconds since this run started writing (after the quantization workers
   * started and the floor probe).
   */
  seconds?: number;
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
  /**
   * Measure the floor (warm source read, fdatasync'd write) before writing
   * and report it in progress; default: `$STRATA_SPLIT_FLOOR`, else only
   * for sources of 1 GB or more.
   */
  measureFloor?: boolean;
}

/** Bytes per copied chunk of an unquantized tensor: small enough to stay in the CPU cache from the read through the checksum to the write (16 MiB took 2.7 s of CPU for a 1.5 GB copy here, 2 MiB 1.0 s). */
const COPY_BYTES = 2 << 20;
/** f32 bytes per chunk of rows packed at a time. */
const CHUNK_F32_BYTES = 16 << 20;
/**
 * Source bytes asked of the kernel ahead of the split's position
 * (_read_ahead.ts): `$STRATA_SPLIT_READ_AHEAD` bytes, 0 for none.
 */
const READ_AHEAD_BYTES = 256 << 20;

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
    // The shard files' layout, not SHARD_VERSION: manifest version 2 changed
    // only the checksum, so a version 1 split keeps its plan (not refused).
    version: 1,
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
  const finished = new Map<string, ManifestFile & { crc32: string }>();
  const progress = await readProgress(progressPath);
  if (progress && progress.plan === planId) {
    for (const f of files) {
      const rec = progress.done[f.path];
      if (!rec) continue;
      const entry = { path: f.path, size: rec.size, crc32: rec.crc32 };
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
    record.done[p] = { size: e.size, crc32: e.crc32 };
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
  const hooks = failAfter !== null || killAfter !== null;
  const srcBytesOf = (f: OutFile) =>
    f.tensors.reduce((a, t) => a + t.src.byteLength, 0);
  const sourceBytesTotal = files.reduce((a, f) => a + srcBytesOf(f), 0);
  const copyBytes = envInt("STRATA_SPLIT_COPY_BYTES") || COPY_BYTES;
  const floorEnv = Deno.env.get("STRATA_SPLIT_FLOOR");
  const wantFloor = opts.measureFloor ??
    (floorEnv === "1"
      ? true
      : floorEnv === "0"
      ? false
      : sourceBytesTotal >= 1e9);
  // The workers start and warm up first (a fixed cost, ~0.1-0.3 s, not
  // throughput), then the floor is measured on an otherwise idle process.
  const needsPool = files.some((f) =>
    !finished.has(f.path) && f.tensors.some((t) => t.kind !== "raw")
  );
  const quantBytes = envInt("STRATA_SPLIT_CHUNK_BYTES") || CHUNK_F32_BYTES;
  const pool = needsPool
    ? await QuantPool.create({ warm: Math.floor(quantBytes / 4) })
    : null;
  const floor = wantFloor
    ? await measureSplitFloor({
      files: source.sourceFiles,
      dir: out,
      sourceBytes: sourceBytesTotal,
      outputBytes: bytesTotal,
      probeBytes: envInt("STRATA_SPLIT_FLOOR_BYTES") ?? undefined,
      chunkBytes: copyBytes,
    }).catch((e) => {
      pool?.close();
      throw e;
    })
    : undefined;

  /** `$STRATA_SPLIT_DROP_BEHIND`: 0 for none, N for a lag of N bytes. */
  const dropLag = envInt("STRATA_SPLIT_DROP_BEHIND");
  const window = envInt("STRATA_SPLIT_WINDOW") ||
    Math.max(4, 2 * (pool?.workers ?? 0) + 2);
  // the copy buffers the window will use, touched before the clock
  const rawBytes = files.reduce(
    (a, f) =>
      a + (finished.has(f.path) ? 0 : f.tensors.reduce(
        (b, t) => b + (t.kind === "raw" ? t.src.byteLength : 0),
        0,
      )),
    0,
  );
  warmCopyBuffers(
    Math.min(window + 2, Math.ceil(rawBytes / copyBytes)),
    Math.min(copyBytes, rawBytes),
  );
  // the source's pages asked for ahead of the workers' reads
  const readAhead = new ReadAhead(
    files.filter((f) => !finished.has(f.path)).flatMap((f) =>
      f.tensors.map((t) => ({
        path: t.src.fileRange?.path ?? null,
        offset: t.src.fileRange?.offset ?? 0,
        length: t.src.byteLength,
      }))
    ),
    envInt("STRATA_SPLIT_READ_AHEAD") ?? READ_AHEAD_BYTES,
  );
  let completed = 0;
  let bytesDone = 0;
  let bytesSkipped = 0;
  let sourceBytesDone = 0;
  let sourceBytesSkipped = 0;
  const entries: ManifestFile[] = new Array(files.length);
  const t0 = performance.now();
  readAhead.advance(0); // on the clock: the advice's own cost counts
  const report = (file: string) =>
    opts.onProgress?.({
      bytesDone,
      bytesTotal,
      file,
      bytesSkipped,
      sourceBytesDone,
      sourceBytesTotal,
      sourceBytesSkipped,
      floor,
      seconds: (performance.now() - t0) / 1000,
    });
  // The finishing (fsync, rename, progress record) of the file before the
  // one being written: it overlaps the writing of the next file.
  let chain: Promise<void> = Promise.resolve();
  let partial: string | null = null;
  try {
    for (const [i, f] of files.entries()) {
      const target = join(out, f.path);
      const done = finished.get(f.path);
      if (done) {
        entries[i] = done;
        bytesDone += done.size;
        bytesSkipped += done.size;
        sourceBytesDone += srcBytesOf(f);
        sourceBytesSkipped += srcBytesOf(f);
        report(f.path);
        continue;
      }
      const inject = async () => {
        if (!hooks) return;
        await chain; // the hooks count finished files exactly
        injectFailure(target, completed);
      };
      partial = target + ".partial";
      const part = partial;
      let finish: () => Promise<{ crc32: string; size: number }>;
      if (f.text !== undefined) {
        await Deno.writeTextFile(part, f.text);
        await inject();
        finish = () => crc32File(part, { sync: true });
      } else {
        const w = await writeTensorFile(part, f.tensors, f.metadata, {
          copyBytes,
          quantBytes,
          pool: pool!,
          window,
          direct: envInt("STRATA_SPLIT_DIRECT") !== 0,
          dropBehind: dropLag === 0 ? null : { lag: dropLag ?? undefined },
          onPiece: (outBytes, srcBytes) => {
            bytesDone += outBytes;
            sourceBytesDone += srcBytes;
            readAhead.advance(sourceBytesDone - sourceBytesSkipped);
            report(f.path);
          },
          onTensor: inject,
        });
        finish = async () => {
          await w.writer.close({ sync: true });
          return { crc32: w.crc32, size: w.size };
        };
      }
      partial = null;
      const prev = chain;
      chain = (async () => {
        await prev;
        const { crc32, size } = await finish();
        await Deno.rename(part, target);
        await syncDir(dirname(target));
        entries[i] = { path: f.path, size, crc32 };
        if (f.text !== undefined) bytesDone += size;
        else bytesDone += size - f.tensors.reduce((a, t) => a + t.bytes, 0);
        record.done[f.path] = { size, crc32 };
        await writeTextAtomic(progressPath, JSON.stringify(record), false);
        completed++;
        report(f.path);
      })();
      chain.catch(() => {}); // awaited below; an error surfaces there
    }
    await chain;
  } catch (e) {
    await chain.catch(() => {}); // let a pending fsync and rename finish
    if (partial !== null) await removeIfExists(partial);
    throw e;
  } finally {
    pool?.close();
    readAhead.close();
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
