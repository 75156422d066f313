/**
 * The pipeline timeline (`--trace FILE`): Chrome trace-event JSON
 * (`{"traceEvents": [...]}`) that opens in Perfetto (ui.perfetto.dev) and
 * chrome://tracing.
 *
 * One track (tid) per activity: the forward pass on the JS thread, disk
 * read, upload (`writeBuffer`), GPU compute (one span per layer and one for
 * the head), sampling and the readback. Spans are complete events
 * (`"ph": "X"`, microseconds of `performance.now()`); their `args` carry the
 * layer, the load (`unit`, the reader's load counter; `part`, which of the
 * layer's streaming units), the bytes, the forward pass and the token step. Counter events (`"ph": "C"`) record the GPU memory
 * in use, by use, and the budget.
 *
 * GPU compute is timed with timestamp queries where the device has the
 * `timestamp-query` feature: each layer's command buffer writes a timestamp
 * at the start of its first compute pass and the end of its last, the head's
 * likewise, resolved and read back with the pass's one readback (no extra
 * wait). GPU clock ticks are placed on the CPU clock per pass by the tightest
 * offset that starts no layer before the CPU submitted it. Without the
 * feature (or with `timestamps: false`), each layer is timed submit-to-done:
 * from its submit (or the previous layer's end, if later) to the resolution
 * of `onSubmittedWorkDone()` registered after its submit, whose resolution is
 * the runtime's queue poll (≈ 10 ms on lavapipe): the spans say so in
 * `args.timing`.
 *
 * The engine holds a tracer only when asked (`trace` option); every hook is
 * `trace?.…`, so tracing off costs one branch per hook and allocates nothing.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { ResidencyPlan } from "./plan.ts";

/** Tracks of the timeline, each a thread id in the trace. */
export const TRACKS = {
  pass: 1,
  read: 2,
  upload: 3,
  compute: 4,
  sample: 5,
  readback: 6,
} as const;

/** A track name. */
export type Track = keyof typeof TRACKS;

const TRACK_NAMES: Record<Track, string> = {
  pass: "forward pass (JS thread)",
  read: "disk read",
  upload: "upload (writeBuffer)",
  compute: "GPU compute",
  sample: "sampling (CPU)",
  readback: "readback (wait for the GPU + map)",
};

/** Process id of every event. */
const PID = 1;

/** Thread id of read track k ≥ 1 (k = 0 is TRACKS.read). */
const READ_EXTRA_TID = 100;

/** One trace event (the subset of the Chrome trace-event format Strata writes). */
export interface TraceEvent {
  /** Event name. */
  name: string;
  /** Category. */
  cat?: string;
  /** Phase: complete span, counter or metadata. */
  ph: "X" | "C" | "M";
  /** Start in microseconds. */
  ts: number;
  /** Duration in microseconds (spans). */
  dur?: number;
  /** Process id. */
  pid: number;
  /** Thread id (the track). */
  tid: number;
  /** Layer, unit, bytes, pass, step... */
  args?: Record<string, unknown>;
}

/** The JSON document a tracer writes. */
export interface TraceJson {
  /** The events, metadata first. */
  traceEvents: TraceEvent[];
  /** Perfetto / chrome://tracing display unit. */
  displayTimeUnit: "ms";
  /** How GPU compute was timed and what was traced. */
  otherData: Record<string, unknown>;
}

/** Options of {@link Tracer}. */
export interface TracerOptions {
  /**
   * Time GPU compute with timestamp queries when the device has the
   * `timestamp-query` feature (default true); false times every layer
   * submit-to-done.
   */
  timestamps?: boolean;
}

/** How GPU compute spans were timed. */
export type GpuTiming = "timestamp-query" | "submit-to-done" | "none";

interface GpuState {
  device: GPUDevice;
  layers: number;
  plan: ResidencyPlan;
  streamed: Set<number>;
  query: GPUQuerySet | null;
  resolve: GPUBuffer | null;
  read: GPUBuffer | null;
  /** CPU ms just before each layer's (and the head's, last) submit. */
  submitMs: Float64Array;
  /** CPU ms when each submit call returned. */
  submittedMs: Float64Array;
  /** CPU ms when each submit's work was seen done (submit-to-done). */
  doneMs: Float64Array;
  /** Whether each onSubmittedWorkDone() call waited for the queue. */
  blocked: boolean[];
  done: Promise<void>[];
}

const align256 = (n: number) => Math.ceil(n / 256) * 256;

