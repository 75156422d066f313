/**
 * GGUF v2/v3 reader (llama.cpp's model file format) with validate-before-trust
 * parsing: every count, length, type and tensor range is checked against the
 * file size before anything is allocated, and every violation is a
 * {@link FormatError} naming the file and the problem.
 *
 * Layout (little-endian): magic `GGUF`, u32 version, u64 tensor_count, u64
 * metadata_kv_count, the key/value pairs, the tensor infos, zero padding up to
 * `general.alignment` (default 32), then the tensor data. Strings are a u64
 * byte length and UTF-8 bytes; arrays are a u32 element type, a u64 element
 * count and the packed elements. Tensor dims are stored fastest-varying first
 * (`ne0` = row length), so the row-major shape is the dims reversed.
 *
 * {@link openGgufSource} (the model source for `split`/`run`) lives in
 * `lib/split/source_gguf.ts`.
 *
 * @module
 */

import { FormatError, UnsupportedError } from "../errors.ts";
import { readFully } from "../_fs.ts";

/** GGUF metadata value type ids (`gguf_type`). */
export const GGUF_VALUE_TYPES = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

/** Fixed byte size of each scalar value type (string and array are variable). */
const VALUE_SIZE: Record<number, number> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  10: 8,
  11: 8,
  12: 8,
};

/** One ggml tensor type: name, elements per block, bytes per block. */
export interface GgmlType {
  /** ggml type id (`enum ggml_type`). */
  readonly id: number;
  /** Name as llama.cpp prints it (`F32`, `Q4_0`, ...). */
  readonly name: string;
  /** Elements per block (1 for plain floats). */
  readonly blockElems: number;
  /** Bytes per block (from ggml-common.h's structs). */
  readonly blockBytes: number;
}

const TYPE_ROWS: [number, string, number, number][] = [
  [0, "F32", 1, 4],
  [1, "F16", 1, 2],
  [2, "Q4_0", 32, 18],
  [3, "Q4_1", 32, 20],
  [6, "Q5_0", 32, 22],
  [7, "Q5_1", 32, 24],
  [8, "Q8_0", 32, 34],
  [9, "Q8_1", 32, 36],
  [10, "Q2_K", 256, 84],
  [11, "Q3_K", 256, 110],
  [12, "Q4_K", 256, 144],
  [13, "Q5_K", 256, 176],
  [14, "Q6_K", 256, 210],
  [15, "Q8_K", 256, 292],
  [16, "IQ2_XXS", 256, 66],
  [17, "IQ2_XS", 256, 74],
  [18, "IQ3_XXS", 256, 98],
  [19, "IQ1_S", 256, 50],
  [20, "IQ4_NL", 32, 18],
  [21, "IQ3_S", 256, 110],
  [22, "IQ2_S", 256, 82],
  [23, "IQ4_XS", 256, 136],
  [24, "I8", 1, 1],
  [25, "I16", 1, 2],
  [26, "I32", 1, 4],
  [27, "I64", 1, 8],
  [28, "F64", 1, 8],
  [29, "IQ1_M", 256, 56],
  [30, "BF16", 1, 2],
  [34, "TQ1_0", 256, 54],
  [35, "TQ2_0", 256, 66],
];

/**
 * The ggml tensor type table, by id.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GGML_TYPES } from "./gguf.ts";
 * assert.deepStrictEqual(GGML_TYPES.get(8), { id: 8, name: "Q8_0", blockElems: 32, blockBytes: 34 });
 * ```
 */
export const GGML_TYPES: ReadonlyMap<number, GgmlType> = new Map(
  TYPE_ROWS.map((
    [id, name, blockElems, blockBytes],
  ) => [id, Object.freeze({ id, name, blockElems, blockBytes })]),
);

/** A decoded metadata value. Arrays of numbers keep their width as typed arrays. */
export type GgufValue =
  | number
  | bigint
  | boolean
  | string
  | string[]
  | boolean[]
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array;

/** One metadata entry: its GGUF value type (and element type for arrays) and value. */
export interface GgufEntry {
  /** GGUF value type id (see {@link GGUF_VALUE_TYPES}). */
  readonly type: number;
  /** For arrays: the element type id. */
  readonly elemType?: number;
  /** The value. 64-bit integers are numbers when safe, else bigints. */
  readonly value: GgufValue;
}

