/**
 * The split's routing: which output file each source tensor goes to and what
 * it becomes there (its raw bytes, or a packed encoding from
 * lib/quant/encoding.ts), with the size of every file.
 *
 * @module
 */
import { FormatError, UnsupportedError } from "../errors.ts";
import type { TensorDecl } from "../format/safetensors.ts";
import {
  EMBED_FILE,
  HEAD_FILE,
  layerFile,
  type Quantization,
  type QuantLayout,
} from "../format/shards.ts";
import type { ModelConfig } from "../model/config.ts";
import { QUANTIZED_ROLES } from "../model/architectures.ts";
import { globalTensors, layerTensors } from "../model/tensors.ts";
import {
  EMBEDDING_PACKING,
  encoding,
  isPacked,
  type PackedName,
  storedShapes,
} from "../quant/encoding.ts";
import type { ModelSource, SourceTensor } from "./source.ts";
import { HF_TEXT_FILES } from "./source_hf.ts";
import { sliceOf } from "./_slice.ts";

/** What a tensor becomes: its raw bytes, or a packed encoding. */
export type OutKind = "raw" | PackedName;

/** One output tensor and the source tensor it comes from. */
export interface OutTensor {
  src: SourceTensor;
  kind: OutKind;
  decls: TensorDecl[];
  /** Output bytes (data + scales). */
  bytes: number;
}

/** One output file: text, or tensors. */
export interface OutFile {
  path: string;
  /** Text content (copied files), or tensors. */
  text?: string;
  tensors: OutTensor[];
  metadata?: Record<string, string>;
  estSize: number;
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** `[a, b]` for messages. */
export function shapeStr(s: number[]): string {
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
export function plan(
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
        QUANTIZED_ROLES.has(lt.role) ? projKind : "raw",
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
