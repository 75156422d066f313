/**
 * The layer reader: resident layers uploaded once, streamed layers read from
 * their shard files into reused host images and uploaded with
 * `queue.writeBuffer` (in chunks) into a ring of GPU weight slots.
 *
 * A streamed layer goes through the ring whole or in sub-layer units (one or
 * a few matrices each, lib/engine/_units.ts). Streamed units are loaded in a
 * fixed cyclic order (load n = streamed unit `n mod S`, slot `n mod R`, host
 * image `n mod H`), so the reader knows what comes next across token
 * boundaries: while the last layers of one forward pass compute, the first
 * streamed units of the next pass are already read.
 *
 * Ordering: WebGPU executes queue operations in the order they are issued, so
 * a `writeBuffer` into slot s issued after the `submit` of the work that read
 * slot s runs after that work. The reader therefore only uploads load n once
 * the compute of load n-R has been released (submitted); it never waits for
 * the GPU in the normal (prefetch) mode. Without prefetch it runs the serial
 * AirLLM-style loop: read, upload, compute, wait.
 *
 * @module
 */
import type { SafetensorsFile } from "../format/safetensors.ts";
import { StrataError } from "../errors.ts";
import { readImage, type TensorLayout } from "./_layout.ts";
import { decodeFloats } from "./_decode.ts";
import { mapFile, type MappedFile } from "./_mmap.ts";
import type { Tracer } from "./trace.ts"; // TRACE
import {
  pieceWriter,
  type ReaderStats,
  type UploadTarget,
  writeMapped,
  zeroStats,
} from "./_upload.ts";

export {
  gpuUploadTarget,
  type LoadTiming,
  type ReaderStats,
  type UploadTarget,
} from "./_upload.ts";

/** Reads in flight at once (two keep the disk busy without starving the next layer). */
const READ_CONCURRENCY = 2;

/** Options of {@link LayerReader.create}. */
export interface LayerReaderOptions<B> {
  /** Where buffers live. */
  target: UploadTarget<B>;
  /** One open shard file per layer. */
  files: SafetensorsFile[];
  /** One layout per layer (a resident layer may span several buffers: its segments). */
  layouts: TensorLayout[];
  /**
   * The streaming units of each streamed layer, in order (one single-buffer
   * layout each); default: the layer's layout, one unit.
   */
  units?: (TensorLayout[] | undefined)[];
  /**
   * Upload every read unit whose slot is free right after each release,
   * up to a whole ring ahead, instead of each at its acquire (default false).
   */
  eager?: boolean;
  /** Layers kept on the GPU. */
  resident: number[];
  /** Layers streamed, in forward order. */
  streamed: number[];
  /** Ring slots (≥ 1 when something streams). */
  slots: number;
  /** Bytes of one slot (≥ every streamed unit). */
  slotBytes: number;
  /** Read ahead and overlap (default true); false = serial read, upload, compute, wait. */
  prefetch?: boolean;
  /** Host images for read-ahead (default: slots). */
  hostImages?: number;
  /** writeBuffer chunk size (default 1 MiB). */
  chunkBytes?: number;
  /** Time one streamed layer's read and upload at creation ({@link LayerReader.probeRates}). */
  probe?: boolean;
  /**
   * Memory-map the streamed layers' files where possible (see `_mmap.ts`)
   * and upload straight from the mapping: no read into a host image, one
   * copy less per streamed byte (default false).
   */
  mmap?: boolean;
  /** Records reads, uploads and waits on the timeline (see trace.ts). */
  trace?: Tracer; // TRACE
}

/** One unit of an acquired layer: where it is (or will be) and its layout. */
export interface AcquiredUnit<B> {
  /** Its buffers (one per segment of a resident layer; a ring slot). */
  buffers: B[];
  /** Its layout. */
  layout: TensorLayout;
}

/** What {@link LayerReader.acquire} returns. */
export interface AcquiredLayer<B> {
  /** The buffer holding the layer's first unit (resident buffer or ring slot). */
  buffer: B;
  /** Its layout. */
  layout: TensorLayout;
  /** True when it came through the ring. */
  streamed: boolean;
  /**
   * Every unit of the layer in order, with the slot it lands in: the first
   * has arrived; the others arrive with {@link LayerReader.arrive}.
   */
  units: AcquiredUnit<B>[];
}

/** A streamed unit: a layer, which of its units, its layout. */
interface StreamUnit {
  layer: number;
  part: number;
  layout: TensorLayout;
}

