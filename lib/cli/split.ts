/**
 * `strata split`: convert a checkpoint into a shard directory once.
 *
 * @module
 */
import {
  EMBEDDING_PACKING,
  PACKED,
  parseQuantization,
  quantizationChoices,
} from "../quant/encoding.ts";
import { FormatError, UsageError } from "../errors.ts";
import { ShardDir } from "../format/shards.ts";
import { join, resolve } from "node:path";
import { openSource } from "../split/open_source.ts";
import { splitModel, type SplitProgress } from "../split/split.ts";
import { formatBytes } from "../_units.ts";
import { parseOneArgCommand } from "./_args.ts";
import process from "node:process";

const GGUF_TYPES = PACKED.flatMap((e) => e.gguf ? [e.gguf.type] : []).join(
  ", ",
);
const QUANTIZE = quantizationChoices();
const PACKINGS = PACKED.map((e) =>
  `                            ${e.name}: ${e.description}`
)
  .join("\n");
const SMALLEST = PACKED[PACKED.length - 1].name;

const HELP = `Usage: deno run -A cli.ts split <source> --out <dir> [flags]

Converts a checkpoint into per-layer shard files, once: embed.safetensors,
layers/000.safetensors ..., head.safetensors, manifest.json, and the model's
config.json / tokenizer files (format: docs/format.md). Memory stays about one
tensor; every file is written atomically and an interrupted split resumes
where it stopped when run again with the same arguments.

<source> is one of
  a Hugging Face checkpoint directory  config.json + model.safetensors, or
                                       model-*.safetensors + model.safetensors.index.json
                                       (F32, F16 or BF16)
  a GGUF file                          model.gguf (F32, F16, BF16, ${GGUF_TYPES})
  a llama2.c checkpoint                model.bin, with --tokenizer tok.bin

Flags:
  --out DIR               shard directory to write (required; created if needed)
  --quantize ${QUANTIZE}
                          pack the 2-D projection weights (q/k/v/o, gate/up/down,
                          lm_head); norms, biases and the embedding keep the
                          source precision (default: none):
${PACKINGS}
  --quantize-embedding    also store the token embedding as ${EMBEDDING_PACKING}
  --tokenizer FILE        llama2.c tokenizer file for a .bin checkpoint
                          (default: tokenizer.bin next to it)
  --delete-original       delete the source weight files, only after every shard
                          is written and verified against the manifest
  --json                  print a JSON summary on stdout
  -h, --help              show this help

Examples:
  deno run -A cli.ts split ./Llama-3.2-1B --out ./llama-1b-shards
  deno run -A cli.ts split ./Qwen3-0.6B --out ./qwen3-${SMALLEST} --quantize ${SMALLEST}
  deno run -A cli.ts split stories260K.bin --tokenizer tok512.bin --out ./stories`;

function seconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
}

/**
 * "read 1.2 GB/s (0.61× the floor 2.0 GB/s)": the rate at which the split
 * consumes its source, against the floor measured at the start when known.
 */
function sourceRate(p: SplitProgress, el: number): string {
  const read = (p.sourceBytesDone ?? 0) - (p.sourceBytesSkipped ?? 0);
  const t = p.seconds ?? el;
  const rate = t > 0 ? read / t : 0;
  let s = `read ${(rate / 1e9).toFixed(2)} GB/s`;
  if (p.floor) {
    s += ` (${(rate / p.floor.bps).toFixed(2)}× the floor ${
      (p.floor.bps / 1e9).toFixed(2)
    } GB/s)`;
  }
  return s;
}

/** Renders progress on stderr: a live line on a terminal, nothing otherwise. */
class ProgressLine {
  #tty = Deno.stderr.isTerminal();
  #start = performance.now();
  #last = 0;
  #drawn = false;
  #enc = new TextEncoder();

