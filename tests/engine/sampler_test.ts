import assert from "node:assert/strict";
import {
  type Candidates,
  MAX_CANDIDATES,
  Sampler,
} from "../../lib/engine/sampler.ts";
import { UsageError } from "../../lib/errors.ts";

/** Candidates from logits; ids are given or 0..n-1. */
function cand(logits: number[], ids?: number[]): Candidates {
  return {
    values: Float32Array.from(logits),
    indices: Uint32Array.from(ids ?? logits.map((_, i) => i)),
  };
}

/** Candidates whose softmax is exactly `p` (logits = log p). */
function fromProbs(p: number[]): Candidates {
  return cand(p.map(Math.log));
}

function closeArr(a: number[], b: number[], tol = 1e-6) {
  assert.equal(a.length, b.length, `${a} vs ${b}`);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - b[i]) < tol, `${a} vs ${b}`);
  }
}

Deno.test("sampler: greedy takes the argmax, ties to the lower id", () => {
  const g = new Sampler({ temperature: 0 });
  assert.equal(g.greedy, true);
  assert.equal(g.candidates, 1);
  assert.equal(g.sample(cand([0.5, 3, -1, 2.9], [10, 20, 30, 40])), 20);
  // tie between ids 9 and 4 (listed first 9): the lower id wins
  assert.equal(g.sample(cand([1, 5, 5, 2], [1, 9, 4, 2])), 4);
  // doSample false is greedy whatever the temperature; no options at all is greedy (HF default)
  assert.equal(new Sampler({ doSample: false, temperature: 1.5 }).greedy, true);
  assert.equal(new Sampler().greedy, true);
  assert.equal(new Sampler({ temperature: 0.7 }).greedy, false);
  assert.equal(new Sampler({ doSample: true }).temperature, 1);
  // NaN candidates are ignored
  assert.equal(g.sample(cand([NaN, 1, 0])), 1);
});

Deno.test("sampler: repetition penalty divides positive and multiplies negative logits (HF)", () => {
  const g = new Sampler({ temperature: 0, repetitionPenalty: 2 });
  assert.equal(g.candidates, MAX_CANDIDATES);
  // id 0: 2 -> 1 < 1.5
  assert.equal(g.sample(cand([2, 1.5]), [0]), 1);
  assert.equal(g.sample(cand([2, 1.5]), []), 0);
  // id 0: -1 -> -2 < -1.5
  assert.equal(g.sample(cand([-1, -1.5]), [0, 0, 0]), 1);
  // in sampling: logits [2, 0] with id 0 penalized by 2 -> [1, 0]: p0 = e/(e+1)
  const s = new Sampler({ temperature: 1, repetitionPenalty: 2, seed: 1 });
  closeArr(s.distribution(cand([2, 0]), [0]).probs, [
    Math.E / (Math.E + 1),
    1 / (Math.E + 1),
  ]);
});

Deno.test("sampler: temperature scales the logits", () => {
  const s = new Sampler({ temperature: 0.5, seed: 1 });
  // logits [1, 0] at T=0.5 -> [2, 0]: probs e^2/(e^2+1), 1/(e^2+1)
  const e2 = Math.exp(2);
  const d = s.distribution(cand([0, 1], [5, 6]));
  assert.deepEqual(d.ids, [6, 5]);
  closeArr(d.probs, [e2 / (e2 + 1), 1 / (e2 + 1)]);
});

Deno.test("sampler: top-k keeps the k most likely (ties with the k-th kept)", () => {
  const s = new Sampler({ temperature: 1, topK: 2, seed: 1 });
  assert.equal(s.candidates, 2);
  const d = s.distribution(fromProbs([0.1, 0.4, 0.2, 0.3]));
  assert.deepEqual(d.ids, [1, 3]);
  closeArr(d.probs, [0.4 / 0.7, 0.3 / 0.7]);
  const t = s.distribution(fromProbs([0.4, 0.2, 0.2, 0.2]));
  assert.deepEqual(t.ids, [0, 1, 2, 3]); // the k-th value 0.2 is tied: all kept
});

Deno.test("sampler: top-p keeps the smallest set reaching p", () => {
  const p = [0.5, 0.3, 0.15, 0.05];
  // mass of strictly more likely tokens: 0, 0.5, 0.8, 0.95
  const d75 = new Sampler({ temperature: 1, topP: 0.75, seed: 1 }).distribution(
    fromProbs(p),
  );
  assert.deepEqual(d75.ids, [0, 1]);
  closeArr(d75.probs, [0.5 / 0.8, 0.3 / 0.8]);
  const d85 = new Sampler({ temperature: 1, topP: 0.85, seed: 1 }).distribution(
    fromProbs(p),
  );
  assert.deepEqual(d85.ids, [0, 1, 2]);
  closeArr(d85.probs, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95]);
  const d10 = new Sampler({ temperature: 1, topP: 0.1, seed: 1 }).distribution(
    fromProbs(p),
  );
  assert.deepEqual(d10.ids, [0]);
  const d1 = new Sampler({ temperature: 1, topP: 1, seed: 1 }).distribution(
    fromProbs(p),
  );
  assert.deepEqual(d1.ids, [0, 1, 2, 3]);
});

