/**
 * Sub-layer streaming units (lib/engine/_units.ts): how a layer's tensors
 * group and pack; the plan's choice between whole layers and units; the
 * reader streaming units through a ring smaller than a layer (contents, slot
 * safety within a layer, units in flight) against plain files and a fake
 * upload target; and, on the GPU, tiny models streamed in units giving the
 * float64 reference's logits and greedy ids, the all-resident ids, the
 * budget, at least 2 units in flight, and a valid trace.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  SafetensorsFile,
  SafetensorsWriter,
} from "../../lib/format/safetensors.ts";
import {
  layoutOf,
  readImage,
  type TensorLayout,
} from "../../lib/engine/_layout.ts";
import { layerGroups, packUnits } from "../../lib/engine/_units.ts";
import { LayerReader, type UploadTarget } from "../../lib/engine/reader.ts";
import { planResidency } from "../../lib/engine/plan.ts";
import { AutoModel } from "../../lib/engine/auto_model.ts";
import { Tracer } from "../../lib/engine/trace.ts";
import {
  ARCHITECTURES,
  type LayerRole,
} from "../../lib/model/architectures.ts";
import { BudgetError } from "../../lib/errors.ts";
import { gpuTest } from "../_gpu.ts";
import type { Gpu } from "../../lib/gpu/device.ts";
import {
  loadReferenceModel,
  referenceForward,
  referenceGreedy,
} from "../reference/forward.ts";
import { PROMPT, tempRoot, tinyShards, VARIANTS } from "./_models.ts";
import { assertTraceFormat } from "./_trace.ts";
import { tinyMoeVariants } from "../../lib/testing/tiny_model.ts";
import { ShardDir } from "../../lib/format/shards.ts";
import { expertLayouts } from "../../lib/engine/_experts.ts";

Deno.test("units: groups follow the steps; fused matrices are one group; an unknown role streams whole", () => {
  const fused = layerGroups(
    [
      { ...ARCHITECTURES.llama.steps[0], qkv: "fused", postNorm: true },
      { ...ARCHITECTURES.llama.steps[1], gateUp: "fused", postNorm: true },
    ] as typeof ARCHITECTURES.llama.steps,
    {
      attnNorm: "n1",
      qkvProj: "qkv",
      oProj: "o",
      attnPostNorm: "pn1",
      mlpNorm: "n2",
      gateUpProj: "gu",
      downProj: "d",
      mlpPostNorm: "pn2",
    },
  );
  assert.deepEqual(fused, [
    { group: "attn.q", names: ["n1", "qkv"] },
    { group: "attn.o", names: ["o", "pn1"] },
    { group: "mlp.gate", names: ["n2", "gu"] },
    { group: "mlp.down", names: ["d", "pn2"] },
  ]);
  const odd = layerGroups(ARCHITECTURES.llama.steps, {
    qProj: "q",
    ["expertGate" as LayerRole]: "e",
  });
  assert.equal(odd, null);
  // a moe step: the router with its norm, the shared expert a matrix a
  // group; the routed experts (streamed on their own) are not the layer's
  const moe = layerGroups(ARCHITECTURES.qwen2_moe.steps, {
    attnNorm: "n1",
    qProj: "q",
    kProj: "k",
    vProj: "v",
    oProj: "o",
    mlpNorm: "n2",
    router: "r",
    sharedGate: "sg",
    sharedUp: "su",
    sharedDown: "sd",
    sharedExpertGate: "sgate",
  });
  assert.deepEqual(moe?.slice(4), [
    { group: "moe.router", names: ["n2", "r"] },
    { group: "moe.shared.gate", names: ["sg"] },
    { group: "moe.shared.up", names: ["su"] },
    { group: "moe.shared.down", names: ["sd", "sgate"] },
  ]);
  // packing never reorders and never splits a group
  const sizes: Record<string, number> = { a: 5, b: 5, c: 30, d: 1, e: 1 };
  const groups = Object.keys(sizes).map((n) => ({ group: n, names: [n] }));
  const bytes = (names: string[]) => names.reduce((s, n) => s + sizes[n], 0);
  assert.deepEqual(packUnits(groups, bytes, 10).map((u) => u.names), [
    ["a", "b"],
    ["c"],
    ["d", "e"],
  ]);
  assert.deepEqual(packUnits(groups, bytes, 1e9).length, 1);
});

Deno.test("units: the plan streams whole layers while 2 slots fit, units otherwise, and keeps whole layers resident", () => {
  const base = {
    layerBytes: [100, 100, 100, 100],
    unitBytes: [1, 2, 3, 4].map(() => [25, 25, 25, 25]),
    headBytes: 50,
    kvBytesPerLayer: 5,
    activationBytes: 30,
    slots: 3,
  }; // essentials 100
  // 2 whole slots fit: whole layers, as before units existed
  const whole = planResidency({ ...base, budget: 300 });
  assert.deepEqual([whole.unit, whole.slots, whole.resident.length], [
    "layer",
    2,
    0,
  ]);
  assert.equal(whole.streamedUnits, 4);
  // only one whole slot fits: units of 25 through 3 slots, one layer resident
  const u = planResidency({ ...base, budget: 280 });
  assert.deepEqual(
    [u.unit, u.slots, u.slotBytes, u.resident, u.streamedUnits],
    ["matrices", 3, 25, [0], 12],
  );
  assert.ok(u.totalBytes <= 280);
  assert.equal(u.bytesStreamedPerToken, 300);
  // forced units: the whole-layer ring is never tried
  const forced = planResidency({ ...base, budget: 300, units: "matrices" });
  assert.deepEqual([forced.unit, forced.resident.length], ["matrices", 1]);
  // without prefetch (1 slot wanted) whole layers go first
  const serial = planResidency({ ...base, budget: 280, slots: 1 });
  assert.deepEqual([serial.unit, serial.slots], ["layer", 1]);
  // a layer beyond the largest buffer streams in units even with room to spare
  const big = planResidency({ ...base, budget: 450, maxSlotBytes: 80 });
  assert.deepEqual([big.unit, big.slots, big.resident.length], [
    "matrices",
    3,
    2,
  ]);
  // no units known: one whole slot is the last resort
  const none = planResidency({ ...base, budget: 280, unitBytes: undefined });
  assert.deepEqual([none.unit, none.slots], ["layer", 1]);
  // the error names the smallest slot that would have done
  assert.throws(
    () => planResidency({ ...base, budget: 110 }),
    (e) =>
      e instanceof BudgetError &&
      /one streaming unit slot \(25 B\) need 125 B/.test(e.message),
  );
});

/** The byte ranges of a layout's tensors (without the padding between them). */
function tensorRanges(l: TensorLayout): [number, number][] {
  return [...l.entries.values()].flatMap((e) =>
    e.kind === "vector"
      ? [[e.offset, e.offset + e.n * 4] as [number, number]]
      : e.copies.map((c) =>
        [c.imageOffset, c.imageOffset + c.length] as [number, number]
      )
  );
}

