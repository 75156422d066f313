/**
 * One forward pass out of a trace (lib/engine/trace.ts): its spans per layer,
 * how many streamed layers' reads or uploads overlap the compute of the layer
 * before, and an SVG picture of it (read, upload and compute lanes per
 * layer, with the floor lines) that `bench` writes beside its numbers.
 *
 * @module
 */
import type { TraceEvent, TraceJson } from "../engine/trace.ts";

/** A span of one pass, in ms relative to the pass's start. */
export interface PassSpan {
  /** Start, ms after the pass began (negative: read or uploaded ahead, during the pass before). */
  start: number;
  /** End, ms after the pass began. */
  end: number;
}

/** One layer's spans in a pass. */
export interface LayerLanes {
  /** Layer index. */
  layer: number;
  /** Streamed (true) or resident. */
  streamed: boolean;
  /** Disk reads feeding this pass. */
  read: PassSpan[];
  /** Uploads feeding this pass. */
  upload: PassSpan[];
  /** GPU compute. */
  compute: PassSpan[];
}

/** The spans of one forward pass. */
export interface PassTimeline {
  /** The pass index. */
  pass: number;
  /** Its token step. */
  step: number;
  /** Duration of the pass span (ms). */
  wallMs: number;
  /** How GPU compute was timed. */
  timing: string;
  /** One entry per decoder layer. */
  layers: LayerLanes[];
  /** The head's compute. */
  head: PassSpan[];
  /** The readback wait. */
  readback: PassSpan[];
}

const spansOf = (ev: TraceEvent[], t0: number): PassSpan[] =>
  ev.map((e) => ({
    start: (e.ts - t0) / 1000,
    end: (e.ts + (e.dur ?? 0) - t0) / 1000,
  }));

/**
 * The forward passes of a trace, in order (pass index and step), for
 * {@link passTimeline}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tracePasses } from "./timeline.ts";
 * assert.deepEqual(tracePasses({ traceEvents: [], displayTimeUnit: "ms", otherData: {} }), []);
 * ```
 */
export function tracePasses(
  doc: TraceJson,
): { pass: number; step: number; name: string }[] {
  return doc.traceEvents
    .filter((e) =>
      e.ph === "X" && e.cat === "pass" &&
      (e.name === "prefill" || e.name === "decode")
    )
    .map((e) => ({
      pass: e.args!.pass as number,
      step: e.args!.step as number,
      name: e.name,
    }));
}

/**
 * The spans of forward pass `pass` of a trace, relative to its start.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { passTimeline } from "./timeline.ts";
 * const doc = {
 *   displayTimeUnit: "ms" as const,
 *   otherData: { gpu_timing: "timestamp-query" },
 *   traceEvents: [
 *     { name: "decode", cat: "pass", ph: "X" as const, ts: 1000, dur: 3000, pid: 1, tid: 1, args: { pass: 0, step: 1 } },
 *     { name: "upload L0", cat: "upload", ph: "X" as const, ts: 500, dur: 400, pid: 1, tid: 3, args: { layer: 0, pass: 0 } },
 *     { name: "compute L0", cat: "compute", ph: "X" as const, ts: 1200, dur: 1000, pid: 1, tid: 4, args: { layer: 0, streamed: true, pass: 0 } },
 *   ],
 * };
 * const t = passTimeline(doc, 0);
 * assert.equal(t.wallMs, 3);
 * assert.deepEqual(t.layers[0].upload, [{ start: -0.5, end: -0.1 }]);
 * assert.equal(t.layers[0].streamed, true);
 * ```
 */
export function passTimeline(doc: TraceJson, pass: number): PassTimeline {
  const ev = doc.traceEvents.filter((e) =>
    e.ph === "X" && e.args?.pass === pass
  );
  const p = ev.find((e) =>
    e.cat === "pass" && (e.name === "prefill" || e.name === "decode")
  );
  if (!p) throw new Error(`trace: no forward pass ${pass}`);
  const t0 = p.ts;
  const layers = new Map<number, LayerLanes>();
  const lane = (layer: number) => {
    let l = layers.get(layer);
    if (!l) {
      l = { layer, streamed: false, read: [], upload: [], compute: [] };
      layers.set(layer, l);
    }
    return l;
  };
  const head: TraceEvent[] = [];
  for (const e of ev) {
    const layer = e.args!.layer;
    if (e.cat === "compute" && layer === "head") head.push(e);
    else if (typeof layer !== "number") continue;
    else if (e.cat === "compute") {
      lane(layer).compute.push(...spansOf([e], t0));
      lane(layer).streamed = e.args!.streamed === true;
    } else if (e.cat === "read" || e.cat === "upload") {
      lane(layer)[e.cat].push(...spansOf([e], t0));
      lane(layer).streamed = true;
    }
  }
  return {
    pass,
    step: p.args!.step as number,
    wallMs: (p.dur ?? 0) / 1000,
    timing: String(doc.otherData.gpu_timing ?? "unknown"),
    layers: [...layers.values()].sort((a, b) => a.layer - b.layer),
    head: spansOf(head, t0),
    readback: spansOf(ev.filter((e) => e.cat === "readback"), t0),
  };
}