Deno.test("sampler: min-p keeps p >= minP * max p", () => {
  const p = [0.5, 0.3, 0.15, 0.05];
  // threshold 0.35 * 0.5 = 0.175
  const d = new Sampler({ temperature: 1, minP: 0.35, seed: 1 }).distribution(
    fromProbs(p),
  );
  assert.deepEqual(d.ids, [0, 1]);
  closeArr(d.probs, [0.625, 0.375]);
  // threshold 0.09 * 0.5 = 0.045 keeps all; 0.11 * 0.5 = 0.055 drops the 0.05 token
  assert.equal(
    new Sampler({ temperature: 1, minP: 0.09, seed: 1 }).distribution(
      fromProbs(p),
    ).ids.length,
    4,
  );
  assert.deepEqual(
    new Sampler({ temperature: 1, minP: 0.11, seed: 1 }).distribution(
      fromProbs(p),
    ).ids,
    [0, 1, 2],
  );
  // combined: top-k 3 -> [0.5,0.3,0.15]/0.95; top-p 0.6 -> [0.5,0.3]; min-p 0.7 -> 0.3 < 0.7*0.625 -> [0.5]
  const c = new Sampler({
    temperature: 1,
    topK: 3,
    topP: 0.6,
    minP: 0.7,
    seed: 1,
  }).distribution(fromProbs(p));
  assert.deepEqual(c.ids, [0]);
  closeArr(c.probs, [1]);
});

Deno.test("sampler: seeded runs reproduce; different seeds differ", () => {
  const c = fromProbs(Array.from({ length: 32 }, () => 1 / 32));
  const run = (seed: number) => {
    const s = new Sampler({ temperature: 1, seed });
    return Array.from({ length: 200 }, () => s.sample(c));
  };
  assert.deepEqual(run(42), run(42));
  assert.notDeepEqual(run(42), run(43));
  const a = new Sampler({ temperature: 1 }),
    b = new Sampler({ temperature: 1, seed: a.seed });
  assert.equal(a.sample(c), b.sample(c));
});

Deno.test("sampler: PRNG is uniform (chi-square over 64 bins)", () => {
  const s = new Sampler({ temperature: 1, seed: 123 });
  const N = 64000, bins = new Array(64).fill(0);
  for (let i = 0; i < N; i++) {
    const u = s.random();
    assert.ok(u >= 0 && u < 1);
    bins[Math.floor(u * 64)]++;
  }
  const e = N / 64;
  const chi2 = bins.reduce((a, o) => a + (o - e) ** 2 / e, 0);
  // 63 degrees of freedom: the 99.9% quantile is about 103
  assert.ok(chi2 < 103, `chi2 ${chi2}`);
});

Deno.test("sampler: empirical frequencies match the softmax", () => {
  const logits = [1.2, 0.3, -0.5, 2.0, 0.0];
  const T = 0.8;
  const ex = logits.map((x) => Math.exp(x / T));
  const z = ex.reduce((a, b) => a + b, 0);
  const want = ex.map((x) => x / z);
  const s = new Sampler({ temperature: T, seed: 2024 });
  const N = 40000, counts = new Array(logits.length).fill(0);
  const c = cand(logits, [10, 11, 12, 13, 14]);
  for (let i = 0; i < N; i++) counts[s.sample(c) - 10]++;
  for (let i = 0; i < logits.length; i++) {
    const sigma = Math.sqrt(want[i] * (1 - want[i]) / N);
    assert.ok(
      Math.abs(counts[i] / N - want[i]) < 5 * sigma,
      `${i}: ${counts[i] / N} vs ${want[i]}`,
    );
  }
  // with top-p 0.7 the draws follow the renormalized kept set
  const tp = new Sampler({ temperature: T, topP: 0.7, seed: 7 });
  const d = tp.distribution(c);
  const seen = new Map<number, number>();
  for (let i = 0; i < N; i++) {
    const id = tp.sample(c);
    seen.set(id, (seen.get(id) ?? 0) + 1);
  }
  assert.deepEqual([...seen.keys()].sort(), [...d.ids].sort());
  d.ids.forEach((id, i) => {
    const sigma = Math.sqrt(d.probs[i] * (1 - d.probs[i]) / N);
    assert.ok(Math.abs(seen.get(id)! / N - d.probs[i]) < 5 * sigma);
  });
});

Deno.test("sampler: bad options are UsageErrors", () => {
  for (
    const o of [
      { temperature: -1 },
      { topK: 1.5 },
      { topP: 0 },
      { topP: 1.5 },
      { minP: -0.1 },
      { repetitionPenalty: 0 },
      { seed: 0.5 },
      { temperature: NaN },
    ]
  ) {
    assert.throws(() => new Sampler(o), UsageError, JSON.stringify(o));
  }
  assert.throws(
    () => new Sampler({ temperature: 0 }).sample(cand([])),
    UsageError,
  );
});
