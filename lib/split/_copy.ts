/**
 * Writes one shard file of a split as a stream of pieces: unquantized
 * tensors are copied in large sequential chunks (read-ahead overlapping the
 * writes), float weights are packed (any packed encoding of the registry) a
 * chunk of rows at a time on the worker pool, several chunks in flight, and
 * the pieces are written in order; a worker that reads its rows from the
 * source file itself also writes the packed rows at their place in the file
 * (`direct`). Already-packed sources (GGUF) keep their blocks, or are
 * repacked whole.
 * The CRC-32 of the file is computed as it is written (no second pass; the
 * workers' pieces are folded in with crc32Combine), and the file is fsynced
 * once, by the caller, before its rename.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { SafetensorsWriter } from "../format/safetensors.ts";
import { encoding, type FloatDtype } from "../quant/encoding.ts";
import { crc32Combine, crc32Hex, warmForReads } from "../_fs.ts";
import { crc32 } from "node:zlib";
import type { TensorData } from "./source.ts";
import type { QuantPool } from "./_quant_pool.ts";
import type { PackedChunk, WrittenRows } from "./_quant_rows.ts";
import { DropBehind } from "./_drop_behind.ts";
import { type OutTensor, shapeStr } from "./_route.ts";

/** Tunables of {@link writeTensorFile}. */
export interface CopyOptions {
  /** Bytes per copied chunk (the split passes 2 MiB). */
  copyBytes: number;
  /** f32 bytes per quantized chunk of rows (default 16 MiB). */
  quantBytes: number;
  /** The pool quantizing chunks. */
  pool: QuantPool;
  /**
   * Workers that read their rows from the source also write the packed
   * rows at their place in the file (positioned writes, their CRC-32 folded
   * in here with crc32Combine), instead of handing them back to be written
   * in order on this thread: no transfer back, and no single writer.
   */
  direct?: boolean;
  /**
   * Flush and drop the file's pages from the page cache `lag` bytes behind
   * the write front (_drop_behind.ts; default lag 32 MiB), or not (null).
   */
  dropBehind?: { lag?: number } | null;
  /** After each piece: output and source bytes it accounted for. */
  onPiece?: (outBytes: number, srcBytes: number) => void;
  /** After each tensor (test hooks). */
  onTensor?: (t: OutTensor) => void | Promise<void>;
}

/** What {@link writeTensorFile} returns: the file's CRC-32 and size. */
export interface WrittenFile {
  crc32: string;
  size: number;
  writer: SafetensorsWriter;
}

interface Piece {
  name: string;
  /** Its bytes, or what a worker wrote of them itself. */
  bytes: Promise<Uint8Array | WrittenRows>;
  /** Output bytes this piece accounts for in progress. */
  outBytes: number;
  /** Source bytes it accounts for. */
  srcBytes: number;
  /** Set on the last piece of a tensor. */
  last?: OutTensor;
  /**
   * Where its buffer goes once written and hashed: back to the copy
   * buffers, or to the pool's output buffers.
   */
  reuse?: "copy" | "out";
}

/**
 * Copy buffers of `copyBytes`, reused once written: no allocation per chunk
 * (first touching fresh pages costs more than copying them).
 */
const spare: ArrayBuffer[] = [];
function copyBuffer(capacity: number, size: number): Uint8Array {
  const i = spare.findIndex((b) => b.byteLength >= size);
  const b = i >= 0 ? spare.splice(i, 1)[0] : new ArrayBuffer(capacity);
  return new Uint8Array(b, 0, size);
}

/**
 * Readies `count` copy buffers of `capacity` bytes, touched and read into
 * ({@link warmForReads}): a split calls this before its clock starts, so
 * that its first copies do not pay for fresh pages (about 7 ms per MiB on
 * this project's VM) or for a first read into them.
 *
 * @example
 * ```ts
 * import { warmCopyBuffers } from "./_copy.ts";
 * warmCopyBuffers(2, 1 << 16);
 * ```
 */
