/**
 * `--trace`: on a 12-layer tiny model streamed under a budget, the trace is
 * valid trace-event JSON (tests/engine/_trace.ts), the reads or uploads of
 * layer l+1 overlap the compute of layer l for most streamed layers with
 * prefetch on and for none without, the GPU-memory counters stay within the
 * budget, tracing leaves the ids unchanged, and the SVG timeline of a pass is
 * well-formed XML with a row per layer; the CLI writes the file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gpu, gpuTest } from "../_gpu.ts";
import { AutoModel } from "../../lib/engine/auto_model.ts";
import { type TraceJson, Tracer } from "../../lib/engine/trace.ts";
import {
  passTimeline,
  streamOverlap,
  timelineSvg,
  tracePasses,
} from "../../lib/bench/timeline.ts";
import type { Gpu } from "../../lib/gpu/device.ts";
import { PROMPT, tempRoot, tinyShards, VARIANTS } from "./_models.ts";
import { allElements, assertTraceFormat, parseXml } from "./_trace.ts";

const V = {
  ...VARIANTS[1], // llama, F16
  name: "llama-f16-12l-trace",
  layers: 12,
  hidden: 256,
  intermediate: 1024,
};
const NEW = 6;
const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** Essentials + `layers` layer sizes + 64 KiB: everything streams through the ring. */
async function budgetFor(g: Gpu, shards: string, layers: number) {
  const m = await AutoModel.fromPretrained(shards, {
    gpu: g,
    gpuMemory: "1GB",
    maxSeqLen: 64,
  });
  const p = m.plan;
  await m.dispose();
  return Math.floor(
    p.kvBytes + p.headBytes + p.activationBytes +
      layers * p.residentBytes / p.resident.length + 65536,
  );
}

async function tracedRun(
  g: Gpu,
  o: { prefetch: boolean; timestamps?: boolean },
): Promise<{ doc: TraceJson; budget: number; ids: number[]; m: AutoModel }> {
  const { shards } = await tinyShards(V.name, V);
  const budget = await budgetFor(g, shards, o.prefetch ? 3 : 1);
  const trace = new Tracer({ timestamps: o.timestamps });
  const m = await AutoModel.fromPretrained(shards, {
    gpu: g,
    gpuMemory: budget,
    maxSeqLen: 64,
    prefetch: o.prefetch,
    trace,
  });
  try {
    assert.equal(m.plan.resident.length, 0, "everything streams");
    assert.equal(m.plan.slots, o.prefetch ? 3 : 1);
    const ids = await m.generate(PROMPT, { maxNewTokens: NEW, temperature: 0 });
    const path = join(await tempRoot(), `trace-${o.prefetch}.json`);
    await trace.write(path);
    const doc = assertTraceFormat(await Deno.readTextFile(path));
    return { doc, budget, ids, m };
  } finally {
    await m.dispose();
  }
}

/** What every trace of a generate call holds, whatever the mode. */
function assertContents(doc: TraceJson, budget: number, tokens: number) {
  const X = doc.traceEvents.filter((e) => e.ph === "X");
  const passes = tracePasses(doc);
  // one prefill pass (the prompt fits a chunk), then one pass per further token
  assert.equal(passes.length, tokens);
  assert.deepEqual(passes.map((p) => p.step), [...Array(tokens).keys()]);
  assert.equal(X.filter((e) => e.cat === "sample").length, tokens);
  for (const e of X) {
    if (e.cat === "read" || e.cat === "upload") {
      assert.equal(typeof e.args!.layer, "number");
      assert.ok((e.args!.bytes as number) > 0, "bytes");
      assert.equal(typeof e.args!.unit, "number");
      const pass = e.args!.pass as number;
      // loads prefetched for a pass that never ran have no step
      if (passes.some((p) => p.pass === pass)) {
        assert.equal(typeof e.args!.step, "number", `step of ${e.name}`);
      }
    }
  }
  for (const { pass, step } of passes) {
    const t = passTimeline(doc, pass);
    assert.equal(t.step, step);
    assert.equal(t.layers.length, V.layers, "a compute span per layer");
    assert.ok(t.layers.every((l) => l.compute.length === 1 && l.streamed));
    assert.equal(t.head.length, 1);
    // every streamed layer was uploaded for this pass (mapped: no read)
    if (pass > 0) {
      assert.ok(t.layers.every((l) => l.upload.length === 1), `pass ${pass}`);
    }
    assert.equal(t.readback.length, 1);
  }
  const used = doc.traceEvents.filter((e) =>
    e.ph === "C" && e.name.startsWith("GPU memory in use")
  );
  assert.ok(used.length >= tokens, "a memory counter per pass");
  for (const c of used) {
    const total = Object.values(c.args!).reduce(
      (a: number, b) => a + (b as number),
      0,
    );
    assert.ok(total > 0 && total <= budget, `in use ${total} ≤ ${budget}`);
  }
  const b = doc.traceEvents.filter((e) =>
    e.ph === "C" && e.name.startsWith("GPU memory budget")
  );
  assert.ok(b.length > 0 && b.every((c) => c.args!.budget === budget));
}

