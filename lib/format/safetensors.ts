/**
 * A validating safetensors reader that reads tensors by byte range, and a
 * streaming safetensors writer.
 *
 * The format (huggingface/safetensors): an 8-byte little-endian header length
 * `N`, `N` bytes of UTF-8 JSON (starting with `{`, possibly right-padded with
 * spaces), then the data buffer. Tensor `data_offsets` are relative to the
 * start of the data buffer. The reader applies the reference library's rules:
 * known dtypes, `numel × size` equal to the byte range, tensors sorted by
 * offset contiguous from 0 to the end of the file (no overlaps, no holes), a
 * header of at most 100,000,000 bytes, `__metadata__` a string→string map.
 *
 * @module
 */

import { FormatError } from "../errors.ts";
import { type Dtype, isDtype, tensorByteLength } from "./dtype.ts";
import { readFully } from "../_fs.ts";

export { type Dtype, dtypeBits, dtypeBytes, DTYPES, isDtype } from "./dtype.ts";

/** Largest header the reference library accepts (`MAX_HEADER_SIZE`). */
export const MAX_HEADER_SIZE = 100_000_000;

/** Largest shape dimension allowed by the safetensors JSON schema. */
const MAX_DIM = 2 ** 48 - 1;

/**
 * Where one tensor lives in a safetensors file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { TensorInfo } from "./safetensors.ts";
 * const t: TensorInfo = { name: "w", dtype: "F32", shape: [2], offset: 72, byteLength: 8 };
 * assert.deepStrictEqual(t.offset + t.byteLength, 80);
 * ```
 */
export interface TensorInfo {
  /** Tensor name (the JSON key). */
  name: string;
  /** Element type. */
  dtype: Dtype;
  /** Dimensions, row-major; `[]` is a scalar. */
  shape: number[];
  /** Absolute file offset of the first byte (8 + header length + BEGIN). */
  offset: number;
  /** Number of bytes (END − BEGIN). */
  byteLength: number;
}

/** One line, bounded length, for quoting untrusted text in an error. */
function oneLine(s: string, max = 160): string {
  const t = s.replace(/\s+/g, " ");
  return t.length > max ? t.slice(0, max) + "…" : t;
}

function q(name: string): string {
  return JSON.stringify(oneLine(name, 120));
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function errMsg(e: unknown): string {
  return oneLine(e instanceof Error ? e.message : String(e));
}

/**
 * Scans `text` (already valid JSON) for what JSON.parse lets through but the
 * reference parser (serde_json into integer fields) rejects: a key that
 * appears twice in one object (JSON.parse silently keeps the last), and
 * numbers written with a fraction or exponent (`24.0`, `1e3`). Returns the
 * problem, or null.
 */
function scanHeaderText(text: string): string | null {
  const stack: (Set<string> | null)[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // string literal
      const start = i;
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i += 2;
        else if (d === 0x22) break;
        else i++;
      }
      const end = ++i;
      const top = stack[stack.length - 1];
      if (top) {
        let j = i;
        while (
          j < n &&
          (text[j] === " " || text[j] === "\t" || text[j] === "\n" ||
            text[j] === "\r")
        ) j++;
        if (text[j] === ":") {
          const key = JSON.parse(text.slice(start, end)) as string;
          if (top.has(key)) return `header has duplicate key ${q(key)}`;
          top.add(key);
        }
      }
      continue;
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      // number literal
      const start = i;
      while (i < n && /[-+0-9.eE]/.test(text[i])) i++;
      const num = text.slice(start, i);
      if (/[.eE]/.test(num)) {
        return `header has a number with a fraction or exponent (${
          oneLine(num, 40)
        }); shapes and offsets must be integers`;
      }
      continue;
    }
    if (c === 0x7b) stack.push(new Set());
    else if (c === 0x5b) stack.push(null);
    else if (c === 0x7d || c === 0x5d) stack.pop();
    i++;
  }
  return null;
}

/**
 * Parses and validates a safetensors header. `fileSize` is the size of the
 * whole file and `headerLength` the value of its first 8 bytes.
 */