export function warmCopyBuffers(count: number, capacity: number): void {
  while (spare.length < Math.min(count, 8)) {
    const b = new ArrayBuffer(capacity);
    new Uint8Array(b).fill(1);
    warmForReads(new Uint8Array(b));
    spare.push(b);
  }
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** A promise whose rejection is handled (it may be abandoned on errors). */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

/**
 * The file being written, for workers that write their packed rows at
 * their place themselves: its path and where each tensor's data starts.
 */
interface Dest {
  path: string;
  offset: (name: string) => number;
}

/** The pieces of one tensor, in write order, created lazily. */
function* tensorPieces(
  t: OutTensor,
  o: CopyOptions,
  dest: Dest,
): Generator<Piece> {
  const src = t.src;
  const where = src.file ?? src.name;
  const [dataName, scalesName] = [t.decls[0].name, t.decls[1]?.name];
  const isFloat = src.dtype === "F32" || src.dtype === "F16" ||
    src.dtype === "BF16";
  let whole: Promise<TensorData> | null = null;
  const readWhole = () => (whole ??= quiet(src.read()));
  const floatBytes = async (): Promise<Uint8Array> => {
    const d = await readWhole();
    if ("data" in d) {
      throw new FormatError(
        where,
        `tensor ${src.name}: unexpected packed data`,
      );
    }
    return d.bytes;
  };
  /** Bytes [a, b) of the float tensor: a range read when the source can. */
  const range = (a: number, b: number): Promise<Uint8Array> =>
    src.readRange
      ? src.readRange(a, new Uint8Array(b - a))
      : floatBytes().then((all) => all.subarray(a, b));

  if (t.kind === "raw") {
    if (!isFloat || !src.readRange) {
      yield {
        name: dataName,
        bytes: quiet(floatBytes()),
        outBytes: t.bytes,
        srcBytes: src.byteLength,
        last: t,
      };
      return;
    }
    const n = src.byteLength;
    if (n === 0) {
      yield {
        name: dataName,
        bytes: Promise.resolve(new Uint8Array(0)),
        outBytes: 0,
        srcBytes: 0,
        last: t,
      };
      return;
    }
    for (let a = 0; a < n; a += o.copyBytes) {
      const b = Math.min(n, a + o.copyBytes);
      yield {
        name: dataName,
        bytes: quiet(src.readRange(a, copyBuffer(o.copyBytes, b - a))),
        outBytes: b - a,
        srcBytes: b - a,
        last: b === n ? t : undefined,
        reuse: "copy",
      };
    }
    return;
  }
  const [rows, cols] = src.shape;
  const kind = t.kind;
  const enc = encoding(kind);
  const [rowData, rowScales] = enc.rowBytes(cols);
  const dataBytes = rows * rowData;
  const scaleBytes = scalesName ? rows * rowScales : 0;
  if (!isFloat) {
    // Already packed: kept as is, or repacked whole (rare: GGUF).
    const both = quiet((async () => {
      const d = await readWhole();
      if (!("data" in d)) {
        throw new FormatError(
          where,
          `tensor ${src.name}: expected packed data`,
        );
      }
      const q = d.dtype === kind ? d : enc.encode(
        encoding(d.dtype).decode(
          { data: bytesOf(d.data), scales: d.scales },
          rows,
          cols,
        ),
        rows,
        cols,
      );
      return {
        data: bytesOf(q.data),
        scales: q.scales ? bytesOf(q.scales) : new Uint8Array(0),
      };
    })());
    yield {
      name: dataName,
      bytes: both.then((x) => x.data),
      outBytes: dataBytes,
      srcBytes: src.byteLength,
      last: scalesName ? undefined : t,
    };
    if (scalesName) {
      yield {
        name: scalesName,
        bytes: both.then((x) => x.scales),
        outBytes: scaleBytes,
        srcBytes: 0,
        last: t,
      };
    }
    return;
  }
  const dtype = src.dtype as FloatDtype;
  const el = dtype === "F32" ? 4 : 2;
  if (src.byteLength !== rows * cols * el) {
    throw new FormatError(
      where,
      `tensor ${src.name}: ${src.byteLength} bytes for ${dtype} ${
        shapeStr(src.shape)
      }`,
    );
  }
  const step = Math.max(1, Math.floor(o.quantBytes / (4 * Math.max(cols, 1))));
  const parts: Promise<Uint16Array | undefined>[] = [];
  for (let r0 = 0; r0 < rows; r0 += step) {
    const r1 = Math.min(rows, r0 + step);
    const [a, b] = [r0 * cols * el, r1 * cols * el];
    // a worker reads its rows itself where the source says where they lie
    const fr = src.fileRange && src.readRange && o.pool.workers > 0
      ? src.fileRange
      : null;
    const q = quiet(
      fr
        ? o.pool.quantizeFile(
          kind,
          dtype,
          { path: fr.path, offset: fr.offset + a, length: b - a },
          r1 - r0,
          cols,
          o.direct
            ? {
              path: dest.path,
              offset: dest.offset(dataName) + r0 * rowData,
            }
            : undefined,
        )
        : (src.readRange ? src.readRange(a, o.pool.buffer(b - a)) : range(a, b))
          .then((bytes) => o.pool.quantize(kind, dtype, bytes, r1 - r0, cols)),
    );
    if (scalesName) parts.push(q.then((x) => x.scales));
    yield {
      name: dataName,
      bytes: q.then((x: PackedChunk) => x.written ?? bytesOf(x.data)),
      outBytes: (r1 - r0) * rowData,
      srcBytes: (r1 - r0) * cols * el,
      last: !scalesName && r1 === rows ? t : undefined,
      reuse: "out",
    };
  }
  if (!scalesName) return;
  yield {
    name: scalesName,
    bytes: quiet(
      Promise.all(parts).then((ps) => {
        const scales = new Uint8Array(
          o.pool.outBuffer(scaleBytes),
          0,
          scaleBytes,
        );
        let off = 0;
        for (const p of ps) {
          const b = bytesOf(p ?? new Uint16Array(0));
          scales.set(b, off);
          off += b.length;
          if (p) o.pool.recycleOutput(p);
        }
        if (off !== scaleBytes) {
          throw new FormatError(
            where,
            `tensor ${src.name}: ${off} bytes of scales, ${scaleBytes} expected`,
          );
        }
        return scales;
      }),
    ),
    outBytes: scaleBytes,
    srcBytes: 0,
    last: t,
    reuse: "out",
  };
}

/**
 * Writes `tensors` to the safetensors file `path` (created or truncated),
 * keeping `window` pieces in flight; returns the open writer (complete, not
 * yet closed or synced) with the file's CRC-32 (hex) and size.
 */
export async function writeTensorFile(
  path: string,
  tensors: OutTensor[],
  metadata: Record<string, string> | undefined,
  o: CopyOptions & { window: number },
): Promise<WrittenFile> {
  const writer = await SafetensorsWriter.create(
    path,
    tensors.flatMap((t) => t.decls),
    metadata,
  );
  const drop = o.dropBehind
    ? DropBehind.open(path, {
      lag: o.dropBehind.lag,
      step: Math.min(16 << 20, Math.max(4096, o.dropBehind.lag ?? 16 << 20)),
    })
    : null;
  try {
    const head = writer.headerBytes();
    let crc = crc32(head);
    let size = head.length;
    const dest: Dest = { path, offset: (name) => writer.dataOffset(name) };
    const gen = (function* () {
      for (const t of tensors) yield* tensorPieces(t, o, dest);
    })();
    const queue: Piece[] = [];
    let done = false;
    const fill = () => {
      while (!done && queue.length < o.window) {
        const n = gen.next();
        if (n.done) done = true;
        else queue.push(n.value);
      }
    };
    fill();
    while (queue.length > 0) {
      const p = queue.shift()!;
      const bytes = await p.bytes;
      fill();
      if (!(bytes instanceof Uint8Array)) {
        // written by a worker at its place
        await writer.skip(p.name, bytes.bytes);
        crc = crc32Combine(crc, bytes.crc, bytes.bytes);
        size += bytes.bytes;
      } else {
        const w = writer.write(p.name, bytes);
        crc = crc32(bytes, crc); // while the write runs on another thread
        await w;
        if (p.reuse === "copy" && spare.length < 8) {
          spare.push(bytes.buffer as ArrayBuffer);
        } else if (p.reuse === "out") o.pool.recycleOutput(bytes);
        size += bytes.length;
      }
      drop?.advance(size);
      o.onPiece?.(p.outBytes, p.srcBytes);
      if (p.last) await o.onTensor?.(p.last);
    }
    await drop?.close();
    return { crc32: crc32Hex(crc), size, writer };
  } catch (e) {
    await drop?.close();
    writer.abort();
    throw e;
  }
}