/** One tensor of a GGUF file. */
export interface GgufTensorInfo {
  /** GGUF tensor name (`blk.0.attn_q.weight`). */
  readonly name: string;
  /** Dims as stored: `ne0` (row length) first. */
  readonly dims: readonly number[];
  /** Row-major shape (dims reversed), as PyTorch / Hugging Face see it. */
  readonly shape: readonly number[];
  /** ggml type. */
  readonly type: GgmlType;
  /** Absolute byte offset in the file. */
  readonly offset: number;
  /** Byte length of the data. */
  readonly byteLength: number;
}

class NeedMore extends Error {}

const MAX_NAME = 64; // GGML_MAX_NAME: names must be shorter
const MAX_KEY = 65535;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Sync cursor over a prefix of the file; throws NeedMore when the window is too short. */
class Cursor {
  #view: DataView;
  #bytes: Uint8Array;
  pos = 0;
  constructor(
    bytes: Uint8Array,
    readonly fileSize: number,
    readonly file: string,
  ) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n: number, what: string): void {
    if (this.pos + n > this.fileSize) {
      throw new FormatError(
        this.file,
        `${what} at byte ${this.pos} runs past the end of the file (${this.fileSize} bytes)`,
      );
    }
    if (this.pos + n > this.#bytes.byteLength) throw new NeedMore();
  }
  remaining(): number {
    return this.fileSize - this.pos;
  }
  u8(what: string): number {
    this.need(1, what);
    return this.#view.getUint8(this.pos++);
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.#view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  /** u64 as a number; FormatError when it exceeds 2^53. */
  u64(what: string): number {
    this.need(8, what);
    const v = this.#view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new FormatError(this.file, `${what} ${v} is too large`);
    }
    return Number(v);
  }
  string(what: string, maxLen = Infinity): string {
    const len = this.u64(`${what} length`);
    if (len > this.remaining()) {
      throw new FormatError(
        this.file,
        `${what} length ${len} at byte ${
          this.pos - 8
        } runs past the end of the file`,
      );
    }
    if (len > maxLen) {
      throw new FormatError(
        this.file,
        `${what} length ${len} exceeds ${maxLen}`,
      );
    }
    this.need(len, what);
    const start = this.pos;
    this.pos += len;
    try {
      return utf8.decode(this.#bytes.subarray(start, start + len));
    } catch {
      throw new FormatError(
        this.file,
        `${what} at byte ${start} is not valid UTF-8`,
      );
    }
  }
  scalar(type: number, what: string): number | bigint | boolean {
    const size = VALUE_SIZE[type];
    this.need(size, what);
    const v = this.#view, p = this.pos;
    this.pos += size;
    switch (type) {
      case 0:
        return v.getUint8(p);
      case 1:
        return v.getInt8(p);
      case 2:
        return v.getUint16(p, true);
      case 3:
        return v.getInt16(p, true);
      case 4:
        return v.getUint32(p, true);
      case 5:
        return v.getInt32(p, true);
      case 6:
        return v.getFloat32(p, true);
      case 7: {
        const b = v.getUint8(p);
        if (b > 1) {
          throw new FormatError(
            this.file,
            `${what}: bool byte ${b} at ${p} is not 0 or 1`,
          );
        }
        return b === 1;
      }
      case 10:
        return safe(v.getBigUint64(p, true));
      case 11:
        return safe(v.getBigInt64(p, true));
      default:
        return v.getFloat64(p, true);
    }
  }
  /** Copy of `n` elements of a numeric type as a typed array. */
  numericArray(type: number, n: number, what: string): GgufValue {
    const size = VALUE_SIZE[type];
    this.need(n * size, what);
    const copy = this.#bytes.slice(this.pos, this.pos + n * size);
    this.pos += n * size;
    const b = copy.buffer;
    switch (type) {
      case 0:
        return copy;
      case 1:
        return new Int8Array(b);
      case 2:
        return new Uint16Array(b);
      case 3:
        return new Int16Array(b);
      case 4:
        return new Uint32Array(b);
      case 5:
        return new Int32Array(b);
      case 6:
        return new Float32Array(b);
      case 10:
        return new BigUint64Array(b);
      case 11:
        return new BigInt64Array(b);
      default:
        return new Float64Array(b);
    }
  }
}

function safe(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) &&
      v >= BigInt(Number.MIN_SAFE_INTEGER)
    ? Number(v)
    : v;
}

function typeName(t: number): string {
  return Object.entries(GGUF_VALUE_TYPES).find(([, id]) => id === t)?.[0] ??
    String(t);
}

interface Parsed {
  version: number;
  metadata: Map<string, GgufEntry>;
  tensors: Map<string, GgufTensorInfo>;
  alignment: number;
  dataStart: number;
}