function parseHeader(
  path: string,
  headerBytes: Uint8Array,
  fileSize: number,
): { tensors: TensorInfo[]; metadata: Record<string, string> } {
  const fail = (problem: string): never => {
    throw new FormatError(path, problem);
  };
  const headerLength = headerBytes.length;
  const dataStart = 8 + headerLength;
  if (headerLength === 0) fail("header is empty (header length 0)");
  if (headerBytes[0] !== 0x7b) {
    fail(
      `header does not start with '{' (first byte 0x${
        headerBytes[0].toString(16).padStart(2, "0")
      })`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
      headerBytes,
    );
  } catch {
    return fail("header is not valid UTF-8");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON: ${errMsg(e)}`);
  }
  if (!isPlainObject(json)) return fail("header JSON is not an object");
  const scanned = scanHeaderText(text);
  if (scanned !== null) fail(scanned);

  let metadata: Record<string, string> = {};
  const list: {
    info: TensorInfo;
    begin: number;
    end: number;
    order: number;
  }[] = [];
  let order = 0;
  for (const [name, value] of Object.entries(json)) {
    if (name === "__metadata__") {
      if (!isPlainObject(value)) {
        fail(
          `__metadata__ is not an object of strings (got ${
            value === null
              ? "null"
              : Array.isArray(value)
              ? "an array"
              : typeof value
          })`,
        );
      }
      const m: Record<string, string> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") {
          fail(
            `__metadata__ value for key ${q(k)} is not a string (got ${
              v === null ? "null" : Array.isArray(v) ? "an array" : typeof v
            })`,
          );
        }
        m[k] = v as string;
      }
      metadata = m;
      continue;
    }
    const t = `tensor ${q(name)}`;
    if (!isPlainObject(value)) fail(`${t}: entry is not an object`);
    const entry = value as Record<string, unknown>;
    for (const k of Object.keys(entry)) {
      if (k !== "dtype" && k !== "shape" && k !== "data_offsets") {
        fail(
          `${t}: unexpected key ${q(k)} (allowed: dtype, shape, data_offsets)`,
        );
      }
    }
    for (const k of ["dtype", "shape", "data_offsets"]) {
      if (!(k in entry)) fail(`${t}: missing "${k}"`);
    }
    const { dtype, shape, data_offsets: offs } = entry;
    if (!isDtype(dtype)) {
      fail(
        `${t}: unknown dtype ${
          typeof dtype === "string"
            ? q(dtype)
            : oneLine(JSON.stringify(dtype) ?? String(dtype), 40)
        }`,
      );
    }
    if (!Array.isArray(shape)) fail(`${t}: shape is not an array`);
    for (const d of shape as unknown[]) {
      if (
        typeof d !== "number" || !Number.isInteger(d) || d < 0 || d > MAX_DIM
      ) {
        fail(
          `${t}: shape ${
            oneLine(JSON.stringify(shape), 80)
          } has an entry that is not an integer in 0..2^48-1`,
        );
      }
    }
    if (
      !Array.isArray(offs) || offs.length !== 2 ||
      !offs.every((o) =>
        typeof o === "number" && Number.isSafeInteger(o) && o >= 0
      )
    ) {
      fail(
        `${t}: data_offsets ${
          oneLine(JSON.stringify(offs) ?? "", 80)
        } is not a pair of non-negative integers`,
      );
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) {
      fail(`${t}: data_offsets [${begin}, ${end}] end before they begin`);
    }
    const expected = tensorByteLength(dtype as Dtype, shape as number[]);
    if (expected === null) {
      fail(
        `${t}: shape ${
          JSON.stringify(shape)
        } with dtype ${dtype} does not give a whole number of bytes within 2^53`,
      );
    }
    if (expected !== end - begin) {
      fail(
        `${t}: shape ${
          JSON.stringify(shape)
        } with dtype ${dtype} needs ${expected} bytes but data_offsets [${begin}, ${end}] hold ${
          end - begin
        }`,
      );
    }
    if (dataStart + end > fileSize) {
      fail(
        `${t}: data_offsets [${begin}, ${end}] lie outside the file (data ends at file offset ${
          dataStart + end
        }, file size ${fileSize})`,
      );
    }
    list.push({
      info: Object.freeze({
        name,
        dtype: dtype as Dtype,
        shape: Object.freeze((shape as number[]).slice()) as number[],
        offset: dataStart + begin,
        byteLength: end - begin,
      }),
      begin,
      end,
      order: order++,
    });
  }
  list.sort((a, b) => a.begin - b.begin || a.end - b.end || a.order - b.order);
  let pos = 0;
  let prev: (typeof list)[number] | null = null;
  for (const e of list) {
    if (e.begin < pos) {
      fail(
        `tensor ${
          q(e.info.name)
        } (data_offsets [${e.begin}, ${e.end}]) overlaps tensor ${
          q(prev!.info.name)
        } (data_offsets [${prev!.begin}, ${prev!.end}])`,
      );
    }
    if (e.begin > pos) {
      fail(
        `data buffer has a hole: bytes ${pos}..${e.begin} belong to no tensor (before tensor ${
          q(e.info.name)
        })`,
      );
    }
    pos = e.end;
    prev = e;
  }
  const bufferSize = fileSize - dataStart;
  if (pos !== bufferSize) {
    fail(
      `data buffer not fully covered: tensors end at ${pos} but the buffer holds ${bufferSize} bytes (${
        bufferSize - pos
      } trailing bytes)`,
    );
  }
  return { tensors: list.map((e) => e.info), metadata };
}

/**
 * A safetensors file opened for reading. `open` validates the whole header
 * against the file size; tensors are then read by byte range (seek + read),
 * never by loading the file. Reads on one instance are serialized, so
 * concurrent `read` calls are safe.
 *
 * @example
 * ```ts ignore
 * import { SafetensorsFile } from "./safetensors.ts";
 * const f = await SafetensorsFile.open("model.safetensors");
 * for (const t of f.tensors.values()) console.log(t.name, t.dtype, t.shape);
 * const bytes = await f.read("model.embed_tokens.weight");
 * f.close();
 * ```
 */
export class SafetensorsFile {
  /** Path the file was opened from (used in every error message). */
  readonly path: string;
  /** Size of the file in bytes. */
  readonly size: number;
  /** Absolute file offset where the data buffer starts (8 + header length). */
  readonly dataOffset: number;
  /** Tensors in file (data offset) order. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** The `__metadata__` map (empty when absent). */
  readonly metadata: Readonly<Record<string, string>>;
  #file: Deno.FsFile | null;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    path: string,
    file: Deno.FsFile,
    size: number,
    dataOffset: number,
    tensors: TensorInfo[],
    metadata: Record<string, string>,
  ) {
    this.path = path;
    this.#file = file;
    this.size = size;
    this.dataOffset = dataOffset;
    this.tensors = new Map(tensors.map((t) => [t.name, t]));
    this.metadata = Object.freeze(metadata);
  }

  /**
   * Opens and validates `path`.
   *
   * @throws {FormatError} when the file is missing, truncated or malformed.
   * @example
   * ```ts ignore
   * import { SafetensorsFile } from "./safetensors.ts";
   * const f = await SafetensorsFile.open("model.safetensors");
   * console.log(f.tensors.size, f.metadata);
   * f.close();
   * ```
   */
  static async open(path: string): Promise<SafetensorsFile> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new FormatError(path, "no such file");
      }
      throw new FormatError(path, `cannot open: ${errMsg(e)}`, { cause: e });
    }
    try {
      const stat = await file.stat();
      if (!stat.isFile) throw new FormatError(path, "not a regular file");
      const size = stat.size;
      if (size < 8) {
        throw new FormatError(
          path,
          `file is ${size} bytes, too short for the 8-byte header length`,
        );
      }
      const lenBytes = new Uint8Array(8);
      await readFully(path, file, 0, lenBytes);
      const n = new DataView(lenBytes.buffer).getBigUint64(0, true);
      if (n > BigInt(size - 8)) {
        throw new FormatError(
          path,
          `header length ${n} exceeds file size ${size} (only ${
            size - 8
          } bytes follow the length field)`,
        );
      }
      if (n > BigInt(MAX_HEADER_SIZE)) {
        throw new FormatError(
          path,
          `header length ${n} exceeds the maximum of ${MAX_HEADER_SIZE} bytes`,
        );
      }
      const headerLength = Number(n);
      const header = new Uint8Array(headerLength);
      await readFully(path, file, 8, header);
      const { tensors, metadata } = parseHeader(path, header, size);
      return new SafetensorsFile(
        path,
        file,
        size,
        8 + headerLength,
        tensors,
        metadata,
      );
    } catch (e) {
      file.close();
      if (e instanceof FormatError) throw e;
      throw new FormatError(path, `cannot read: ${errMsg(e)}`, { cause: e });
    }
  }

  /**
   * The tensor called `name`.
   *
   * @throws {FormatError} when the file has no such tensor.
   * @example
   * ```ts ignore
   * import { SafetensorsFile } from "./safetensors.ts";
   * const f = await SafetensorsFile.open("model.safetensors");
   * console.log(f.info("lm_head.weight").shape);
   * ```
   */
  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new FormatError(this.path, `no tensor named ${q(name)}`);
    return t;
  }

  /**
   * Reads the bytes of tensor `name` (little-endian, row-major). When `into`
   * is given it must hold at least the tensor's byte length; the result is
   * then a view of `into`.
   *
   * @example
   * ```ts ignore
   * import { SafetensorsFile } from "./safetensors.ts";
   * const f = await SafetensorsFile.open("model.safetensors");
   * const raw = await f.read("model.norm.weight");
   * ```
   */
  read(name: string, into?: Uint8Array): Promise<Uint8Array> {
    const t = this.info(name);
    let buf: Uint8Array;
    if (into) {
      if (into.length < t.byteLength) {
        return Promise.reject(
          new FormatError(
            this.path,
            `buffer of ${into.length} bytes is too small for tensor ${
              q(name)
            } (${t.byteLength} bytes)`,
          ),
        );
      }
      buf = into.subarray(0, t.byteLength);
    } else {
      buf = new Uint8Array(t.byteLength);
    }
    return this.readRange(t.offset, buf);
  }

  /**
   * Fills `into` with the raw file bytes starting at absolute `offset`.
   *
   * @throws {FormatError} when the range is outside the file or the file was
   * truncated after opening.
   * @example
   * ```ts ignore
   * import { SafetensorsFile } from "./safetensors.ts";
   * const f = await SafetensorsFile.open("model.safetensors");
   * const first8 = await f.readRange(0, new Uint8Array(8));
   * ```
   */
  readRange(offset: number, into: Uint8Array): Promise<Uint8Array> {
    if (
      !Number.isSafeInteger(offset) || offset < 0 ||
      offset + into.length > this.size
    ) {
      return Promise.reject(
        new FormatError(
          this.path,
          `read of ${into.length} bytes at offset ${offset} is outside the file (size ${this.size})`,
        ),
      );
    }
    const run = async (): Promise<Uint8Array> => {
      const file = this.#file;
      if (!file) throw new FormatError(this.path, "read after close");
      await readFully(this.path, file, offset, into);
      return into;
    };
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => {});
    return p;
  }

  /**
   * Closes the file. Further reads fail.
   *
   * @example
   * ```ts ignore
   * import { SafetensorsFile } from "./safetensors.ts";
   * const f = await SafetensorsFile.open("model.safetensors");
   * f.close();
   * ```
   */
  close(): void {
    const f = this.#file;
    this.#file = null;
    if (f) {
      try {
        f.close();
      } catch {
        // already closed
      }
    }
  }
}

async function writeFully(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}

/**
 * A tensor declared to {@link SafetensorsWriter.create}.
 *
 * @example
 * ```ts
 * import type { TensorDecl } from "./safetensors.ts";
 * const d: TensorDecl = { name: "w", dtype: "F16", shape: [4, 8] };
 * console.log(d.name);
 * ```
 */
export interface TensorDecl {
  /** Tensor name. */
  name: string;
  /** Element type. */
  dtype: Dtype;
  /** Dimensions. */
  shape: number[];
}

/**
 * Builds the header bytes (JSON padded with spaces to a multiple of 8) for
 * tensors laid out contiguously in the given order.
 */
function buildHeader(
  path: string,
  tensors: readonly TensorDecl[],
  metadata: Record<string, string> | undefined,
): { header: Uint8Array; sizes: number[] } {
  const parts: string[] = [];
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) {
      throw new FormatError(path, "metadata is not an object of strings");
    }
    const m: string[] = [];
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new FormatError(
          path,
          `metadata value for key ${q(k)} is not a string`,
        );
      }
      m.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    if (m.length) parts.push(`"__metadata__":{${m.join(",")}}`);
  }
  const seen = new Set<string>();
  const sizes: number[] = [];
  let pos = 0;
  for (const t of tensors) {
    const name = t.name;
    if (typeof name !== "string") {
      throw new FormatError(path, "tensor name is not a string");
    }
    if (name === "__metadata__") {
      throw new FormatError(path, `tensor name "__metadata__" is reserved`);
    }
    if (seen.has(name)) {
      throw new FormatError(path, `tensor ${q(name)} declared twice`);
    }
    seen.add(name);
    if (!isDtype(t.dtype)) {
      throw new FormatError(
        path,
        `tensor ${q(name)}: unknown dtype ${q(String(t.dtype))}`,
      );
    }
    if (
      !Array.isArray(t.shape) ||
      t.shape.some((d) => !Number.isSafeInteger(d) || d < 0 || d > MAX_DIM)
    ) {
      throw new FormatError(
        path,
        `tensor ${q(name)}: invalid shape ${
          oneLine(JSON.stringify(t.shape) ?? "", 80)
        }`,
      );
    }
    const bytes = tensorByteLength(t.dtype, t.shape);
    if (bytes === null) {
      throw new FormatError(
        path,
        `tensor ${q(name)}: shape ${
          JSON.stringify(t.shape)
        } with dtype ${t.dtype} is not a whole number of bytes`,
      );
    }
    sizes.push(bytes);
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${
        t.shape.join(",")
      }],"data_offsets":[${pos},${pos + bytes}]}`,
    );
    pos += bytes;
    if (!Number.isSafeInteger(pos)) {
      throw new FormatError(path, "total tensor size exceeds 2^53 bytes");
    }
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_SIZE) {
    throw new FormatError(
      path,
      `header of ${padded} bytes exceeds the maximum of ${MAX_HEADER_SIZE}`,
    );
  }
  const header = new Uint8Array(8 + padded);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  header.fill(0x20, 8 + json.length);
  return { header, sizes };
}