gpuTest(
  "trace: streamed with prefetch, reads/uploads overlap compute; valid trace; same ids",
  async (g) => {
    const { doc, budget, ids } = await tracedRun(g, { prefetch: true });
    assertContents(doc, budget, ids.length);
    // tracing changes nothing in the output
    const { shards } = await tinyShards(V.name, V);
    const plain = await AutoModel.fromPretrained(shards, {
      gpu: g,
      gpuMemory: budget,
      maxSeqLen: 64,
    });
    assert.deepEqual(
      await plain.generate(PROMPT, { maxNewTokens: NEW, temperature: 0 }),
      ids,
    );
    await plain.dispose();
    const ts = g.device.features.has("timestamp-query");
    assert.equal(
      doc.otherData.gpu_timing,
      ts ? "timestamp-query" : "submit-to-done",
    );
    const o = streamOverlap(doc);
    console.log(
      `prefetch on: read/upload of layer l+1 overlaps compute of layer l in ${o.overlapping}/${o.pairs} streamed pairs; ${o.ahead} more uploaded before their pass began (${doc.otherData.gpu_timing})`,
    );
    assert.equal(o.pairs, (V.layers - 1) * ids.length);
    // the pump fills the ring's other slots for the next pass while the head
    // computes: at most slots - 1 = 2 pairs a pass
    assert.ok(o.ahead <= 2 * ids.length);
    if (ts && doc.otherData.gpu_runs_inside_submit) {
      // wgpu's GL backend runs the work inside queue.submit: nothing overlaps
      console.log("the GPU work runs inside queue.submit here: no overlap");
      assert.equal(o.overlapping, 0);
    } else if (ts) {
      assert.equal(doc.otherData.gpu_runs_inside_submit, false);
      // overlap is timing: on a loaded 2-core host (the "GPU" shares the CPU
      // with the reader and other test processes) one run can fall short, so
      // the best of up to three runs must show it; without prefetch every
      // run shows none (the next test)
      const most = (x: typeof o) => x.overlapping > (x.pairs - x.ahead) / 2;
      let best = o;
      for (let run = 1; run < 3 && !most(best); run++) {
        const again = streamOverlap(
          (await tracedRun(g, { prefetch: true })).doc,
        );
        console.log(`rerun ${run}: ${again.overlapping}/${again.pairs}`);
        if (again.overlapping > best.overlapping) best = again;
      }
      assert.ok(
        most(best),
        `most pairs overlap: ${best.overlapping}/${best.pairs - best.ahead}`,
      );
    } else {
      // submit-to-done spans end at the queue's poll: they cannot show overlap honestly
      console.log("no timestamp-query on this adapter: overlap not asserted");
    }
  },
);

gpuTest(
  "trace: --no-prefetch, no read or upload overlaps the compute of the layer before",
  async (g) => {
    for (const timestamps of [true, false]) {
      const { doc, budget, ids } = await tracedRun(g, {
        prefetch: false,
        timestamps,
      });
      assertContents(doc, budget, ids.length);
      const o = streamOverlap(doc);
      console.log(
        `prefetch off: ${o.overlapping}/${o.pairs} (${doc.otherData.gpu_timing})`,
      );
      assert.equal(o.pairs, (V.layers - 1) * ids.length);
      assert.equal(o.overlapping, 0);
      assert.equal(o.ahead, 0, "nothing is uploaded ahead");
      // the serial loop waits for the GPU after each streamed layer
      assert.ok(
        doc.traceEvents.filter((e) => e.name === "wait for GPU").length >=
          V.layers * ids.length,
      );
    }
  },
);

