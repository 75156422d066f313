/**
 * `strata info`: describe a shard directory or a checkpoint.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { SafetensorsFile } from "../format/safetensors.ts";
import { ShardDir } from "../format/shards.ts";
import { type ModelConfig, normalizeConfig } from "../model/config.ts";
import { layerIndexOf } from "../model/tensors.ts";
import { openSource } from "../split/open_source.ts";
import {
  describeTokenizer,
  type TokenizerDescription,
} from "../text/tokenizer.ts";
import { join } from "node:path";
import { formatBytes } from "../_units.ts";
import { exists } from "../_fs.ts";
import { parseOneArgCommand } from "./_args.ts";

const HELP = `Usage: deno run -A cli.ts info <model> [flags]

Describes a model: architecture, parameter count, dtype and quantization,
number of layers and bytes per layer, the main dimensions and the tokenizer.

<model> is a Strata shard directory (output of 'split'), a Hugging Face
checkpoint directory, a .gguf file, a llama2.c .bin checkpoint, or a Hugging
Face repo id org/name[@revision] (taken from the Hugging Face cache, or
downloaded into it as 'run' does; HF_HUB_OFFLINE=1 uses only the cache).

Flags:
  --json              print one JSON object on stdout instead of text
  --verify            also check every shard file's size and checksum against
                      manifest.json (shard directories only)
  --tokenizer FILE    llama2.c tokenizer file for a .bin checkpoint
  -h, --help          show this help`;

/**
 * What `info` reports (also its `--json` output).
 *
 * @example
 * ```ts ignore
 * import { modelInfo } from "./info.ts";
 * const i = await modelInfo("shards/tiny");
 * console.log(i.architecture, i.parameters, i.bytesPerLayer);
 * ```
 */