/**
 * Collects the events of a model's forward passes; {@link Tracer.toJSON}
 * gives the document, {@link Tracer.write} writes it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Tracer } from "./trace.ts";
 * const trace = new Tracer();
 * trace.span("sample", "sample", 5, 5.5, { id: 7 }); // ms
 * const doc = trace.toJSON();
 * const ev = doc.traceEvents.find((e) => e.ph === "X")!;
 * assert.equal(ev.name, "sample");
 * assert.deepEqual([ev.ts, ev.dur], [5000, 500]); // microseconds
 * assert.ok(doc.traceEvents.some((e) => e.ph === "M" && e.args?.name === "sampling (CPU)"));
 * ```
 */
export class Tracer {
  #events: TraceEvent[] = [];
  #timestamps: boolean;
  #gpu: GpuState | null = null;
  #step = 0;
  #pass = -1;
  #passStart = 0;
  #passTokens = 0;
  #passPos0 = 0;
  /** Token step of each forward pass, by pass index. */
  #passSteps: number[] = [];
  /** Streamed loads (units) per forward pass. */
  #streamedCount = 0;
  /** Whether layers stream in sub-layer units. */
  #split = false;
  /** End of the last span on each read track. */
  #readEnds: number[] = [];
  /** GPU spans in GPU-clock ms, placed on the CPU clock by {@link toJSON}. */
  #gpuSpans: {
    name: string;
    start: number;
    end: number;
    args: Record<string, unknown>;
  }[] = [];
  /** CPU ms minus GPU ms: the largest lower bound seen (calibration and every submit). */
  #offset = -Infinity;

  /** A tracer; hand it to `AutoModel.fromPretrained({ trace })`. */
  constructor(opts: TracerOptions = {}) {
    this.#timestamps = opts.timestamps !== false;
  }

  /** The clock of every event: `performance.now()` in ms. */
  now(): number {
    return performance.now();
  }

  /** How GPU compute is timed (none until a model is attached). */
  get gpuTiming(): GpuTiming {
    if (!this.#gpu) return "none";
    return this.#gpu.query ? "timestamp-query" : "submit-to-done";
  }

  /** Drops the events recorded so far (the model stays attached). */
  clear(): void {
    this.#events = [];
    this.#gpuSpans = [];
  }

  /** Sets the token step of what follows (0 = prompt prefill and the first sample; n = the pass producing token n). */
  setStep(step: number): void {
    this.#step = step;
  }

  /** Records a span on `track` from `t0` to `t1` (ms of {@link now}). */
  span(
    track: Track,
    name: string,
    t0: number,
    t1: number,
    args: Record<string, unknown> = {},
  ): void {
    this.#events.push({
      name,
      cat: track,
      ph: "X",
      ts: t0 * 1000,
      dur: Math.max(0, t1 - t0) * 1000,
      pid: PID,
      tid: track === "read" ? this.#readLane(t0, t1) : TRACKS[track],
      args,
    });
  }

  /**
   * Reads run concurrently (lib/engine/reader.ts keeps two in flight):
   * each goes on the first read track free at its start, so that spans on a
   * track never overlap (Perfetto needs them nested or disjoint).
   */
  #readLane(t0: number, t1: number): number {
    let k = this.#readEnds.findIndex((end) => end <= t0);
    if (k < 0) k = this.#readEnds.push(t1) - 1;
    else this.#readEnds[k] = t1;
    return k === 0 ? TRACKS.read : READ_EXTRA_TID + k;
  }

  /**
   * A streamed load's read or upload, from `t0` to now: `load.n` (the
   * reader's load counter, `unit` in the args) fixes the forward pass it
   * feeds.
   */
  load(
    track: "read" | "upload",
    load: { layer: number; n: number; part?: number },
    bytes: number,
    t0: number,
  ): void {
    const pass = this.#streamedCount > 0
      ? Math.floor(load.n / this.#streamedCount)
      : -1;
    const part = load.part ?? 0;
    const name = this.#split
      ? `${track} L${load.layer}.${part}`
      : `${track} L${load.layer}`;
    this.span(track, name, t0, this.now(), {
      layer: load.layer,
      unit: load.n,
      part,
      bytes,
      pass,
    });
  }

  /** The forward pass waited from `t0` to now for layer `layer`'s read, or for the GPU (serial mode). */
  wait(what: "read" | "GPU", layer: number, t0: number): void {
    this.span("pass", `wait for ${what}`, t0, this.now(), {
      layer,
      pass: this.#pass,
    });
  }

  /** A token sampled from `t0` to now. */
  sampled(t0: number, id: number): void {
    this.span("sample", "sample", t0, this.now(), {
      id,
      step: this.#step,
    });
  }

  // --- the GPU side, called by the forward pass ---

  /**
   * Extra GPU bytes the tracer will hold for a model of `layers` layers on
   * `gpu` (the timestamp query set and its resolve and readback buffers);
   * the forward pass plans them within the budget.
   */
  gpuBytes(gpu: Gpu, layers: number): number {
    if (!this.#useTimestamps(gpu.device)) return 0;
    const n = 2 * (layers + 1);
    return n * 8 + 2 * align256(n * 8);
  }

  #useTimestamps(device: GPUDevice): boolean {
    return this.#timestamps && device.features.has("timestamp-query");
  }

  /**
   * Attaches the model: allocates the query set (if any), places the GPU
   * clock on the CPU clock (a few empty timed passes) and records the memory
   * counters.
   */
  async attach(gpu: Gpu, plan: ResidencyPlan, layers: number): Promise<void> {
    const device = gpu.device;
    const n = 2 * (layers + 1);
    const ts = this.#useTimestamps(device);
    // a buffer of the n u64 timestamps (none without timestamps)
    const stamps = (label: string, usage: number) =>
      ts ? device.createBuffer({ label, size: align256(n * 8), usage }) : null;
    this.#gpu = {
      device,
      layers,
      plan,
      streamed: new Set(plan.streamed),
      query: ts ? device.createQuerySet({ type: "timestamp", count: n }) : null,
      resolve: stamps(
        "trace.resolve",
        GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      ),
      read: stamps(
        "trace.read",
        GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      ),
      submitMs: new Float64Array(layers + 1),
      submittedMs: new Float64Array(layers + 1),
      doneMs: new Float64Array(layers + 1),
      blocked: [],
      done: [],
    };
    if (ts) await this.#calibrate(this.#gpu);
    this.#streamedCount = plan.streamedUnits ?? plan.streamed.length;
    this.#split = plan.unit === "matrices";
    this.#pass = -1;
    this.#passSteps = [];
    this.memory(plan.totalBytes);
  }

  /**
   * Empty timed passes on the idle GPU: each gives a lower bound of the
   * offset from the GPU clock to the CPU clock (it cannot start before the
   * CPU submitted it); the first rounds warm the queue up.
   */
  async #calibrate(g: GpuState): Promise<void> {
    for (let round = 0; round < 4; round++) {
      const enc = g.device.createCommandEncoder({ label: "trace.calibrate" });
      enc.beginComputePass({
        timestampWrites: {
          querySet: g.query!,
          beginningOfPassWriteIndex: 0,
          endOfPassWriteIndex: 1,
        },
      }).end();
      enc.resolveQuerySet(g.query!, 0, 2, g.resolve!, 0);
      enc.copyBufferToBuffer(g.resolve!, 0, g.read!, 0, 16);
      const cb = enc.finish();
      const t0 = this.now();
      g.device.queue.submit([cb]);
      await g.read!.mapAsync(GPUMapMode.READ);
      const ticks = new BigUint64Array(g.read!.getMappedRange(0, 16));
      const start = Number(ticks[0]) / 1e6;
      g.read!.unmap();
      if (round > 0) this.#offset = Math.max(this.#offset, t0 - start);
    }
  }

  /** Frees the query set and its buffers. */
  detach(): void {
    const g = this.#gpu;
    if (!g) return;
    g.query?.destroy();
    g.resolve?.destroy();
    g.read?.destroy();
  }

  /** A forward pass of `tokens` tokens at position `pos0` begins. */
  passStart(tokens: number, pos0: number): void {
    this.#pass++;
    this.#passSteps[this.#pass] = this.#step;
    this.#passStart = this.now();
    this.#passTokens = tokens;
    this.#passPos0 = pos0;
    if (this.#gpu) this.#gpu.done = [];
  }

  /**
   * The compute-pass descriptor of layer `index` (`layers` = the head):
   * timestamp writes at its beginning and/or end, or undefined.
   */
  gpuPass(
    index: number,
    begin: boolean,
    end: boolean,
  ): GPUComputePassDescriptor | undefined {
    const q = this.#gpu?.query;
    if (!q) return undefined;
    const timestampWrites: GPUComputePassTimestampWrites = { querySet: q };
    if (begin) timestampWrites.beginningOfPassWriteIndex = 2 * index;
    if (end) timestampWrites.endOfPassWriteIndex = 2 * index + 1;
    return { timestampWrites };
  }

  /** Call just before submitting layer `index` (`layers` = the head). */
  submitting(index: number): void {
    if (this.#gpu) this.#gpu.submitMs[index] = this.now();
  }

  /**
   * Call just after submitting layer `index`: in submit-to-done mode, asks
   * for the queue's done callback. Deno (2.9) waits for the queue inside
   * `onSubmittedWorkDone()` itself and resolves the promise at its next poll
   * (~10 ms later on lavapipe): a call that blocked over 1 ms returned when
   * the work was done, so its return is the end; otherwise the resolution is.
   */
  submitted(index: number): void {
    const g = this.#gpu;
    if (!g) return;
    const c0 = this.now();
    g.submittedMs[index] = c0;
    if (g.query) return;
    const p = g.device.queue.onSubmittedWorkDone();
    const c1 = this.now();
    g.blocked[index] = c1 - c0 > 1;
    g.doneMs[index] = c1;
    g.done.push(p.then(() => {
      if (!g.blocked[index]) g.doneMs[index] = this.now();
    }));
  }

  /** Resolves the pass's timestamps into the tracer's readback buffer (records into the head's encoder). */
  resolve(enc: GPUCommandEncoder): void {
    const g = this.#gpu;
    if (!g?.query) return;
    const n = 2 * (g.layers + 1);
    enc.resolveQuerySet(g.query, 0, n, g.resolve!, 0);
    enc.copyBufferToBuffer(g.resolve!, 0, g.read!, 0, n * 8);
  }

  /** What the pass's readback also waits for: the timestamps' map, or every done callback. */
  gpuDone(): Promise<unknown> {
    const g = this.#gpu;
    if (!g) return Promise.resolve();
    if (g.query) return g.read!.mapAsync(GPUMapMode.READ);
    return Promise.all(g.done);
  }

  /** The readback, waited on from `w0` to now: records it and the GPU compute spans. */
  readback(w0: number): void {
    const t1 = this.now();
    const pass = this.#pass;
    const step = this.#passSteps[pass];
    this.span("readback", "readback", w0, t1, { pass, step });
    const g = this.#gpu;
    if (!g) return;
    const L = g.layers;
    const name = (i: number) => i === L ? "head" : `compute L${i}`;
    const argsOf = (i: number): Record<string, unknown> =>
      i === L
        ? { layer: "head", pass, step }
        : { layer: i, streamed: g.streamed.has(i), pass, step };
    if (g.query) {
      const n = 2 * (L + 1);
      const ticks = new BigUint64Array(g.read!.getMappedRange(0, n * 8));
      const ms = Array.from(ticks, (t) => Number(t) / 1e6);
      g.read!.unmap();
      for (let i = 0; i <= L; i++) {
        // no layer starts before the CPU submitted it
        this.#offset = Math.max(this.#offset, g.submitMs[i] - ms[2 * i]);
        this.#gpuSpans.push({
          name: name(i),
          start: ms[2 * i],
          end: ms[2 * i + 1],
          args: {
            ...argsOf(i),
            timing: "timestamp-query",
            gpu_us: (ms[2 * i + 1] - ms[2 * i]) * 1000,
            submitted_ts: g.submitMs[i] * 1000,
            returned_ts: g.submittedMs[i] * 1000,
          },
        });
      }
      return;
    }
    let prev = -Infinity;
    for (let i = 0; i <= L; i++) {
      const start = Math.max(g.submitMs[i], prev);
      const end = Math.max(start, g.doneMs[i]);
      this.span("compute", name(i), start, end, {
        ...argsOf(i),
        timing: g.blocked[i]
          ? "submit-to-done (from its submit or the previous layer's done, to the return of onSubmittedWorkDone(), which waited for the queue: the JS thread waited too)"
          : "submit-to-done (from its submit or the previous layer's done, to onSubmittedWorkDone's resolution, at the runtime's queue poll)",
        submitted_ts: g.submitMs[i] * 1000,
        returned_ts: g.submittedMs[i] * 1000,
      });
      prev = end;
    }
  }

  /**
   * GPU memory in use now (the `planned` allocations plus any kernel
   * scratch beyond the plan's estimate), as counters; ends the pass span when one
   * is open.
   */
  memory(planned: number, scratchBeyond = 0): void {
    const t = this.now();
    const bytes = planned + Math.max(0, scratchBeyond);
    const p = this.#gpu?.plan;
    if (p) {
      const layers = p.residentBytes,
        ring = p.slots * p.slotBytes,
        kv = p.kvBytes,
        head = p.headBytes;
      this.#counter("GPU memory in use (bytes)", t, {
        resident_layers: layers,
        ring_slots: ring,
        kv_cache: kv,
        head,
        activations_scratch_trace: Math.max(
          0,
          bytes - layers - ring - kv - head,
        ),
      });
      this.#counter("GPU memory budget (bytes)", t, { budget: p.budget });
    }
    if (this.#pass >= 0 && this.#passStart > 0) {
      const pass = this.#pass;
      const step = this.#passSteps[pass];
      this.span(
        "pass",
        this.#passTokens > 1 || step === 0 ? "prefill" : "decode",
        this.#passStart,
        t,
        { pass, step, tokens: this.#passTokens, pos0: this.#passPos0 },
      );
      this.#passStart = 0;
    }
  }

  #counter(name: string, t: number, args: Record<string, number>): void {
    this.#events.push({ name, ph: "C", ts: t * 1000, pid: PID, tid: 0, args });
  }

  /** The trace document: metadata (process and track names), then the events in time order. */
  toJSON(): TraceJson {
    const meta: TraceEvent[] = [
      {
        name: "process_name",
        ph: "M",
        ts: 0,
        pid: PID,
        tid: 0,
        args: { name: "strata" },
      },
    ];
    const tracks: [string, number][] = Object.entries(TRACKS).map((
      [track, tid],
    ) => [TRACK_NAMES[track as Track], tid]);
    for (let k = 1; k < this.#readEnds.length; k++) {
      tracks.push([`${TRACK_NAMES.read} (${k + 1})`, READ_EXTRA_TID + k]);
    }
    for (const [name, tid] of tracks) {
      meta.push(
        {
          name: "thread_name",
          ph: "M",
          ts: 0,
          pid: PID,
          tid,
          args: { name },
        },
        {
          name: "thread_sort_index",
          ph: "M",
          ts: 0,
          pid: PID,
          tid,
          args: {
            sort_index: tid >= READ_EXTRA_TID
              ? 20 + tid - READ_EXTRA_TID
              : 10 * tid,
          },
        },
      );
    }
    // the GPU clock on the CPU clock: the tightest offset that starts no
    // span before the CPU submitted it (the same for the whole run)
    const gpu: TraceEvent[] = this.#gpuSpans.map((s) => ({
      name: s.name,
      cat: "compute",
      ph: "X",
      ts: (this.#offset + s.start) * 1000,
      dur: Math.max(0, s.end - s.start) * 1000,
      pid: PID,
      tid: TRACKS.compute,
      args: s.args,
    }));
    const events = [...this.#events, ...gpu].map((e) => {
      // a load read ahead learns its token step once its pass has run
      const a = e.args;
      if (
        a && typeof a.pass === "number" && a.step === undefined &&
        this.#passSteps[a.pass] !== undefined
      ) {
        return { ...e, args: { ...a, step: this.#passSteps[a.pass] } };
      }
      return e;
    }).sort((x, y) => x.ts - y.ts);
    return {
      traceEvents: [...meta, ...events],
      displayTimeUnit: "ms",
      otherData: {
        producer: "strata",
        gpu_timing: this.gpuTiming,
        gpu_runs_inside_submit: this.#insideSubmit(gpu),
        clock: "performance.now() in microseconds",
      },
    };
  }

  /**
   * Whether the GPU work ran inside `queue.submit` (wgpu's GL backend
   * executes synchronously: then the JS thread waits for every layer and
   * nothing can overlap): true when nine in ten timed spans ended before
   * their submit call returned; null without timestamp queries.
   */
  #insideSubmit(gpu: TraceEvent[]): boolean | null {
    if (gpu.length === 0) return null;
    const inside =
      gpu.filter((e) =>
        e.ts + (e.dur ?? 0) <= (e.args!.returned_ts as number) + 1
      ).length;
    return inside >= 0.9 * gpu.length;
  }

  /**
   * Writes the document to `path` (through `path.partial`, renamed when
   * complete, so a half-written trace never looks finished).
   */
  async write(path: string): Promise<void> {
    const tmp = `${path}.partial`;
    await Deno.writeTextFile(tmp, JSON.stringify(this.toJSON()));
    await Deno.rename(tmp, path);
  }
}