interface Load {
  n: number;
  layer: number;
  part: number;
  layout: TensorLayout;
  image: Uint8Array;
  /** A read into a host image was started. */
  reading: boolean;
  read: Promise<void>;
  readDone: boolean;
  readMs: number;
  uploaded: boolean;
  readWaitMs: number;
  uploadMs: number;
}

/**
 * Resident buffers plus the streaming ring.
 *
 * @example
 * ```ts ignore
 * import { LayerReader, gpuUploadTarget } from "./reader.ts";
 * const reader = await LayerReader.create({ target: gpuUploadTarget(device), files, layouts,
 *   resident: [0, 1], streamed: [2, 3, 4], slots: 3, slotBytes });
 * for (let i = 0; i < 5; i++) {
 *   const { buffer, layout } = await reader.acquire(i);
 *   // ... record layer i reading `buffer`, submit ...
 *   await reader.release(i);
 * }
 * reader.pump(); // start uploading the next pass's first streamed layers
 * ```
 */
export class LayerReader<B> {
  #o: LayerReaderOptions<B>;
  #prefetch: boolean;
  #chunk: number;
  #residentBuf = new Map<number, B[]>();
  #slots: B[] = [];
  #images: Uint8Array[] = [];
  /** The streamed units in forward order (one pass). */
  #seq: StreamUnit[] = [];
  /** Each streamed layer's units. */
  #units = new Map<number, TensorLayout[]>();
  /** Mapped streamed layers: the file's bytes and each unit's decoded vectors. */
  #mapped = new Map<
    number,
    { file: MappedFile; vectors: { offset: number; bytes: Uint8Array }[][] }
  >();
  #loads = new Map<number, Load>();
  #readChains: Promise<void>[] = Array.from(
    { length: READ_CONCURRENCY },
    () => Promise.resolve(),
  );
  #nextRead = 0;
  #nextAcquire = 0;
  #released = 0;
  #residentUploadBytes = 0;
  #residentUploadS = 0;
  #closed = false;
  /** Keep per-load timings. */
  profile = false;
  /** Totals. */
  stats: ReaderStats = zeroStats();

  private constructor(o: LayerReaderOptions<B>) {
    this.#o = o;
    this.#prefetch = o.prefetch !== false;
    this.#chunk = o.chunkBytes ?? 1 << 20;
    for (const layer of o.streamed) {
      const units = o.units?.[layer] ?? [o.layouts[layer]];
      this.#units.set(layer, units);
      units.forEach((layout, part) => this.#seq.push({ layer, part, layout }));
    }
  }

  /** Creates the reader: allocates the ring and uploads the resident layers. */
  static async create<B>(o: LayerReaderOptions<B>): Promise<LayerReader<B>> {
    const r = new LayerReader(o);
    for (const i of o.resident) {
      const layout = o.layouts[i];
      const bufs: B[] = [];
      for (let sgm = 0; sgm < layout.segments.length; sgm++) {
        const size = layout.segments[sgm];
        const buf = o.target.create(size, `layer.${i}.${sgm}`);
        bufs.push(buf);
        const image = new Uint8Array(size);
        await readImage(o.files[i], layout, image, sgm);
        const t0 = performance.now();
        pieceWriter(o.target, buf, size, r.#chunk)(0, image);
        o.target.flush?.(); // one submit per layer keeps wgpu's staging memory small and hot
        r.#residentUploadS += (performance.now() - t0) / 1000;
        r.#residentUploadBytes += image.byteLength;
      }
      r.#residentBuf.set(i, bufs);
    }
    if (o.streamed.length > 0) {
      if (o.slots < 1) {
        throw new StrataError(
          "layer reader: streamed layers need at least one slot",
        );
      }
      for (const u of r.#seq) {
        if (u.layout.segments.length !== 1 || u.layout.bytes > o.slotBytes) {
          throw new StrataError(
            `layer reader: a streaming unit of layer ${u.layer} (${u.layout.bytes} bytes) does not fit one slot of ${o.slotBytes} bytes`,
          );
        }
      }
      for (let s = 0; s < o.slots; s++) {
        r.#slots.push(o.target.create(o.slotBytes, `slot.${s}`));
      }
      if (o.mmap) r.#mapStreamed();
      // read-ahead images: 2 per slot, but at most ~1 GiB of host memory (≥ 2)
      const byMemory = Math.max(
        2,
        Math.floor(2 ** 30 / Math.max(1, o.slotBytes)),
      );
      const h = r.#mapped.size === o.streamed.length
        ? 0 // every streamed layer uploads from its mapping
        : r.#prefetch
        ? Math.max(1, o.hostImages ?? Math.min(2 * o.slots, byMemory))
        : 1;
      for (let k = 0; k < h; k++) r.#images.push(new Uint8Array(o.slotBytes));
      if (o.probe) await r.#probe();
      r.#startReads();
    }
    return r;
  }

  /**
   * Reads the first streamed units (up to 3 layers' worth) into a scratch
   * image and uploads them into slot 0 (no compute has been recorded yet, so
   * the slot is free), timing both: the I/O rates the plan's floor is
   * computed from. The upload is timed as the profile's upload column is:
   * the time in `writeBuffer` on the JS thread. The queue's copy out of
   * wgpu's staging memory runs later, with the compute, and the queue wait
   * (≈ 10 ms of latency per call on lavapipe, whatever the size) is not
   * counted.
   */
  async #probe(): Promise<void> {
    // up to 3 streamed layers, twice: the first round warms the host image and
    // wgpu's staging memory; the second is timed (one queue wait per round)
    const layers = this.#o.streamed.slice(0, 3);
    const units = this.#seq.filter((u) => layers.includes(u.layer));
    const mapped = layers.every((l) => this.#mapped.has(l));
    const image = new Uint8Array(mapped ? 0 : this.#o.slotBytes);
    let readS = 0, uploadS = 0, bytes = 0;
    for (let round = 0; round < 2; round++) {
      readS = uploadS = bytes = 0;
      for (const u of units) {
        const t0 = performance.now();
        if (!this.#mapped.has(u.layer)) {
          await readImage(this.#o.files[u.layer], u.layout, image);
        }
        const t1 = performance.now();
        this.#uploadUnit(u, this.#slots[0], image);
        this.#o.target.flush?.();
        readS += (t1 - t0) / 1000;
        uploadS += (performance.now() - t1) / 1000;
        bytes += u.layout.bytes;
      }
      await this.#o.target.wait();
    }
    this.probeRates = {
      readBytesPerS: mapped ? Infinity : bytes / Math.max(1e-6, readS),
      uploadBytesPerS: bytes / Math.max(1e-6, uploadS),
      layers: layers.length,
      mapped,
    };
  }

  /**
   * Read and `writeBuffer` rates measured on the first (up to 3) streamed
   * layers at creation (`probe: true`), and how many layers were timed.
   * When those layers are memory-mapped (`mapped`), nothing is read
   * (`readBytesPerS` is Infinity) and the upload copies from the page cache.
   */
  probeRates:
    | {
      readBytesPerS: number;
      uploadBytesPerS: number;
      layers: number;
      mapped: boolean;
    }
    | null = null;

  /** Measured writeBuffer rate while uploading resident layers (bytes/s), or null. */
  get residentUploadRate(): number | null {
    return this.#residentUploadS > 0 && this.#residentUploadBytes > 1 << 20
      ? this.#residentUploadBytes / this.#residentUploadS
      : null;
  }

  /** Whether layer `i` is resident. */
  isResident(i: number): boolean {
    return this.#residentBuf.has(i);
  }

  /** Zeroes the totals. */
  resetStats(): void {
    this.stats = zeroStats();
  }

  /** Maps the streamed layers' files and decodes their units' vectors once. */
  #mapStreamed(): void {
    for (const layer of this.#o.streamed) {
      const f = this.#o.files[layer];
      const file = mapFile(f.path, f.size);
      if (!file) continue;
      const vectors = this.#units.get(layer)!.map((layout) => {
        const out: { offset: number; bytes: Uint8Array }[] = [];
        for (const e of layout.entries.values()) {
          if (e.kind !== "vector") continue;
          const v = decodeFloats(
            file.bytes.subarray(e.fileOffset, e.fileOffset + e.fileLength),
            e.srcDtype,
          );
          out.push({
            offset: e.offset,
            bytes: new Uint8Array(v.buffer, v.byteOffset, v.byteLength),
          });
        }
        return out;
      });
      this.#mapped.set(layer, { file, vectors });
    }
  }

  /**
   * Uploads streamed unit `u` into `slot`: from its layer's mapping (the
   * file's byte ranges straight into their places, then the decoded
   * vectors) or from the host image it was read into.
   */
  #uploadUnit(u: StreamUnit, slot: B, image: Uint8Array): void {
    const up = pieceWriter(this.#o.target, slot, u.layout.bytes, this.#chunk);
    const m = this.#mapped.get(u.layer);
    if (!m) {
      up(0, image.subarray(0, u.layout.bytes));
      return;
    }
    for (const e of u.layout.entries.values()) {
      if (e.kind !== "matrix") continue;
      for (const c of e.copies) {
        const src = m.file.bytes.subarray(
          c.fileOffset,
          c.fileOffset + c.length,
        );
        writeMapped(up, c.imageOffset, src);
      }
    }
    for (const v of m.vectors[u.part]) {
      this.#o.target.write(slot, v.offset, v.bytes);
    }
  }

  #unitOf(n: number): StreamUnit {
    return this.#seq[n % this.#seq.length];
  }

  /** Starts reads for loads whose host image is free (prefetch mode: up to H ahead). */
  #startReads(): void {
    if (this.#closed || !this.#prefetch) return;
    // mapped layers need no host image: their loads run up to a ring ahead
    const H = this.#images.length || this.#slots.length;
    // host image n % H is free once load n - H has been uploaded (uploads happen in order)
    while (this.#nextRead < this.#uploadedUpTo() + H) {
      this.#beginRead(this.#nextRead++);
    }
  }

  #uploadedUpTo(): number {
    // every load below this index has been uploaded
    let n = this.#nextAcquire;
    while (this.#loads.get(n)?.uploaded) n++;
    return n;
  }

  #beginRead(n: number): Load {
    const u = this.#unitOf(n);
    const mapped = this.#mapped.has(u.layer);
    const image = mapped
      ? new Uint8Array(0)
      : this.#images[n % this.#images.length];
    const load: Load = {
      n,
      layer: u.layer,
      part: u.part,
      layout: u.layout,
      image,
      reading: !mapped,
      read: Promise.resolve(),
      readDone: false,
      readMs: 0,
      uploaded: false,
      readWaitMs: 0,
      uploadMs: 0,
    };
    this.#loads.set(n, load);
    if (mapped) {
      // nothing to read: the upload copies from the mapping; from a cold disk
      // the kernel reads the file ahead meanwhile instead of faulting it in
      // page by page on the JS thread during the upload
      if (u.part === 0) this.#mapped.get(u.layer)!.file.willNeed();
      load.readDone = true;
      return load;
    }
    // at most READ_CONCURRENCY reads in flight, started in order: the unit
    // needed first arrives first instead of sharing the disk and the CPU with
    // every unit behind it
    const lane = n % READ_CONCURRENCY;
    const start = this.#readChains[lane];
    load.read = start.then(async () => {
      const t0 = performance.now();
      await readImage(this.#o.files[u.layer], u.layout, image);
      load.readDone = true;
      load.readMs = performance.now() - t0;
      this.#o.trace?.load("read", load, u.layout.bytes, t0); // TRACE
    });
    this.#readChains[lane] = load.read.catch(() => {}); // errors surface in acquire
    return load;
  }

  #upload(load: Load): void {
    const t0 = performance.now();
    const bytes = load.layout.bytes;
    this.#uploadUnit(
      load,
      this.#slots[load.n % this.#slots.length],
      load.image,
    );
    load.uploaded = true;
    load.uploadMs = performance.now() - t0;
    this.#o.trace?.load("upload", load, bytes, t0); // TRACE
    this.stats.bytesStreamed += bytes;
  }

  /** Waits for load `n`'s read (started now if it was not) and uploads it. */
  async #arrive(n: number): Promise<void> {
    let load = this.#loads.get(n);
    if (!load) {
      if (this.#prefetch) this.#nextRead = Math.max(this.#nextRead, n + 1);
      load = this.#beginRead(n);
    }
    if (!load.uploaded) {
      if (!load.readDone) {
        const t0 = performance.now();
        await load.read;
        load.readWaitMs = performance.now() - t0;
        this.#o.trace?.wait("read", load.layer, t0); // TRACE
      }
      this.#upload(load);
    }
    this.#nextAcquire = n + 1;
  }

  /**
   * Returns where layer `i` is: its resident buffers, or the ring slots its
   * streaming units land in, the first of which has arrived (waited for and
   * uploaded). Streamed layers must be acquired in the plan's order (the
   * same every pass).
   */
  async acquire(i: number): Promise<AcquiredLayer<B>> {
    const res = this.#residentBuf.get(i);
    if (res !== undefined) {
      const layout = this.#o.layouts[i];
      return {
        buffer: res[0],
        layout,
        streamed: false,
        units: [{ buffers: res, layout }],
      };
    }
    const n = this.#nextAcquire;
    const expected = this.#unitOf(n);
    if (expected.layer !== i || expected.part !== 0) {
      throw new StrataError(
        `layer reader: layer ${i} acquired out of order (expected ${expected.layer})`,
      );
    }
    await this.#arrive(n);
    const units = this.#units.get(i)!.map((layout, k) => ({
      buffers: [this.#slots[(n + k) % this.#slots.length]],
      layout,
    }));
    return {
      buffer: units[0].buffers[0],
      layout: units[0].layout,
      streamed: true,
      units,
    };
  }

  /**
   * Waits for unit `part` (≥ 1) of the acquired streamed layer `i` and
   * uploads it into its slot; units arrive in order, each after the compute
   * of the units a ring before it has been released.
   */
  async arrive(i: number, part: number): Promise<void> {
    const n = this.#nextAcquire;
    const u = this.#unitOf(n);
    if (u.layer !== i || u.part !== part) {
      throw new StrataError(
        `layer reader: unit ${part} of layer ${i} arrives out of order (expected unit ${u.part} of layer ${u.layer})`,
      );
    }
    if (n >= this.#released + this.#slots.length) {
      throw new StrataError(
        `layer reader: unit ${part} of layer ${i} needs a slot whose unit has not been released`,
      );
    }
    await this.#arrive(n);
  }

  /**
   * Says that the compute reading the oldest unreleased unit of layer `i`
   * (the whole layer when it streams whole) has been submitted: its slot may
   * be overwritten by later (queue-ordered) uploads. Without prefetch this
   * waits for the GPU (serial mode).
   */
  async release(i: number): Promise<void> {
    if (this.#residentBuf.has(i)) {
      this.#noteInFlight(this.#released);
      return;
    }
    const n = this.#released;
    const load = this.#loads.get(n);
    if (load) {
      this.#loads.delete(n);
      this.stats.readS += load.readMs / 1000;
      this.stats.readWaitS += load.readWaitMs / 1000;
      this.stats.uploadS += load.uploadMs / 1000;
      if (this.profile) {
        this.stats.loads.push({
          layer: load.layer,
          part: load.part,
          readMs: load.readMs,
          readWaitMs: load.readWaitMs,
          uploadMs: load.uploadMs,
          bytes: load.layout.bytes,
        });
      }
    }
    this.#released = n + 1;
    if (!this.#prefetch) {
      const t0 = performance.now();
      await this.#o.target.wait();
      this.stats.syncS += (performance.now() - t0) / 1000;
      this.#o.trace?.wait("GPU", i, t0); // TRACE
    }
    if (this.#o.eager) this.#uploadAhead();
    this.#startReads();
    this.#noteInFlight(this.#released);
  }

  /**
   * The units from load `from` on that are being read or are uploaded,
   * while the compute just submitted runs: the stats keep the most.
   */
  #noteInFlight(from: number): void {
    let k = 0;
    for (const [n, l] of this.#loads) {
      if (n >= from && (l.uploaded || l.reading)) k++;
    }
    this.stats.unitsInFlight = Math.max(this.stats.unitsInFlight, k);
  }

  /**
   * Uploads, in order, the read loads whose slots are free (their previous
   * user has been released), without waiting for anything.
   */
  #uploadAhead(): void {
    const R = this.#slots.length;
    for (let n = this.#nextAcquire; n < this.#released + R; n++) {
      const load = this.#loads.get(n);
      if (!load || !load.readDone) break;
      if (!load.uploaded) {
        this.#upload(load);
        this.#o.target.flush?.(); // hand each unit's staging to the queue
      }
    }
  }

  /**
   * Uploads already-read loads whose slots are free (their previous user has
   * been released) without waiting for anything. Call after submitting the
   * last layer of a pass, before waiting for its readback: the next pass's
   * first streamed units then upload while the head computes.
   */
  pump(): void {
    if (!this.#prefetch || this.#slots.length === 0) return;
    this.#uploadAhead();
    this.#startReads();
  }

  /** Frees every buffer; waits for in-flight reads so files can be closed. */
  async destroy(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#loads.values()].map((l) => l.read));
    for (const bs of this.#residentBuf.values()) {
      for (const b of bs) this.#o.target.destroy(b);
    }
    for (const b of this.#slots) this.#o.target.destroy(b);
    this.#residentBuf.clear();
    this.#slots = [];
    this.#loads.clear();
    for (const m of this.#mapped.values()) m.file.unmap();
    this.#mapped.clear();
  }
}