gpuTest(
  "trace: submit-to-done timing when timestamps are off, labelled so",
  async (g) => {
    const { doc, budget, ids } = await tracedRun(g, {
      prefetch: true,
      timestamps: false,
    });
    assertContents(doc, budget, ids.length);
    assert.equal(doc.otherData.gpu_timing, "submit-to-done");
    const compute = doc.traceEvents.filter((e) => e.cat === "compute");
    assert.ok(compute.length > 0);
    assert.ok(
      compute.every((e) => String(e.args!.timing).startsWith("submit-to-done")),
    );
  },
);

gpuTest(
  "trace: the SVG timeline of a decoded token is well-formed, a row per layer",
  async (g) => {
    const { doc } = await tracedRun(g, { prefetch: true });
    const decode = tracePasses(doc).filter((p) => p.name === "decode").at(-1)!;
    const t = passTimeline(doc, decode.pass);
    const svg = timelineSvg(t, {
      title: "test <one> token & more",
      note: "made by tests/engine/trace_test.ts",
      floors: [{ label: "compute floor", ms: 1 }, {
        label: "read+upload floor",
        ms: 2,
      }],
    });
    const root = parseXml(svg);
    assert.equal(root.name, "svg");
    const els = allElements(root);
    const rows = els.filter((e) => e.name === "g" && e.attrs["data-layer"]);
    assert.deepEqual(
      rows.map((r) => Number(r.attrs["data-layer"])),
      [...Array(V.layers).keys()],
    );
    for (const r of rows) {
      const lanes = r.children.filter((c) => c.name === "rect").map((c) =>
        c.attrs["data-lane"]
      );
      assert.ok(lanes.includes("compute"), `row ${r.attrs["data-layer"]}`);
      assert.ok(lanes.includes("upload"), `row ${r.attrs["data-layer"]}`);
    }
    const floors = els.filter((e) => e.name === "line" && e.attrs["data-floor"])
      .map((e) => e.attrs["data-floor"]);
    assert.ok(floors.includes("compute floor"));
    assert.ok(floors.includes("read+upload floor"));
    assert.ok(
      els.some((e) =>
        e.name === "text" && e.text === "test <one> token & more"
      ),
    );
    // every bar lies within the picture
    const width = Number(root.attrs.width);
    for (const e of els.filter((e) => e.attrs["data-lane"])) {
      const x = Number(e.attrs.x), w = Number(e.attrs.width);
      assert.ok(x >= 0 && x + w <= width + 1, `bar at ${x}+${w}`);
    }
    // and the parser is strict
    assert.throws(() => parseXml("<svg><g></svg>"));
    assert.throws(() => parseXml('<svg a="1" a="2"/>'));
    assert.throws(() => parseXml("<svg>&</svg>"));
  },
);

gpuTest(
  "trace: run --trace FILE --no-prefetch writes the trace; a bad path fails before loading",
  async (g) => {
    const { shards } = await tinyShards(V.name, V);
    const budget = await budgetFor(g, shards, 1);
    const path = join(await tempRoot(), "cli-trace.json");
    const run = async (args: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", CLI, "run", shards, ...args],
        env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
    };
    const r = await run([
      "--prompt-ids",
      PROMPT.join(","),
      "--max-new-tokens",
      "3",
      "--temperature",
      "0",
      "--gpu-memory",
      String(budget),
      "--max-seq-len",
      "64",
      "--no-prefetch",
      "--json",
      "--trace",
      path,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /trace: .*cli-trace\.json/);
    const doc = assertTraceFormat(await Deno.readTextFile(path));
    const o = streamOverlap(doc);
    assert.ok(o.pairs > 0);
    assert.equal(o.overlapping, 0);
    await assert.rejects(Deno.stat(`${path}.partial`));

    const bad = await run([
      "--prompt-ids",
      "1",
      "--trace",
      "/no/such/dir/t.json",
    ]);
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      /^strata: error: --trace \/no\/such\/dir\/t\.json: directory .* does not exist\n$/,
    );
  },
);

if (gpu === null) console.warn("trace tests need a GPU");
