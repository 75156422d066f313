/**
 * GPU layout of the tensors of one shard file (a decoder layer, or the head):
 * where each tensor lives inside one GPU buffer, and where its bytes come from
 * in the file. The host image of a layer is laid out exactly like the GPU
 * buffer, so a layer is read tensor by tensor into the image and uploaded
 * with a few large `queue.writeBuffer` calls.
 *
 * - 2-D weights keep the shard bytes (float row-major, or a packed encoding's
 *   data + f16 scales; lib/quant/encoding.ts), split into row parts within
 *   one storage binding.
 * - 1-D tensors (norm weights, biases) are decoded to f32 on the host.
 *
 * @module
 */
import type { SafetensorsFile, TensorInfo } from "../format/safetensors.ts";
import { FormatError, UnsupportedError } from "../errors.ts";
import type { BufferRef, GpuWeight } from "../gpu/kernels.ts";
import { planWeightParts } from "../gpu/kernels.ts";
import {
  encoding,
  type EncodingName,
  floatEncoding,
  isPacked,
  type PackedName,
} from "../quant/encoding.ts";
import { decodeFloats } from "./_decode.ts";

const ALIGN = 256;
const align = (n: number, a = ALIGN) => Math.ceil(n / a) * a;

/** A byte range of the file copied into the image. */
export interface CopyRange {
  /** Absolute file offset. */
  fileOffset: number;
  /** Bytes. */
  length: number;
  /** Offset in the image / GPU buffer of its segment. */
  imageOffset: number;
  /** The segment (GPU buffer) it lands in. */
  segment: number;
}

/** A 2-D weight in the layout. */
export interface MatrixEntry {
  kind: "matrix";
  name: string;
  dtype: EncodingName;
  rows: number;
  cols: number;
  parts: {
    rowStart: number;
    rows: number;
    segment: number;
    data: { offset: number; size: number };
    scales?: { offset: number; size: number };
  }[];
  copies: CopyRange[];
}

/** A 1-D tensor decoded to f32. */
export interface VectorEntry {
  kind: "vector";
  name: string;
  /** Elements. */
  n: number;
  /** Offset of the f32 data in the image. */
  offset: number;
  /** Padded f32 byte size. */
  size: number;
  /** The segment (GPU buffer) it lives in. */
  segment: number;
  /** Source dtype and range. */
  srcDtype: "F32" | "F16" | "BF16";
  fileOffset: number;
  fileLength: number;
}

/** Layout of one shard file on the GPU. */
export interface TensorLayout {
  /** The file. */
  path: string;
  /** Tensors by name. */
  entries: Map<string, MatrixEntry | VectorEntry>;
  /** Total GPU bytes (sum of the segments). */
  bytes: number;
  /** Bytes of each segment (one GPU buffer each, ≤ maxBuffer); decoder layers have one. */
  segments: number[];
  /** Bytes read from the file to fill the image. */
  fileBytes: number;
}

/** Quantization metadata of a shard file: name → {type, shape}. */
export function quantInfo(
  f: SafetensorsFile,
): Map<string, { type: PackedName; shape: [number, number] }> {
  const raw = f.metadata["strata.quant"];
  const out = new Map<string, { type: PackedName; shape: [number, number] }>();
  if (!raw) return out;
  let json: Record<string, { type: string; shape: number[] }>;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new FormatError(
      f.path,
      "__metadata__ strata.quant is not valid JSON",
    );
  }
  for (const [name, q] of Object.entries(json)) {
    if (
      !isPacked(q.type) || !Array.isArray(q.shape) ||
      q.shape.length !== 2
    ) {
      throw new FormatError(f.path, `bad strata.quant entry for ${name}`);
    }
    out.set(name, {
      type: q.type as PackedName,
      shape: [q.shape[0], q.shape[1]],
    });
  }
  return out;
}

function floatDtype(t: TensorInfo, file: string): "F32" | "F16" | "BF16" {
  if (t.dtype === "F32" || t.dtype === "F16" || t.dtype === "BF16") {
    return t.dtype;
  }
  throw new UnsupportedError(
    file,
    `tensor ${t.name} has dtype ${t.dtype}; expected F32, F16 or BF16`,
  );
}

/**
 * Computes the layout of `names` (those present in `f`; others are skipped)
 * with parts no larger than `maxBinding` bytes, in segments (one GPU buffer
 * each) no larger than `maxBuffer` bytes. 2-D tensors (and quantized ones)
 * are weights; every other tensor is decoded to f32.
 */