/**
 * Streams a safetensors file to disk: the header is written from the declared
 * tensors (in declared order, contiguous, header padded with spaces to a
 * multiple of 8), then tensor data is written in the declared order, each
 * tensor in one or more chunks. `close()` checks that every declared byte was
 * written. The file is written in place; write to a temporary name and rename
 * for atomicity.
 *
 * @example
 * ```ts
 * import { SafetensorsWriter } from "./safetensors.ts";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * const w = await SafetensorsWriter.create(path, [
 *   { name: "a", dtype: "F32", shape: [2] },
 *   { name: "b", dtype: "U8", shape: [3] },
 * ], { format: "pt" });
 * await w.write("a", new Uint8Array(new Float32Array([1, 2]).buffer));
 * await w.write("b", new Uint8Array([1]));
 * await w.write("b", new Uint8Array([2, 3])); // chunks of the same tensor
 * await w.close();
 * await Deno.remove(path);
 * ```
 */
export class SafetensorsWriter {
  /** Path being written. */
  readonly path: string;
  #file: Deno.FsFile | null;
  #decls: TensorDecl[];
  #sizes: number[];
  /** Absolute file offset of each tensor's data. */
  #starts: number[];
  #header: Uint8Array;
  #index = 0;
  #written = 0;
  #failed = false;

