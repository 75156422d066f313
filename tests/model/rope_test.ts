import assert from "node:assert/strict";
import { attentionScale, ropeInvFreq } from "../../lib/model/rope.ts";
import type { RopeScaling } from "../../lib/model/config.ts";

function cfg(headDim: number, ropeScaling: RopeScaling | null, extra = {}) {
  return {
    headDim,
    partialRotaryFactor: 1,
    ropeTheta: 10000,
    ropeScaling,
    maxPositionEmbeddings: 1000,
    ...extra,
  };
}

function close(a: ArrayLike<number>, b: number[], tol = 1e-12) {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++) {
    assert.ok(
      Math.abs(a[i] - b[i]) <= tol * Math.max(1, Math.abs(b[i])),
      `[${i}] ${a[i]} vs ${b[i]}`,
    );
  }
}

Deno.test("ropeInvFreq: plain theta^(-2j/d)", () => {
  // d = 6: 10000^0, 10000^(-1/3), 10000^(-2/3)
  close(ropeInvFreq(cfg(6, null)), [
    1,
    1 / Math.cbrt(10000),
    1 / Math.cbrt(1e8),
  ]);
  close(ropeInvFreq(cfg(4, null, { ropeTheta: 1e6 })), [1, 1e-3]);
});

Deno.test("ropeInvFreq: partial rotary uses headDim * factor", () => {
  close(ropeInvFreq(cfg(8, null, { partialRotaryFactor: 0.5 })), [1, 0.01]);
});

Deno.test("ropeInvFreq: linear divides by factor", () => {
  close(ropeInvFreq(cfg(4, { type: "linear", factor: 4 })), [0.25, 0.0025]);
});

Deno.test("ropeInvFreq: dynamic NTK only beyond maxPositionEmbeddings", () => {
  const rs: RopeScaling = { type: "dynamic", factor: 2 };
  close(ropeInvFreq(cfg(4, rs), 500), [1, 0.01]);
  close(ropeInvFreq(cfg(4, rs)), [1, 0.01]);
  // seqLen 2000 = 2 * max: base * (2*2 - 1)^(4/2) = 10000 * 9
  close(ropeInvFreq(cfg(4, rs), 2000), [1, 1 / Math.sqrt(90000)]);
});

Deno.test("ropeInvFreq: llama3 keeps high, divides low, smooths medium frequencies", () => {
  const rs: RopeScaling = {
    type: "llama3",
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 1000,
  };
  // d = 6: frequencies 1, 10000^(-1/3), 10000^(-2/3);
  // wavelengths 2π/f = 6.28 (< 1000/4: kept), 135.7 (< 250: kept), 2916 (> 1000/1: divided by 8)
  const f1 = 1 / Math.cbrt(10000), f2 = 1 / Math.cbrt(1e8);
  close(ropeInvFreq(cfg(6, rs)), [1, f1, f2 / 8]);
  // d = 4: f = 1, 0.01; wavelength 200π = 628.3 lies between 250 and 1000:
  // s = (1000 / 628.3 - 1) / (4 - 1), f' = (1 - s) * 0.01 / 8 + s * 0.01
  const s = (1000 / (200 * Math.PI) - 1) / 3;
  close(ropeInvFreq(cfg(4, rs)), [1, (1 - s) * 0.01 / 8 + s * 0.01]);
  // Llama 3.1 8B settings: the table is monotone and bounded by the unscaled one
  const big = ropeInvFreq({
    ...cfg(128, { ...rs, originalMaxPositionEmbeddings: 8192 }),
    ropeTheta: 500000,
  });
  const plain = ropeInvFreq({ ...cfg(128, null), ropeTheta: 500000 });
  assert.equal(big.length, 64);
  for (let j = 0; j < 64; j++) {
    assert.ok(big[j] <= plain[j] && big[j] >= plain[j] / 8 - 1e-18);
    if (j > 0) assert.ok(big[j] < big[j - 1]);
  }
});

Deno.test("attentionScale is 1/sqrt(headDim)", () => {
  assert.equal(attentionScale({ headDim: 64 }), 0.125);
  assert.equal(attentionScale({ headDim: 2 }), 1 / Math.SQRT2);
});