function parse(c: Cursor): Parsed {
  const file = c.file;
  if (c.fileSize < 24) {
    throw new FormatError(
      file,
      `file is ${c.fileSize} bytes, too short for a GGUF header (24)`,
    );
  }
  c.need(4, "magic");
  const m = [c.u8("magic"), c.u8("magic"), c.u8("magic"), c.u8("magic")];
  if (String.fromCharCode(...m) !== "GGUF") {
    throw new FormatError(
      file,
      `bad magic ${
        m.map((x) => x.toString(16).padStart(2, "0")).join(" ")
      } (expected "GGUF")`,
    );
  }
  const version = c.u32("version");
  if ((version & 0xffff) === 0 && version !== 0) {
    throw new UnsupportedError(file, "big-endian GGUF files are not supported");
  }
  if (version === 1) {
    throw new FormatError(
      file,
      "GGUF version 1 is no longer supported (need 2 or 3)",
    );
  }
  if (version !== 2 && version !== 3) {
    throw new FormatError(
      file,
      `unknown GGUF version ${version} (need 2 or 3)`,
    );
  }
  const tensorCount = c.u64("tensor count");
  const kvCount = c.u64("metadata count");
  // Minimum encodings: a KV is >= 8 (key length) + 4 (type) + 1 bytes; a tensor info >= 8 + 4 + 4 + 8.
  if (kvCount * 13 > c.remaining()) {
    throw new FormatError(
      file,
      `metadata count ${kvCount} cannot fit in the ${c.fileSize}-byte file`,
    );
  }
  if (tensorCount * 24 > c.remaining() - kvCount * 13) {
    throw new FormatError(
      file,
      `tensor count ${tensorCount} cannot fit in the ${c.fileSize}-byte file`,
    );
  }
  const metadata = new Map<string, GgufEntry>();
  for (let i = 0; i < kvCount; i++) {
    const key = c.string(`metadata key #${i}`, MAX_KEY);
    if (metadata.has(key)) {
      throw new FormatError(
        file,
        `duplicate metadata key ${JSON.stringify(key)}`,
      );
    }
    const type = c.u32(`type of ${key}`);
    metadata.set(key, readValue(c, type, key));
  }
  let alignment = 32;
  const al = metadata.get("general.alignment");
  if (al) {
    if (al.type !== GGUF_VALUE_TYPES.UINT32) {
      throw new FormatError(
        file,
        `general.alignment has type ${typeName(al.type)} (expected UINT32)`,
      );
    }
    alignment = al.value as number;
    if (alignment === 0 || (alignment & (alignment - 1)) !== 0) {
      throw new FormatError(
        file,
        `general.alignment ${alignment} is not a power of two`,
      );
    }
  }
  const infos: {
    name: string;
    dims: number[];
    type: GgmlType;
    rel: number;
    byteLength: number;
  }[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = c.string(`tensor name #${i}`, MAX_NAME - 1);
    if (seen.has(name)) {
      throw new FormatError(
        file,
        `duplicate tensor name ${JSON.stringify(name)}`,
      );
    }
    seen.add(name);
    const nDims = c.u32(`n_dims of ${name}`);
    if (nDims > 4) {
      throw new FormatError(
        file,
        `tensor ${name} has ${nDims} dims (at most 4)`,
      );
    }
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(c.u64(`dim ${d} of ${name}`));
    const typeId = c.u32(`type of ${name}`);
    const type = GGML_TYPES.get(typeId);
    if (!type) {
      throw new FormatError(
        file,
        `tensor ${name} has unknown ggml type ${typeId}`,
      );
    }
    const rel = c.u64(`offset of ${name}`);
    let numel = 1n;
    for (const d of dims) numel *= BigInt(d);
    const ne0 = dims[0] ?? 1;
    if (ne0 % type.blockElems !== 0) {
      throw new FormatError(
        file,
        `tensor ${name}: row length ${ne0} is not a multiple of the ${type.name} block size ${type.blockElems}`,
      );
    }
    const bytes = numel / BigInt(type.blockElems) * BigInt(type.blockBytes);
    if (bytes > BigInt(c.fileSize)) {
      throw new FormatError(
        file,
        `tensor ${name} needs ${bytes} bytes, more than the ${c.fileSize}-byte file`,
      );
    }
    infos.push({ name, dims, type, rel, byteLength: Number(bytes) });
  }
  const dataStart = alignUp(c.pos, alignment);
  const tensors = new Map<string, GgufTensorInfo>();
  let expected = 0;
  for (const t of infos) {
    if (t.rel % alignment !== 0) {
      throw new FormatError(
        file,
        `tensor ${t.name}: offset ${t.rel} is not a multiple of the alignment ${alignment}`,
      );
    }
    if (t.rel !== expected) {
      throw new FormatError(
        file,
        `tensor ${t.name}: offset ${t.rel} should be ${expected} (data must follow tensor-info order without gaps)`,
      );
    }
    const offset = dataStart + t.rel;
    if (offset + t.byteLength > c.fileSize) {
      throw new FormatError(
        file,
        `tensor ${t.name}: bytes ${offset}..${
          offset + t.byteLength
        } run past the end of the file (${c.fileSize} bytes)`,
      );
    }
    expected = alignUp(t.rel + t.byteLength, alignment);
    tensors.set(
      t.name,
      Object.freeze({
        name: t.name,
        dims: Object.freeze(t.dims),
        shape: Object.freeze(t.dims.slice().reverse()),
        type: t.type,
        offset,
        byteLength: t.byteLength,
      }),
    );
  }
  if (infos.length > 0 && dataStart > c.fileSize) {
    throw new FormatError(
      file,
      `tensor data start ${dataStart} is past the end of the file`,
    );
  }
  return { version, metadata, tensors, alignment, dataStart };
}