interface FakeBuf {
  label: string;
  data: Uint8Array;
}

function fakeTarget(log: string[]): UploadTarget<FakeBuf> {
  return {
    create: (size, label) => ({ label, data: new Uint8Array(size) }),
    write: (b, off, data) => {
      b.data.set(data, off);
      log.push(b.label);
    },
    wait: () => Promise.resolve(),
    destroy: () => {},
  };
}

/** Layers of three matrices (a, b, c) and a vector, each matrix its own unit. */
async function unitLayers(n: number) {
  const dir = await Deno.makeTempDir({ prefix: "strata-units-" });
  const files: SafetensorsFile[] = [];
  for (let i = 0; i < n; i++) {
    const p = join(dir, `${i}.safetensors`);
    const specs = [
      { name: "a", dtype: "F32" as const, shape: [8, 32] },
      { name: "n", dtype: "F16" as const, shape: [32] },
      { name: "b", dtype: "F32" as const, shape: [16, 32] },
      { name: "c", dtype: "F32" as const, shape: [12, 32] },
    ];
    const w = await SafetensorsWriter.create(p, specs);
    for (const [k, s] of specs.entries()) {
      const count = s.shape.reduce((x, y) => x * y, 1);
      const bytes = s.dtype === "F16"
        ? new Uint8Array(new Uint16Array(count).fill(0x3c00 + i).buffer)
        : new Uint8Array(
          new Float32Array(count).map((_, j) => i * 1e4 + k * 1e3 + j).buffer,
        );
      await w.write(s.name, bytes);
    }
    await w.close();
    files.push(await SafetensorsFile.open(p));
  }
  const layouts = files.map((f) => layoutOf(f, ["a", "n", "b", "c"], 512));
  const units = files.map((f) =>
    [["a", "n"], ["b"], ["c"]].map((names) => layoutOf(f, names, 512))
  );
  const images = await Promise.all(
    units.map((us, i) =>
      Promise.all(us.map(async (l) => {
        const img = new Uint8Array(l.bytes);
        await readImage(files[i], l, img);
        return img;
      }))
    ),
  );
  return {
    files,
    layouts,
    units,
    images,
    cleanup: async () => {
      for (const f of files) f.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

for (
  const [prefetch, slots, mmap] of [
    [true, 3, false],
    [true, 3, true],
    [true, 2, true],
    [false, 1, false],
    [false, 1, true],
  ] as const
) {
  Deno.test(`units: the reader streams units through a ring smaller than a layer (prefetch ${prefetch}, ${slots} slots, mmap ${mmap})`, async () => {
    const s = await unitLayers(5);
    const log: string[] = [];
    const slotBytes = Math.max(...s.units.flat().map((l) => l.bytes));
    assert.ok(slotBytes * slots < s.layouts[1].bytes * 2);
    const reader = await LayerReader.create({
      target: fakeTarget(log),
      files: s.files,
      layouts: s.layouts,
      units: s.units as TensorLayout[][],
      eager: prefetch,
      resident: [0],
      streamed: [1, 2, 3, 4],
      slots,
      slotBytes,
      prefetch,
      mmap,
    });
    try {
      const inUse = new Map<string, boolean>();
      for (let pass = 0; pass < 3; pass++) {
        for (let l = 0; l < 5; l++) {
          let before = log.length;
          const got = await reader.acquire(l);
          if (!got.streamed) {
            assert.equal(got.units.length, 1);
            await reader.release(l);
            continue;
          }
          assert.equal(got.units.length, 3);
          for (let u = 0; u < 3; u++) {
            if (u > 0) {
              before = log.length;
              await reader.arrive(l, u);
            }
            for (const label of log.slice(before)) {
              assert.notEqual(inUse.get(label), true, `write into ${label}`);
            }
            // the unit's tensors are in place (the alignment padding between
            // them may hold an earlier unit's bytes: nothing reads it)
            const buf = got.units[u].buffers[0];
            for (const [a, b] of tensorRanges(got.units[u].layout)) {
              assert.deepEqual(
                buf.data.subarray(a, b),
                s.images[l][u].subarray(a, b),
                `pass ${pass} layer ${l} unit ${u}`,
              );
            }
            inUse.set(buf.label, true);
            // (the commands reading unit u would be submitted here)
            before = log.length;
            await reader.release(l);
            inUse.set(buf.label, false);
          }
        }
        reader.pump();
        await new Promise((r) => setTimeout(r, 20));
      }
      const inFlight = reader.stats.unitsInFlight;
      if (!prefetch) assert.equal(inFlight, 0);
      else assert.ok(inFlight >= slots - 1 && inFlight >= 2, `${inFlight}`);
      // a unit out of order is an error
      await reader.acquire(0);
      await reader.release(0);
      await assert.rejects(() => reader.arrive(1, 1), /out of order/);
    } finally {
      await reader.destroy();
      await s.cleanup();
    }
  });
}

/**
 * What a streamed run must equal: the float64 reference's last logits and
 * greedy ids, and the all-resident run's ids; with the all-resident plan's
 * mean layer bytes and its essentials (KV, head, activations).
 */
async function expected(g: Gpu, shards: string, hf: string) {
  const ref = await loadReferenceModel(hf);
  const wantIds = referenceGreedy(ref.weights, ref.config, PROMPT, 8);
  const wantLogits = referenceForward(ref.weights, ref.config, PROMPT).at(-1)!;
  const all = await AutoModel.fromPretrained(shards, {
    gpu: g,
    gpuMemory: "1GB",
    maxSeqLen: 64,
  });
  const resident = await all.generate(PROMPT, {
    maxNewTokens: 8,
    temperature: 0,
  });
  const p = all.plan;
  await all.dispose();
  return {
    wantIds,
    wantLogits,
    resident,
    layer: p.residentBytes / p.resident.length,
    essentials: p.kvBytes + p.headBytes + p.activationBytes,
  };
}

/**
 * A model streamed in units gives the reference's logits (within 1e-3) and
 * greedy ids, the all-resident ids, a peak under `budget` and at least 2
 * units in flight.
 */
async function assertAsExpected(
  m: AutoModel,
  want: Awaited<ReturnType<typeof expected>>,
  budget: number,
): Promise<void> {
  const logits = await m.logits(PROMPT);
  let err = 0;
  for (let i = 0; i < logits.length; i++) {
    err = Math.max(err, Math.abs(logits[i] - want.wantLogits[i]));
  }
  assert.ok(err < 1e-3, `max |logit error| ${err}`);
  const ids = await m.generate(PROMPT, { maxNewTokens: 8, temperature: 0 });
  assert.deepEqual(ids, want.resident);
  assert.deepEqual(ids, want.wantIds.slice(0, ids.length));
  const st = m.lastStats!;
  assert.ok(st.peakGpuBytes <= budget, "peak under the budget");
  assert.ok(
    st.forward.unitsInFlight >= 2,
    `units in flight ${st.forward.unitsInFlight}`,
  );
}

const PICK = [
  VARIANTS[0], // llama f32
  VARIANTS.find((v) => v.arch === "qwen2")!, // q/k/v biases
  VARIANTS.find((v) => v.arch === "qwen3")!, // q/k norms
];

for (const v0 of PICK) {
  const v = { ...v0, layers: 4, name: `${v0.name}-4l-units` };
  gpuTest(
    `units: ${v.name} streamed in units = float64 reference = all resident, within the budget`,
    async (g) => {
      const { hf, shards } = await tinyShards(v.name, v);
      const want = await expected(g, shards, hf);
      const { layer, essentials } = want;
      // two whole-layer slots would fit: units only because they are forced;
      // then one whole-layer slot beside the essentials: units by themselves
      for (
        const [budget, streamUnits] of [
          [essentials + 2 * layer + 1024, "matrices"],
          [essentials + layer + 1024, "auto"],
        ] as const
      ) {
        const trace = streamUnits === "auto" ? new Tracer() : undefined;
        const m = await AutoModel.fromPretrained(shards, {
          gpu: g,
          gpuMemory: budget,
          maxSeqLen: 64,
          streamUnits,
          trace,
        });
        try {
          assert.equal(m.plan.unit, "matrices");
          assert.equal(m.plan.slots, 3);
          assert.ok(m.plan.slotBytes < layer / 2, "a slot is a sub-layer unit");
          assert.ok(m.plan.streamed.length > 0);
          await assertAsExpected(m, want, budget);
          if (trace) {
            const path = join(await tempRoot(), `units-${v.name}.json`);
            await trace.write(path);
            const doc = assertTraceFormat(await Deno.readTextFile(path));
            const ups = doc.traceEvents.filter((e) => e.cat === "upload");
            assert.ok(ups.some((e) => (e.args!.part as number) > 0));
            assert.ok(ups.every((e) => /^upload L\d+\.\d+$/.test(e.name)));
          }
        } finally {
          await m.dispose();
        }
      }
    },
  );
}

for (const arch of ["qwen2_moe", "mixtral"] as const) {
  gpuTest(
    `units: ${arch} layers streamed in units (attention, router${
      arch === "qwen2_moe" ? ", the shared expert's matrices" : ""
    }), experts through the cache = float64 reference = all resident`,
    async (g) => {
      const v0 = tinyMoeVariants().find((x) =>
        x.arch === arch && !x.sharded && x.dtype === "F32"
      )!;
      const v = { ...v0, name: `${v0.name}-units` };
      const { hf, shards } = await tinyShards(v.name, v);
      const want = await expected(g, shards, hf);
      const dir = await ShardDir.open(shards);
      const cfg = dir.config;
      const files = [];
      for (let i = 0; i < cfg.numLayers; i++) {
        files.push(await SafetensorsFile.open(dir.layerPath(i)));
      }
      const ex = expertLayouts(cfg, files, g.limits);
      for (const f of files) f.close();
      const { layer, essentials } = want; // experts aside
      const budget = essentials + 1.5 * layer + cfg.moe!.topK * ex.slotBytes +
        4096;
      const m = await AutoModel.fromPretrained(shards, {
        gpu: g,
        gpuMemory: budget,
        maxSeqLen: 64,
        streamUnits: "matrices",
      });
      try {
        assert.equal(m.plan.unit, "matrices");
        assert.ok(m.plan.streamed.length > 0);
        await assertAsExpected(m, want, budget);
        assert.ok(m.plan.streamedUnits > m.plan.streamed.length, "sub-layer");
      } finally {
        await m.dispose();
      }
    },
  );
}