export function layoutOf(
  f: SafetensorsFile,
  names: string[],
  maxBinding: number,
  maxBuffer: number = Infinity,
): TensorLayout {
  const quant = quantInfo(f);
  const entries = new Map<string, MatrixEntry | VectorEntry>();
  const segments: number[] = [];
  let seg = 0;
  let pos = 0;
  let fileBytes = 0;
  // room for `size` bytes at `pos` in the current segment, else a new one
  const reserve = (size: number) => {
    if (pos > 0 && pos + size > maxBuffer) {
      segments[seg] = pos;
      seg++;
      pos = 0;
    }
  };
  for (const name of names) {
    const t = f.tensors.get(name);
    if (!t) continue;
    const q = quant.get(name);
    if (q || t.shape.length === 2) {
      let dtype: EncodingName;
      let rows: number, cols: number;
      let scalesInfo: TensorInfo | undefined;
      if (q) {
        dtype = q.type;
        [rows, cols] = q.shape;
        scalesInfo = f.tensors.get(`${name}.scales`);
        if (!scalesInfo && encoding(q.type).scales === "tensor") {
          throw new FormatError(
            f.path,
            `quantized tensor ${name} has no ${name}.scales`,
          );
        }
      } else {
        dtype = floatEncoding(floatDtype(t, f.path))!.name;
        [rows, cols] = t.shape;
      }
      const [rb, sb] = encoding(dtype).rowBytes(cols);
      if (
        rb * rows !== t.byteLength ||
        (scalesInfo && sb * rows !== scalesInfo.byteLength)
      ) {
        throw new FormatError(
          f.path,
          `tensor ${name}: byte size does not match ${dtype} [${rows}, ${cols}]`,
        );
      }
      const e: MatrixEntry = {
        kind: "matrix",
        name,
        dtype,
        rows,
        cols,
        parts: [],
        copies: [],
      };
      // `length` file bytes at `fileOffset` into the next `size` image bytes
      const copy = (fileOffset: number, length: number, size: number) => {
        const imageOffset = pos;
        pos = align(pos + size);
        e.copies.push({ fileOffset, length, imageOffset, segment: seg });
        return imageOffset;
      };
      for (const [r0, n] of planWeightParts(dtype, rows, cols, maxBinding)) {
        const dataSize = align(n * rb, 4);
        reserve(align(dataSize) + (scalesInfo ? align(n * sb, 4) : 0));
        const dataOff = copy(t.offset + r0 * rb, n * rb, dataSize);
        const part: MatrixEntry["parts"][number] = {
          rowStart: r0,
          rows: n,
          segment: seg,
          data: { offset: dataOff, size: dataSize },
        };
        if (scalesInfo) {
          const sSize = align(n * sb, 4);
          const sOff = copy(scalesInfo.offset + r0 * sb, n * sb, sSize);
          part.scales = { offset: sOff, size: sSize };
        }
        e.parts.push(part);
      }
      fileBytes += t.byteLength + (scalesInfo?.byteLength ?? 0);
      entries.set(name, e);
    } else {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const size = align(n * 4, 16);
      reserve(align(size));
      entries.set(name, {
        kind: "vector",
        name,
        n,
        offset: pos,
        size,
        segment: seg,
        srcDtype: floatDtype(t, f.path),
        fileOffset: t.offset,
        fileLength: t.byteLength,
      });
      pos = align(pos + size);
      fileBytes += t.byteLength;
    }
  }
  segments[seg] = Math.max(pos, ALIGN);
  const bytes = segments.reduce((a, b) => a + b, 0);
  return { path: f.path, entries, bytes, segments, fileBytes };
}

/**
 * Fills `image` (≥ the segment's size) with the tensors of segment `segment`
 * (default 0, the only one of a decoder layer) read from `f`. Vectors are
 * decoded to f32.
 */
export async function readImage(
  f: SafetensorsFile,
  layout: TensorLayout,
  image: Uint8Array,
  segment = 0,
): Promise<void> {
  const reads: Promise<unknown>[] = [];
  for (const e of layout.entries.values()) {
    if (e.kind === "matrix") {
      for (const c of e.copies) {
        if (c.segment !== segment) continue;
        reads.push(
          f.readRange(
            c.fileOffset,
            image.subarray(c.imageOffset, c.imageOffset + c.length),
          ),
        );
      }
    } else if (e.segment === segment) {
      reads.push(
        f.readRange(e.fileOffset, new Uint8Array(e.fileLength)).then((raw) => {
          const v = decodeFloats(raw, e.srcDtype);
          image.set(
            new Uint8Array(v.buffer, v.byteOffset, v.byteLength),
            e.offset,
          );
        }),
      );
    }
  }
  await Promise.all(reads);
}

/**
 * Binds a layout to its GPU buffer (or one buffer per segment): matrices
 * become GpuWeights, vectors BufferRefs.
 */
export function bindLayout(
  layout: TensorLayout,
  buffers: GPUBuffer | GPUBuffer[],
): Map<string, GpuWeight | BufferRef> {
  const list = Array.isArray(buffers) ? buffers : [buffers];
  const out = new Map<string, GpuWeight | BufferRef>();
  for (const [name, e] of layout.entries) {
    if (e.kind === "matrix") {
      out.set(name, {
        dtype: e.dtype,
        rows: e.rows,
        cols: e.cols,
        parts: e.parts.map((p) => {
          const buffer = list[p.segment];
          return {
            rowStart: p.rowStart,
            rows: p.rows,
            data: { buffer, offset: p.data.offset, size: p.data.size },
            scales: p.scales
              ? { buffer, offset: p.scales.offset, size: p.scales.size }
              : undefined,
          };
        }),
      });
    } else {
      out.set(name, {
        buffer: list[e.segment],
        offset: e.offset,
        size: e.size,
      });
    }
  }
  return out;
}