function readValue(c: Cursor, type: number, key: string): GgufEntry {
  if (type === GGUF_VALUE_TYPES.STRING) {
    return { type, value: c.string(`value of ${key}`) };
  }
  if (type === GGUF_VALUE_TYPES.ARRAY) {
    const elemType = c.u32(`element type of ${key}`);
    if (elemType === GGUF_VALUE_TYPES.ARRAY) {
      throw new UnsupportedError(
        c.file,
        `metadata ${key}: nested arrays are not supported`,
      );
    }
    if (elemType !== GGUF_VALUE_TYPES.STRING && !(elemType in VALUE_SIZE)) {
      throw new FormatError(
        c.file,
        `metadata ${key}: unknown array element type ${elemType}`,
      );
    }
    const n = c.u64(`element count of ${key}`);
    const minSize = elemType === GGUF_VALUE_TYPES.STRING
      ? 8
      : VALUE_SIZE[elemType];
    if (n * minSize > c.remaining()) {
      throw new FormatError(
        c.file,
        `metadata ${key}: array of ${n} elements cannot fit in the rest of the file`,
      );
    }
    if (elemType === GGUF_VALUE_TYPES.STRING) {
      const out: string[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = c.string(`${key}[${i}]`);
      return { type, elemType, value: out };
    }
    if (elemType === GGUF_VALUE_TYPES.BOOL) {
      const out: boolean[] = new Array(n);
      for (let i = 0; i < n; i++) {
        out[i] = c.scalar(elemType, `${key}[${i}]`) as boolean;
      }
      return { type, elemType, value: out };
    }
    return { type, elemType, value: c.numericArray(elemType, n, key) };
  }
  if (!(type in VALUE_SIZE)) {
    throw new FormatError(
      c.file,
      `metadata ${key}: unknown value type ${type}`,
    );
  }
  return { type, value: c.scalar(type, key) };
}

function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

/**
 * A validated GGUF file. Tensor data is read on demand by byte range.
 *
 * @example
 * ```ts ignore
 * import { GgufFile } from "./gguf.ts";
 * const g = await GgufFile.open("../shared/models/gguf/stories260K.gguf");
 * console.log(g.getString("general.architecture"), g.tensors.size); // "llama" 48
 * const bytes = await g.read("token_embd.weight");
 * g.close();
 * ```
 */
export class GgufFile {
  /** Path the file was opened from. */
  readonly path: string;
  /** GGUF version (2 or 3). */
  readonly version: number;
  /** Metadata in file order. */
  readonly metadata: ReadonlyMap<string, GgufEntry>;
  /** Tensors in file order. */
  readonly tensors: ReadonlyMap<string, GgufTensorInfo>;
  /** Data alignment (`general.alignment`, default 32). */
  readonly alignment: number;
  /** Absolute offset where tensor data starts. */
  readonly dataStart: number;
  /** File size in bytes. */
  readonly size: number;
  #file: Deno.FsFile;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    path: string,
    file: Deno.FsFile,
    size: number,
    p: Parsed,
  ) {
    this.path = path;
    this.#file = file;
    this.size = size;
    this.version = p.version;
    this.metadata = p.metadata;
    this.tensors = p.tensors;
    this.alignment = p.alignment;
    this.dataStart = p.dataStart;
  }

  /**
   * Opens and validates `path`; reads only the header (in growing windows).
   *
   * @throws {FormatError} for any malformed header, {@link UnsupportedError} for big-endian files.
   * @example
   * ```ts ignore
   * import { GgufFile } from "./gguf.ts";
   * const g = await GgufFile.open("model.gguf");
   * g.close();
   * ```
   */
  static async open(path: string): Promise<GgufFile> {
    const file = await Deno.open(path, { read: true });
    try {
      const size = (await file.stat()).size;
      let window = Math.min(size, 1 << 20);
      for (;;) {
        const buf = new Uint8Array(window);
        await readFully(path, file, 0, buf);
        try {
          return new GgufFile(
            path,
            file,
            size,
            parse(new Cursor(buf, size, path)),
          );
        } catch (e) {
          if (!(e instanceof NeedMore)) throw e;
          window = Math.min(size, window * 4);
        }
      }
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /**
   * Parses a GGUF image held in memory (tests, fuzzing).
   *
   * @example
   * ```ts ignore
   * import { GgufFile } from "./gguf.ts";
   * GgufFile.parseBytes(new Uint8Array(8), "x.gguf"); // throws FormatError
   * ```
   */
  static parseBytes(
    bytes: Uint8Array,
    name = "<memory>",
  ): {
    metadata: ReadonlyMap<string, GgufEntry>;
    tensors: ReadonlyMap<string, GgufTensorInfo>;
  } {
    const p = parse(new Cursor(bytes, bytes.byteLength, name));
    return { metadata: p.metadata, tensors: p.tensors };
  }

  /** The entry for `key`, or undefined. */
  get(key: string): GgufEntry | undefined {
    return this.metadata.get(key);
  }

  /** A string value; undefined when absent; FormatError when of another type. */
  getString(key: string): string | undefined {
    const e = this.metadata.get(key);
    if (e === undefined) return undefined;
    if (typeof e.value !== "string") {
      throw new FormatError(
        this.path,
        `metadata ${key} is ${typeName(e.type)}, expected STRING`,
      );
    }
    return e.value;
  }

  /** An integer or float value as a number; undefined when absent; FormatError otherwise. */
  getNumber(key: string): number | undefined {
    const e = this.metadata.get(key);
    if (e === undefined) return undefined;
    if (typeof e.value !== "number") {
      throw new FormatError(
        this.path,
        `metadata ${key} is ${typeName(e.type)}, expected a number`,
      );
    }
    return e.value;
  }

  /** A bool value; undefined when absent; FormatError otherwise. */
  getBool(key: string): boolean | undefined {
    const e = this.metadata.get(key);
    if (e === undefined) return undefined;
    if (typeof e.value !== "boolean") {
      throw new FormatError(
        this.path,
        `metadata ${key} is ${typeName(e.type)}, expected BOOL`,
      );
    }
    return e.value;
  }

  /** The info of tensor `name`; FormatError if absent. */
  info(name: string): GgufTensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new FormatError(this.path, `no tensor ${name}`);
    return t;
  }

  /** Reads the raw bytes of tensor `name` (by byte range). */
  read(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    return this.readPart(name, 0, t.byteLength);
  }

  /** Reads the bytes `t` describes: a tensor, or a byte range of one (see {@link GgufFile.readPart}). */
  readInfo(t: GgufTensorInfo): Promise<Uint8Array> {
    return this.readPart(
      t.name,
      t.offset - this.info(t.name).offset,
      t.byteLength,
    );
  }

  /**
   * Reads `length` bytes of tensor `name` from byte `start` of its data (one
   * expert of a stacked expert tensor).
   */
  async readPart(
    name: string,
    start: number,
    length: number,
  ): Promise<Uint8Array> {
    const t = this.info(name);
    if (
      !Number.isSafeInteger(start) || !Number.isSafeInteger(length) ||
      start < 0 || length < 0 || start + length > t.byteLength
    ) {
      throw new FormatError(
        this.path,
        `tensor ${name}: bytes ${start}..${
          start + length
        } are outside its ${t.byteLength}`,
      );
    }
    const buf = new Uint8Array(length);
    // seek + read on one handle: serialize concurrent reads
    const job = this.#queue.then(() =>
      readFully(this.path, this.#file, t.offset + start, buf)
    );
    this.#queue = job.catch(() => {});
    await job;
    return buf;
  }

  /** Closes the file. */
  close(): void {
    try {
      this.#file.close();
    } catch {
      // already closed
    }
  }
}