  private constructor(
    path: string,
    file: Deno.FsFile,
    decls: TensorDecl[],
    sizes: number[],
    header: Uint8Array,
  ) {
    this.path = path;
    this.#file = file;
    this.#decls = decls;
    this.#sizes = sizes;
    this.#header = header;
    let at = header.length;
    this.#starts = sizes.map((n) => (at += n) - n);
    this.#skipEmpty();
  }

  /**
   * The bytes this writer wrote first: the 8-byte header length and the
   * header (a copy), e.g. to start a checksum of the file.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SafetensorsWriter } from "./safetensors.ts";
   * const path = await Deno.makeTempFile();
   * const w = await SafetensorsWriter.create(path, []);
   * await w.close();
   * assert.deepEqual(w.headerBytes(), await Deno.readFile(path));
   * await Deno.remove(path);
   * ```
   */
  headerBytes(): Uint8Array {
    return this.#header.slice();
  }

  /**
   * The absolute file offset where the data of tensor `name` starts (for
   * writers of its bytes that write at positions of their own, see
   * {@link SafetensorsWriter.skip}).
   *
   * @throws {FormatError} for an undeclared name.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SafetensorsWriter } from "./safetensors.ts";
   * const path = await Deno.makeTempFile();
   * const w = await SafetensorsWriter.create(path, [
   *   { name: "a", dtype: "U8", shape: [3] },
   *   { name: "b", dtype: "U8", shape: [2] },
   * ]);
   * assert.equal(w.dataOffset("b") - w.dataOffset("a"), 3);
   * w.abort();
   * await Deno.remove(path);
   * ```
   */
  dataOffset(name: string): number {
    const i = this.#decls.findIndex((d) => d.name === name);
    if (i < 0) {
      throw new FormatError(this.path, `no tensor ${q(name)} declared`);
    }
    return this.#starts[i];
  }