/**
 * Over the passes of a trace: for each streamed layer l+1 that follows a
 * streamed layer l (`pairs`), whether a read or upload span of l+1 (feeding
 * that pass) overlaps the compute span of l (`overlapping`). Loads read and
 * uploaded before the pass began (`ahead`: with prefetch, the first ring
 * slots of the next pass are filled while the head computes and the readback
 * waits) cannot overlap layer l's compute and are counted apart.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { streamOverlap } from "./timeline.ts";
 * const none = streamOverlap({ traceEvents: [], displayTimeUnit: "ms", otherData: {} });
 * assert.deepEqual(none, { pairs: 0, overlapping: 0, ahead: 0 });
 * ```
 */
export function streamOverlap(
  doc: TraceJson,
): { pairs: number; overlapping: number; ahead: number } {
  let pairs = 0, overlapping = 0, ahead = 0;
  for (const { pass } of tracePasses(doc)) {
    const t = passTimeline(doc, pass);
    const by = new Map(t.layers.map((l) => [l.layer, l]));
    for (const l of t.layers) {
      const next = by.get(l.layer + 1);
      if (!l.streamed || !next?.streamed || l.compute.length === 0) continue;
      pairs++;
      const c = l.compute[0];
      const io = [...next.read, ...next.upload];
      if (io.some((s) => s.start < c.end && s.end > c.start)) overlapping++;
      else if (io.length > 0 && io.every((s) => s.end <= 0)) ahead++;
    }
  }
  return { pairs, overlapping, ahead };
}

/** A vertical line on the picture (a floor), ms after the pass began. */
export interface FloorLine {
  /** Label. */
  label: string;
  /** Position (ms after the pass began). */
  ms: number;
}

/** Options of {@link timelineSvg}. */
export interface TimelineSvgOptions {
  /** Title line. */
  title: string;
  /** Small print under the picture (where and how it was made). */
  note?: string;
  /** Floor lines. */
  floors?: FloorLine[];
  /** Width in pixels (default 960). */
  width?: number;
}

const COLORS = {
  read: "#4e79a7",
  upload: "#f28e2b",
  compute: "#59a14f",
  head: "#b07aa1",
  readback: "#9c9c9c",
};

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");

const fmt = (n: number) => Number(n.toFixed(2)).toString();

/**
 * An SVG picture of one forward pass: a row per layer (then the head and
 * the readback), each with a read, an upload and a compute lane, the time
 * axis in ms from the pass's start (loads read or uploaded during the pass
 * before are left of 0), and the floor lines.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { timelineSvg } from "./timeline.ts";
 * const svg = timelineSvg({
 *   pass: 1, step: 1, wallMs: 4, timing: "timestamp-query",
 *   layers: [{ layer: 0, streamed: true, read: [], upload: [{ start: -1, end: 0.5 }], compute: [{ start: 1, end: 3 }] }],
 *   head: [{ start: 3, end: 3.5 }], readback: [{ start: 3, end: 4 }],
 * }, { title: "one token", floors: [{ label: "compute floor", ms: 2 }] });
 * assert.ok(svg.startsWith("<svg"));
 * assert.ok(svg.includes('data-lane="upload"'));
 * ```
 */