  update(p: SplitProgress): void {
    if (!this.#tty) return;
    const now = performance.now();
    if (now - this.#last < 100 && p.bytesDone < p.bytesTotal) return;
    this.#last = now;
    const el = (now - this.#start) / 1000;
    const written = p.bytesDone - p.bytesSkipped;
    const rate = el > 0 ? written / el : 0;
    const eta = rate > 0 ? (p.bytesTotal - p.bytesDone) / rate : Infinity;
    const pct = p.bytesTotal ? (100 * p.bytesDone / p.bytesTotal) : 100;
    const line = `split ${pct.toFixed(0).padStart(3)}%  ${
      formatBytes(p.bytesDone, 1000)
    } / ${formatBytes(p.bytesTotal, 1000)}  ${sourceRate(p, el)}  ETA ${
      seconds(eta)
    }  ${p.file}`;
    Deno.stderr.writeSync(this.#enc.encode(`\r\x1b[2K${line}`));
    this.#drawn = true;
  }

  end(): void {
    if (this.#drawn) Deno.stderr.writeSync(this.#enc.encode("\r\x1b[2K"));
    this.#drawn = false;
  }

  get elapsed(): number {
    return (performance.now() - this.#start) / 1000;
  }
}

/**
 * Runs `split` with command-line `args`; returns the exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "./split.ts";
 * await main(["models/tiny", "--out", "shards/tiny", "--quantize", "none"]);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const cmd = parseOneArgCommand({
    command: "split",
    args,
    options: {
      out: { type: "string", short: "o" },
      quantize: { type: "string", short: "q" },
      "quantize-embedding": { type: "boolean" },
      tokenizer: { type: "string" },
      "delete-original": { type: "boolean" },
      json: { type: "boolean" },
    },
    help: HELP,
    what: "source",
  });
  if (cmd === null) return 0;
  const { values, arg } = cmd;
  if (!values.out) throw new UsageError("split: --out <dir> is required");
  const quantize = parseQuantization(values.quantize, "split: --quantize");
  let source;
  try {
    source = await openSource(arg, {
      tokenizer: values.tokenizer,
    });
  } catch (e) {
    // Re-running a finished `--delete-original` split: the weights are gone
    // by design, the shards are what is left to check.
    if (
      e instanceof FormatError &&
      await alreadySplit(arg, values.out, quantize)
    ) return 0;
    throw e;
  }
  const progress = new ProgressLine();
  const cpu0 = process.cpuUsage();
  let last: SplitProgress | null = null;
  // Ctrl-C: say what is left and how to go on (finished files are kept).
  const onInterrupt = () => {
    progress.end();
    let complete = false;
    try {
      complete = Deno.statSync(join(values.out!, "manifest.json")).isFile;
    } catch {
      // not written yet
    }
    console.error(
      complete
        ? `split: interrupted; ${values.out} is complete (manifest.json written)`
        : `split: interrupted; finished files in ${values.out} are kept (no manifest.json yet): run the same command again to resume`,
    );
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    const manifest = await splitModel(source, {
      out: values.out,
      quantize,
      quantizeEmbedding: values["quantize-embedding"] ?? false,
      deleteOriginal: values["delete-original"] ?? false,
      onProgress: (p) => {
        last = p;
        progress.update(p);
      },
    });
    progress.end();
    const total = manifest.files.reduce((a, f) => a + f.size, 0);
    const skipped = (last as SplitProgress | null)?.bytesSkipped ?? 0;
    const written = total - skipped;
    const el = progress.elapsed;
    const parts = [
      `split: ${manifest.config.architecture}, ${manifest.layers.length} layers, ` +
      `${manifest.quantization} → ${values.out}: ${manifest.files.length} files, ${
        formatBytes(total, 1000)
      }`,
    ];
    const lp = last as SplitProgress | null;
    const srcRead = (lp?.sourceBytesDone ?? 0) -
      (lp?.sourceBytesSkipped ?? 0);
    if (written > 0) {
      parts.push(
        `wrote ${formatBytes(written, 1000)} in ${seconds(el)} (${
          formatBytes(written / Math.max(el, 1e-3), 1000)
        }/s; ${lp ? sourceRate(lp, el) : ""})`,
      );
    }
    const floor = lp?.floor;
    if (floor) {
      parts.push(
        `floor min(warm read ${
          (floor.readBps / 1e9).toFixed(2)
        }, fdatasync'd write ${(floor.writeBps / 1e9).toFixed(2)} × ${
          floor.ratio.toFixed(2)
        }) = ${(floor.bps / 1e9).toFixed(2)} GB/s`,
      );
    }
    // CPU time of all threads (workers included): beside the wall time it
    // says whether the split waited on the disk or on the cores
    const cpu = process.cpuUsage(cpu0);
    const cpuS = (cpu.user + cpu.system) / 1e6;
    if (written > 0) parts.push(`CPU ${seconds(cpuS)}`);
    if (skipped > 0) parts.push(`${formatBytes(skipped, 1000)} already done`);
    if (values["delete-original"]) {
      parts.push(`deleted ${source.sourceFiles.length} source files`);
    }
    console.error(parts.join("; "));
    if (values.json) {
      console.log(JSON.stringify({
        out: values.out,
        architecture: manifest.config.architecture,
        layers: manifest.layers.length,
        quantization: manifest.quantization,
        files: manifest.files.length,
        bytes: total,
        bytes_written: written,
        seconds: el,
        cpu_s: cpuS,
        source_bytes_read: srcRead,
        source_gbps: srcRead / Math.max(lp?.seconds ?? el, 1e-3) / 1e9,
        floor: floor
          ? {
            read_gbps: floor.readBps / 1e9,
            write_gbps: floor.writeBps / 1e9,
            ratio: floor.ratio,
            gbps: floor.bps / 1e9,
            probe_bytes: floor.probeBytes,
            chunk_bytes: floor.chunkBytes,
          }
          : null,
      }));
    }
    return 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
    progress.end();
    source.close();
  }
}

/**
 * True (after verifying every shard and saying so) when `out` is a finished
 * shard directory made from `sourcePath` with the same `--quantize`.
 */
async function alreadySplit(
  sourcePath: string,
  out: string,
  quantize: string,
): Promise<boolean> {
  if (!(await ShardDir.isShardDir(out))) return false;
  const shards = await ShardDir.open(out);
  const m = shards.manifest;
  if (resolve(m.source.path) !== resolve(sourcePath)) return false;
  if (m.quantization !== quantize) return false;
  await shards.verify();
  console.error(
    `split: ${out} is already complete (${m.files.length} files verified); nothing to do (the source weights are gone, as after --delete-original)`,
  );
  return true;
}