  /**
   * Creates (or truncates) `path` and writes the header for `tensors`.
   *
   * @throws {FormatError} for duplicate names, unknown dtypes, invalid shapes
   * or non-string metadata.
   * @example
   * ```ts
   * import { SafetensorsWriter } from "./safetensors.ts";
   * const path = await Deno.makeTempFile();
   * const w = await SafetensorsWriter.create(path, [{ name: "x", dtype: "F16", shape: [0] }]);
   * await w.close();
   * await Deno.remove(path);
   * ```
   */
  static async create(
    path: string,
    tensors: TensorDecl[],
    metadata?: Record<string, string>,
  ): Promise<SafetensorsWriter> {
    const decls = tensors.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape.slice(),
    }));
    const { header, sizes } = buildHeader(path, decls, metadata);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, {
        write: true,
        create: true,
        truncate: true,
      });
    } catch (e) {
      throw new FormatError(path, `cannot create: ${errMsg(e)}`, { cause: e });
    }
    try {
      await writeFully(file, header);
    } catch (e) {
      file.close();
      throw new FormatError(path, `cannot write: ${errMsg(e)}`, { cause: e });
    }
    return new SafetensorsWriter(path, file, decls, sizes, header);
  }

  #skipEmpty(): void {
    while (
      this.#index < this.#decls.length &&
      this.#written === this.#sizes[this.#index]
    ) {
      this.#index++;
      this.#written = 0;
    }
  }

  /**
   * Appends `bytes` to tensor `name`, which must be the first declared tensor
   * not yet complete. Call repeatedly to write a tensor in chunks.
   *
   * @throws {FormatError} on out-of-order writes, undeclared names, or more
   * bytes than declared.
   * @example
   * ```ts
   * import { SafetensorsWriter } from "./safetensors.ts";
   * const path = await Deno.makeTempFile();
   * const w = await SafetensorsWriter.create(path, [{ name: "x", dtype: "U8", shape: [2] }]);
   * await w.write("x", new Uint8Array([7, 8]));
   * await w.close();
   * await Deno.remove(path);
   * ```
   */
  async write(name: string, bytes: Uint8Array): Promise<void> {
    const file = this.#check(name, bytes.length);
    if (!file) return;
    try {
      await writeFully(file, bytes);
    } catch (e) {
      this.#failed = true;
      throw new FormatError(this.path, `cannot write: ${errMsg(e)}`, {
        cause: e,
      });
    }
    this.#written += bytes.length;
    this.#skipEmpty();
  }

  /**
   * Counts the next `length` bytes of tensor `name` as written by someone
   * else (at their place, {@link SafetensorsWriter.dataOffset}), with the
   * checks of {@link SafetensorsWriter.write}: this writer goes on after them.
   * The caller makes sure those writes have finished before
   * {@link SafetensorsWriter.close}.
   *
   * @throws {FormatError} as {@link SafetensorsWriter.write} does.
   * @example
   * ```ts
   * import { SafetensorsWriter } from "./safetensors.ts";
   * const path = await Deno.makeTempFile();
   * const w = await SafetensorsWriter.create(path, [{ name: "x", dtype: "U8", shape: [3] }]);
   * const f = await Deno.open(path, { write: true });
   * await f.seek(w.dataOffset("x"), Deno.SeekMode.Start);
   * await f.write(new Uint8Array([1, 2]));
   * f.close();
   * await w.skip("x", 2);
   * await w.write("x", new Uint8Array([3]));
   * await w.close();
   * await Deno.remove(path);
   * ```
   */
  async skip(name: string, length: number): Promise<void> {
    const file = this.#check(name, length);
    if (!file) return;
    try {
      await file.seek(length, Deno.SeekMode.Current);
    } catch (e) {
      this.#failed = true;
      throw new FormatError(this.path, `cannot seek: ${errMsg(e)}`, {
        cause: e,
      });
    }
    this.#written += length;
    this.#skipEmpty();
  }

  /**
   * Checks that `length` bytes may go to `name` now; the open file, or null
   * for nothing to write.
   */
  #check(name: string, length: number): Deno.FsFile | null {
    const file = this.#file;
    if (!file) {
      throw new FormatError(this.path, `write to ${q(name)} after close`);
    }
    if (this.#failed) {
      throw new FormatError(
        this.path,
        `write to ${q(name)} after an earlier write failed`,
      );
    }
    const i = this.#index;
    if (length === 0 && this.#decls.some((d) => d.name === name)) return null;
    if (i >= this.#decls.length) {
      throw new FormatError(
        this.path,
        `write to ${q(name)}: every declared tensor is already complete`,
      );
    }
    const cur = this.#decls[i];
    if (cur.name !== name) {
      const j = this.#decls.findIndex((d) => d.name === name);
      if (j < 0) {
        throw new FormatError(
          this.path,
          `write to undeclared tensor ${q(name)}`,
        );
      }
      throw new FormatError(
        this.path,
        `write to ${q(name)} out of order: tensor ${q(cur.name)} (#${
          i + 1
        } of ${this.#decls.length}) has ${this.#written} of ${
          this.#sizes[i]
        } bytes`,
      );
    }
    const size = this.#sizes[i];
    if (this.#written + length > size) {
      throw new FormatError(
        this.path,
        `write of ${length} bytes to ${
          q(name)
        } overflows its ${size} bytes (${this.#written} already written)`,
      );
    }
    return file;
  }

  /**
   * Closes the file after checking that every declared byte was written.
   * With `{ sync: true }` the data is flushed to disk (fsync) first, e.g.
   * before renaming a temporary file into place.
   *
   * @throws {FormatError} when tensor data is missing (the file is closed
   * anyway and is not a valid safetensors file).
   * @example
   * ```ts
   * import { SafetensorsWriter } from "./safetensors.ts";
   * const path = await Deno.makeTempFile();
   * const w = await SafetensorsWriter.create(path, []);
   * await w.close({ sync: true });
   * await Deno.remove(path);
   * ```
   */
  async close(opts: { sync?: boolean } = {}): Promise<void> {
    const file = this.#file;
    this.#file = null;
    if (!file) return;
    const complete = !this.#failed && this.#index >= this.#decls.length;
    try {
      if (complete && opts.sync) await file.sync();
    } catch (e) {
      throw new FormatError(this.path, `cannot sync: ${errMsg(e)}`, {
        cause: e,
      });
    } finally {
      file.close();
    }
    if (this.#failed) {
      throw new FormatError(
        this.path,
        "closed after a failed write; the file is incomplete",
      );
    }
    if (!complete) {
      const i = this.#index;
      throw new FormatError(
        this.path,
        `closed before all tensor data was written: ${
          q(this.#decls[i].name)
        } has ${this.#written} of ${this.#sizes[i]} bytes, ${
          this.#decls.length - i - 1
        } later tensor(s) not started`,
      );
    }
  }

  /**
   * Closes the file without checking completeness (for error paths).
   *
   * @example
   * ```ts
   * import { SafetensorsWriter } from "./safetensors.ts";
   * const path = await Deno.makeTempFile();
   * const w = await SafetensorsWriter.create(path, [{ name: "x", dtype: "U8", shape: [2] }]);
   * w.abort();
   * await Deno.remove(path);
   * ```
   */
  abort(): void {
    const file = this.#file;
    this.#file = null;
    if (file) {
      try {
        file.close();
      } catch {
        // ignore
      }
    }
  }
}