export interface ModelInfo {
  /** The path described. */
  path: string;
  /** "shards", "hf", "gguf" or "llama2c". */
  kind: string;
  /** Source description (for shard dirs: the source they were split from). */
  description: string;
  /** Model family. */
  architecture: string;
  /** Number of weights (quantized tensors counted unpacked; tied embedding once). */
  parameters: number;
  /** Storage types present: safetensors dtypes and packed encodings, e.g. ["BF16"]. */
  dtypes: string[];
  /** Split-time quantization ("none" for checkpoints). */
  quantization: string;
  /** Number of decoder layers. */
  layers: number;
  /** Bytes of each decoder layer (file size for shard dirs). */
  bytesPerLayer: number[];
  /** Bytes of the embedding. */
  embedBytes: number;
  /** Bytes of the head (final norm + lm_head). */
  headBytes: number;
  /** Total bytes of weights (shards: every file). */
  totalBytes: number;
  /** Normalized config. */
  config: ModelConfig;
  /** Tokenizer summary, or null when there is none. */
  tokenizer: Omit<TokenizerDescription, "lines"> | null;
  /** Whether --verify ran and passed. */
  verified?: boolean;
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

async function shardInfo(dir: string, verify: boolean): Promise<ModelInfo> {
  const shards = await ShardDir.open(dir);
  const m = shards.manifest;
  if (verify) await shards.verify();
  const size = new Map(m.files.map((f) => [f.path, f.size]));
  let parameters = 0;
  const dtypes = new Set<string>();
  for (const rel of [m.embed, ...m.layers, m.head]) {
    const f = await SafetensorsFile.open(join(dir, rel));
    try {
      for (const t of f.tensors.values()) {
        const base = t.name.endsWith(".scales") ? t.name.slice(0, -7) : null;
        if (base !== null && m.quant[base]) continue;
        const q = m.quant[t.name];
        if (q) {
          parameters += numel(q.shape);
          dtypes.add(q.type);
        } else {
          parameters += numel(t.shape);
          dtypes.add(t.dtype);
        }
      }
    } finally {
      f.close();
    }
  }
  const tok = await describeTokenizer(dir);
  return {
    path: dir,
    kind: "shards",
    description:
      `Strata shards v${m.version} of ${m.source.kind}: ${m.source.description}`,
    architecture: m.config.architecture,
    parameters,
    dtypes: [...dtypes].sort(),
    quantization: m.quantization,
    layers: m.layers.length,
    bytesPerLayer: m.layers.map((p) => size.get(p) ?? 0),
    embedBytes: size.get(m.embed) ?? 0,
    headBytes: size.get(m.head) ?? 0,
    totalBytes: m.files.reduce((a, f) => a + f.size, 0),
    config: m.config,
    tokenizer: tok && stripLines(tok),
    ...(verify ? { verified: true } : {}),
  };
}

function stripLines(
  t: TokenizerDescription,
): Omit<TokenizerDescription, "lines"> {
  const { lines: _lines, ...rest } = t;
  return rest;
}

async function sourceInfo(
  path: string,
  tokenizer: string | undefined,
): Promise<ModelInfo> {
  const src = await openSource(path, { tokenizer });
  try {
    const cfg = normalizeConfig(
      src.config,
      src.kind === "hf" ? join(path, "config.json") : path,
    );
    const perLayer = new Array<number>(cfg.numLayers).fill(0);
    let embedBytes = 0, headBytes = 0, parameters = 0;
    const dtypes = new Set<string>();
    for (const t of src.tensors) {
      if (t.name === "lm_head.weight" && cfg.tieWordEmbeddings) continue;
      parameters += numel(t.shape);
      dtypes.add(t.dtype);
      const li = layerIndexOf(t.name);
      if (li !== null && li < perLayer.length) perLayer[li] += t.byteLength;
      else if (t.name === "model.embed_tokens.weight") {
        embedBytes += t.byteLength;
      } else headBytes += t.byteLength;
    }
    let tok: TokenizerDescription | null = null;
    if (src.kind === "hf") tok = await describeTokenizer(path);
    else if (src.files["tokenizer.json"]) {
      const tmp = await Deno.makeTempDir({ prefix: "strata-info-" });
      try {
        for (const [name, text] of Object.entries(src.files)) {
          await Deno.writeTextFile(join(tmp, name), text);
        }
        tok = await describeTokenizer(tmp);
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    }
    return {
      path,
      kind: src.kind,
      description: src.description,
      architecture: cfg.architecture,
      parameters,
      dtypes: [...dtypes].sort(),
      quantization: "none",
      layers: cfg.numLayers,
      bytesPerLayer: perLayer,
      embedBytes,
      headBytes,
      totalBytes: src.tensors.reduce((a, t) => a + t.byteLength, 0),
      config: cfg,
      tokenizer: tok && stripLines(tok),
    };
  } finally {
    src.close();
  }
}

/**
 * Describes the model at `path` (shard directory, HF directory, .gguf, .bin).
 *
 * @example
 * ```ts ignore
 * import { modelInfo } from "./info.ts";
 * const i = await modelInfo("shards/tiny");
 * console.log(i.architecture, i.parameters);
 * ```
 */
export async function modelInfo(
  path: string,
  opts: { verify?: boolean; tokenizer?: string } = {},
): Promise<ModelInfo> {
  if (await ShardDir.isShardDir(path)) {
    return await shardInfo(path, opts.verify ?? false);
  }
  if (opts.verify) {
    throw new UsageError(
      `info: --verify needs a shard directory (${path} has no manifest.json)`,
    );
  }
  return await sourceInfo(path, opts.tokenizer);
}

function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

/**
 * The human-readable lines `info` prints.
 *
 * @example
 * ```ts ignore
 * import { formatInfo, modelInfo } from "./info.ts";
 * console.log(formatInfo(await modelInfo("shards/tiny")).join("\n"));
 * ```
 */
export function formatInfo(i: ModelInfo): string[] {
  const c = i.config;
  const minL = Math.min(...i.bytesPerLayer);
  const maxL = Math.max(...i.bytesPerLayer);
  const perLayer = i.layers === 0
    ? "-"
    : formatBytes(minL, 1000) === formatBytes(maxL, 1000)
    ? formatBytes(minL, 1000)
    : `${formatBytes(minL, 1000)}–${formatBytes(maxL, 1000)}`;
  const rope = c.ropeScaling
    ? `, scaling ${c.ropeScaling.type} ×${c.ropeScaling.factor}`
    : "";
  const lines = [
    `model:         ${i.path}`,
    `format:        ${i.description}`,
    `architecture:  ${i.architecture}`,
    `parameters:    ${count(i.parameters)} (${
      i.parameters.toLocaleString("en-US")
    })`,
    `dtype:         ${i.dtypes.join(", ")}`,
    `quantization:  ${i.quantization}`,
    `layers:        ${i.layers} × ${perLayer} per layer`,
    `embedding:     ${c.vocabSize} × ${c.hiddenSize}, ${
      formatBytes(i.embedBytes, 1000)
    }` +
    (c.tieWordEmbeddings ? " (tied with lm_head)" : ""),
    `head:          ${formatBytes(i.headBytes, 1000)}`,
    `total:         ${formatBytes(i.totalBytes, 1000)}`,
    `dims:          hidden ${c.hiddenSize}, intermediate ${c.intermediateSize}, ` +
    `heads ${c.numHeads} (kv ${c.numKvHeads}), head_dim ${c.headDim}, ` +
    `context ${c.maxPositionEmbeddings}`,
    `rope:          theta ${c.ropeTheta}${rope}; rms_norm_eps ${c.rmsNormEps}`,
  ];
  const t = i.tokenizer;
  if (!t) lines.push("tokenizer:     none");
  else {
    const specials = Object.entries(t.specialTokens)
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ");
    lines.push(
      `tokenizer:     ${t.type}, ${t.vocabSize} tokens, bos ${
        t.bosTokenId ?? "none"
      } (added: ${t.addBosToken ? "yes" : "no"}), eos ${
        t.eosTokenIds.join(",") || "none"
      }`,
      `special:       ${specials || "none"}`,
      `chat template: ${
        t.chatTemplate
          ? t.chatTemplateNames.length > 1
            ? `yes (${t.chatTemplateNames.join(", ")})`
            : "yes"
          : "none"
      }`,
    );
  }
  if (i.verified) lines.push("verified:      every file matches manifest.json");
  return lines;
}

/**
 * Runs `info` with command-line `args`; returns the exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "./info.ts";
 * await main(["shards/tiny", "--json"]);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const cmd = parseOneArgCommand({
    command: "info",
    args,
    options: {
      json: { type: "boolean" },
      verify: { type: "boolean" },
      tokenizer: { type: "string" },
    },
    help: HELP,
    what: "model path",
  });
  if (cmd === null) return 0;
  const { values, arg } = cmd;
  let path = arg;
  if (!(await exists(path)) && !path.startsWith(".")) {
    const { parseRepoId } = await import("../hub/repo_id.ts");
    if (parseRepoId(path) !== null) {
      const { downloadSnapshot } = await import("../hub/download.ts");
      console.error(
        `fetching ${path} from the Hugging Face Hub (or its cache) …`,
      );
      path = await downloadSnapshot(path);
    }
  }
  const info = await modelInfo(path, {
    verify: values.verify,
    tokenizer: values.tokenizer,
  });
  if (values.json) console.log(JSON.stringify(info));
  else console.log(formatInfo(info).join("\n"));
  return 0;
}
