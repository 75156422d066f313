/**
 * What the forward pass measures, kept out of its loop: totals over passes,
 * the per-layer profile (profile mode syncs after every layer), and the
 * streaming-floor line logged at start.
 *
 * @module
 */
import type { ResidencyPlan } from "./plan.ts";
import type { LayerReader } from "./reader.ts";
import type { MoeStats } from "./_moe_step.ts";

/** Per-layer profile (profile mode). */
export interface LayerProfile {
  /** Layer index. */
  layer: number;
  /** Streamed (true) or resident. */
  streamed: boolean;
  /** Streaming units it came in (1: whole, or resident). */
  units: number;
  /** Background read ms. */
  readMs: number;
  /** Time waiting for the read. */
  readWaitMs: number;
  /** writeBuffer ms. */
  uploadMs: number;
  /** Submit-to-done ms (profile mode syncs per layer). */
  computeMs: number;
}

/** Totals over passes since `Forward.resetStats`. */
export interface ForwardStats {
  /** Passes. */
  passes: number;
  /** Wall seconds inside forward(). */
  wallS: number;
  /** Background read seconds. */
  readS: number;
  /** Seconds the pass waited on reads. */
  readWaitS: number;
  /** writeBuffer seconds for streamed layers. */
  uploadS: number;
  /** GPU compute seconds: per-layer in profile mode; otherwise the final wait for the readback. */
  computeS: number;
  /** Bytes uploaded for streamed layers. */
  bytesStreamed: number;
  /**
   * The most streamed units being read or uploaded ahead while another
   * unit's compute had been submitted (0 without prefetch).
   */
  unitsInFlight: number;
  /** Per-layer timings of the last profiled pass(es). */
  layers: LayerProfile[];
  /** Mixture-of-experts models: the expert cache and router readbacks. */
  experts?: MoeStats;
}

/**
 * Collects {@link ForwardStats} for the forward pass: the pass calls
 * `begin`, then per layer `layerSubmitted` and `layerReleased`, then
 * `readback` around its one wait, then `end`.
 *
 * @example
 * ```ts ignore
 * const stats = new StatsCollector(device, reader);
 * stats.begin();
 * // … submit layer l …
 * const ms = await stats.layerSubmitted();
 * await reader.release(l);
 * stats.layerReleased(l, streamed, ms);
 * await stats.readback(buffer.mapAsync(GPUMapMode.READ));
 * stats.end();
 * ```
 */
export class StatsCollector {
  /** The totals. */
  stats: ForwardStats = emptyStats();
  readonly #device: GPUDevice;
  readonly #reader: LayerReader<GPUBuffer>;
  #profile = false;
  #t0 = 0;
  #layers: LayerProfile[] = [];

  /** Collects for passes on `device` reading through `reader`. */
  constructor(device: GPUDevice, reader: LayerReader<GPUBuffer>) {
    this.#device = device;
    this.#reader = reader;
  }

  /** Per-layer sync for timing (the reader keeps per-load timings too). */
  get profile(): boolean {
    return this.#profile;
  }

  set profile(on: boolean) {
    this.#profile = on;
    this.#reader.profile = on;
  }

  /** Zeroes the totals (and the reader's). */
  reset(): void {
    this.stats = emptyStats();
    this.#reader.resetStats();
  }

  /** A pass starts. */
  begin(): void {
    this.#t0 = performance.now();
    this.#layers = [];
  }

  /** A layer was submitted: in profile mode, waits for the GPU and returns the ms. */
  async layerSubmitted(): Promise<number> {
    if (!this.#profile) return 0;
    const c0 = performance.now();
    await this.#device.queue.onSubmittedWorkDone();
    const ms = performance.now() - c0;
    this.stats.computeS += ms / 1000;
    return ms;
  }

  /** A layer's `units` were released: in profile mode, records its row. */
  layerReleased(
    layer: number,
    streamed: boolean,
    computeMs: number,
    units = 1,
  ): void {
    if (!this.#profile) return;
    const lts = streamed ? this.#reader.stats.loads.slice(-units) : [];
    const sum = (f: (t: (typeof lts)[number]) => number) =>
      lts.reduce((a, t) => a + f(t), 0);
    this.#layers.push({
      layer,
      streamed,
      units,
      readMs: sum((t) => t.readMs),
      readWaitMs: sum((t) => t.readWaitMs),
      uploadMs: sum((t) => t.uploadMs),
      computeMs,
    });
  }

  /** Awaits the pass's readback; outside profile mode its wait is the compute time. */
  async readback(done: Promise<unknown>): Promise<void> {
    const w0 = performance.now();
    await done;
    if (!this.#profile) this.stats.computeS += (performance.now() - w0) / 1000;
  }

  /** The pass ended: totals from the reader, wall time, the profile rows. */
  end(): void {
    const rs = this.#reader.stats;
    const s = this.stats;
    s.passes++;
    s.wallS += (performance.now() - this.#t0) / 1000;
    s.readS = rs.readS;
    s.readWaitS = rs.readWaitS;
    s.uploadS = rs.uploadS;
    s.bytesStreamed = rs.bytesStreamed;
    s.unitsInFlight = rs.unitsInFlight;
    if (this.#profile) s.layers.push(...this.#layers);
  }
}

/**
 * Zeroed totals.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { emptyStats } from "./_stats.ts";
 * assert.equal(emptyStats().passes, 0);
 * ```
 */
export function emptyStats(): ForwardStats {
  return {
    passes: 0,
    wallS: 0,
    readS: 0,
    readWaitS: 0,
    uploadS: 0,
    computeS: 0,
    bytesStreamed: 0,
    unitsInFlight: 0,
    layers: [],
  };
}

/**
 * The streaming-floor line from the reader's start-up probe: per layer and
 * per token, timed like the --profile table's read and upload columns
 * (upload = time in writeBuffer on the JS thread).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeFloor } from "./_stats.ts";
 * const line = describeFloor({ bytesStreamedPerToken: 2e9, streamed: [2, 3] },
 *   { layers: 2, mapped: false, readBytesPerS: 2e9, uploadBytesPerS: 1e9 });
 * assert.match(line, /1000\.0 ms read \+ 2000\.0 ms upload per token for 2 streamed layer/);
 * ```
 */
export function describeFloor(
  plan: Pick<ResidencyPlan, "bytesStreamedPerToken" | "streamed">,
  rates: {
    layers: number;
    mapped: boolean;
    readBytesPerS: number;
    uploadBytesPerS: number;
  },
): string {
  const b = plan.bytesStreamedPerToken;
  const S = plan.streamed.length;
  const readMs = b / rates.readBytesPerS * 1000,
    upMs = b / rates.uploadBytesPerS * 1000;
  const f = (ms: number) => ms < 10 ? ms.toFixed(2) : ms.toFixed(1);
  const read = rates.mapped
    ? "no read (the layer files are memory-mapped; the upload copies from the page cache)"
    : `read ${(rates.readBytesPerS / 1e9).toFixed(2)} GB/s = ${
      f(readMs / S)
    } ms/layer`;
  return `streaming floor (timed on the first ${rates.layers} streamed layer(s), like the profile's read and upload columns): ${read}, upload (writeBuffer) ${
    (rates.uploadBytesPerS / 1e9).toFixed(2)
  } GB/s = ${f(upMs / S)} ms/layer → ${f(readMs)} ms read + ${
    f(upMs)
  } ms upload per token for ${S} streamed layer(s); ≥ ${
    f(Math.max(readMs, upMs))
  } ms/token (${
    (1000 / Math.max(readMs, upMs)).toFixed(1)
  } tokens/s) if they overlap fully with each other and the compute`;
}
