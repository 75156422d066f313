/**
 * The GPU floors' overlap probe (lib/engine/_floors.ts): the share of the
 * shorter of an upload and a matvec that does not hide behind the longer,
 * by hand on numbers, and measured on the test adapter (a number in [0, 1]
 * from timings that are all positive).
 */
import assert from "node:assert/strict";
import { overlapOf, overlapProbe } from "../../lib/engine/_floors.ts";
import { gpuTest } from "../_gpu.ts";

Deno.test("floors: overlapOf is the unhidden share of the shorter job, clamped", () => {
  assert.equal(overlapOf(2, 1, 2), 0);
  assert.equal(overlapOf(1, 2, 2.25), 0.25);
  assert.equal(overlapOf(1, 1, 2), 1);
  assert.equal(overlapOf(1, 1, 5), 1);
  assert.equal(overlapOf(1, 1, 0.5), 0);
  assert.equal(overlapOf(0, 1, 1), 0);
});

gpuTest(
  "floors: the overlap probe times an upload beside a matvec",
  async (g) => {
    const size = 16 << 20;
    const host = new Uint8Array(size).fill(3);
    const a = await overlapProbe(g, "f16", host, size);
    assert.ok(Number.isFinite(a) && a >= 0 && a <= 1, `overlap ${a}`);
  },
);