export function timelineSvg(
  t: PassTimeline,
  opts: TimelineSvgOptions,
): string {
  const width = opts.width ?? 960;
  const left = 118, right = 24, top = 100, rowH = 18, lane = 5;
  const rows = t.layers.length + 2;
  const floors = opts.floors ?? [];
  const all = [
    ...t.layers.flatMap((l) => [...l.read, ...l.upload, ...l.compute]),
    ...t.head,
    ...t.readback,
  ];
  const t0 = Math.min(0, ...all.map((s) => s.start));
  const t1 = Math.max(
    t.wallMs,
    ...all.map((s) => s.end),
    ...floors.map((f) => f.ms),
  ) * 1.02;
  const plotW = width - left - right;
  const x = (ms: number) => left + (ms - t0) / (t1 - t0) * plotW;
  // the note, in lines of at most ~150 characters
  const noteLines: string[] = [];
  for (const word of (opts.note ?? "").split(" ")) {
    const last = noteLines.at(-1);
    if (last !== undefined && last.length + word.length < 150) {
      noteLines[noteLines.length - 1] = `${last} ${word}`;
    } else if (word) noteLines.push(word);
  }
  const height = top + rows * rowH + 50 + 14 * noteLines.length;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="18" font-size="14" font-weight="bold">${
      esc(opts.title)
    }</text>`,
  );
  // legend
  let lx = left;
  for (
    const [name, color] of [
      ["read", COLORS.read],
      ["upload (writeBuffer)", COLORS.upload],
      ["GPU compute", COLORS.compute],
      ["head", COLORS.head],
      ["readback wait", COLORS.readback],
    ]
  ) {
    out.push(
      `<rect x="${lx}" y="28" width="10" height="10" fill="${color}"/>`,
      `<text x="${lx + 14}" y="37">${esc(name)}</text>`,
    );
    lx += 30 + name.length * 6.6;
  }
  // time axis
  const span = t1 - t0;
  const stepMs = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    .find((s) => span / s <= 12) ?? 2000;
  const axisY = top + rows * rowH + 4;
  for (let ms = Math.ceil(t0 / stepMs) * stepMs; ms <= t1; ms += stepMs) {
    const xx = fmt(x(ms));
    out.push(
      `<line x1="${xx}" y1="${
        top - 4
      }" x2="${xx}" y2="${axisY}" stroke="#eeeeee"/>`,
      `<text x="${xx}" y="${axisY + 14}" text-anchor="middle">${
        fmt(ms)
      }</text>`,
    );
  }
  out.push(
    `<text x="${left + plotW / 2}" y="${
      axisY + 30
    }" text-anchor="middle">ms from the start of the pass (negative: read or uploaded during the pass before)</text>`,
  );
  const bar = (
    s: PassSpan,
    y: number,
    h: number,
    color: string,
    lane: string,
  ) =>
    `<rect data-lane="${lane}" x="${fmt(x(s.start))}" y="${fmt(y)}" width="${
      fmt(Math.max(0.75, x(s.end) - x(s.start)))
    }" height="${h}" fill="${color}"/>`;
  t.layers.forEach((l, i) => {
    const y = top + i * rowH;
    out.push(
      `<g data-layer="${l.layer}">`,
      `<text x="${left - 6}" y="${y + 12}" text-anchor="end" fill="${
        l.streamed ? "#000000" : "#777777"
      }">L${l.layer} ${l.streamed ? "streamed" : "resident"}</text>`,
    );
    for (const s of l.read) out.push(bar(s, y + 1, lane, COLORS.read, "read"));
    for (const s of l.upload) {
      out.push(bar(s, y + 1 + lane, lane, COLORS.upload, "upload"));
    }
    for (const s of l.compute) {
      out.push(bar(s, y + 1 + 2 * lane, lane, COLORS.compute, "compute"));
    }
    out.push(`</g>`);
  });
  const yh = top + t.layers.length * rowH;
  out.push(
    `<text x="${left - 6}" y="${yh + 12}" text-anchor="end">head</text>`,
  );
  for (const s of t.head) {
    out.push(bar(s, yh + 1 + 2 * lane, lane, COLORS.head, "head"));
  }
  const yr = yh + rowH;
  out.push(
    `<text x="${left - 6}" y="${yr + 12}" text-anchor="end">readback</text>`,
  );
  for (const s of t.readback) {
    out.push(bar(s, yr + 1 + lane, lane, COLORS.readback, "readback"));
  }
  // pass start and end, floors
  const vline = (
    ms: number,
    color: string,
    dash: string,
    label: string,
    k: number,
    key = label,
  ) => {
    const xx = fmt(x(ms));
    const anchor = x(ms) > width - 120
      ? "end"
      : x(ms) < left + 60
      ? "start"
      : "middle";
    out.push(
      `<line data-floor="${esc(key)}" x1="${xx}" y1="${
        top - 6
      }" x2="${xx}" y2="${axisY}" stroke="${color}" stroke-width="1.5"${
        dash ? ` stroke-dasharray="${dash}"` : ""
      }/>`,
      `<text x="${xx}" y="${
        top - 10 - 12 * k
      }" text-anchor="${anchor}" fill="${color}">${esc(label)}</text>`,
    );
  };
  vline(0, "#000000", "", "pass start", 0);
  vline(t.wallMs, "#000000", "", `pass end ${fmt(t.wallMs)} ms`, 0, "pass end");
  floors.forEach((f, k) =>
    vline(f.ms, "#d62728", "5,3", `${f.label} ${fmt(f.ms)} ms`, k + 1, f.label)
  );
  noteLines.forEach((line, k) =>
    out.push(
      `<text x="${left}" y="${
        height - 8 - 14 * (noteLines.length - 1 - k)
      }" fill="#555555">${esc(line)}</text>`,
    )
  );
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
