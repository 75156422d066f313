// The generation queue with a fake model that records what ran when: FIFO
// order, one generation at a time, cancellation of waiting and running jobs.
import assert from "node:assert/strict";
import { Scheduler } from "../../lib/server/scheduler.ts";

/** A fake model: yields prompt[0]*100 + i; each "pass" takes a macrotask. */
class FakeModel {
  readonly tokenizer = null;
  readonly maxSeqLen = 1000;
  lastStats: { stopReason: string } | null = null;
  events: string[] = [];
  active = 0;
  maxActive = 0;
  async *stream(
    input: number[],
    opts: { maxNewTokens?: number; signal?: AbortSignal },
  ): AsyncGenerator<number> {
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    this.events.push(`start ${input[0]}`);
    let reason = "length";
    try {
      for (let i = 0; i < (opts.maxNewTokens ?? 4); i++) {
        await new Promise((r) => setTimeout(r, 1)); // one pass
        yield input[0] * 100 + i;
        if (opts.signal?.aborted) {
          reason = "abort";
          return;
        }
      }
    } finally {
      this.active--;
      this.events.push(`end ${input[0]} ${reason}`);
      this.lastStats = { stopReason: reason };
    }
  }
}

async function collect(it: AsyncIterable<number>): Promise<number[]> {
  const out: number[] = [];
  for await (const id of it) out.push(id);
  return out;
}

Deno.test("scheduler: jobs run one at a time in arrival order, each gets its own ids", async () => {
  const m = new FakeModel();
  const s = new Scheduler(m);
  const got = await Promise.all(
    [1, 2, 3, 4, 5, 6, 7, 8].map((p) =>
      collect(s.submit([p], { maxNewTokens: p }))
    ),
  );
  got.forEach((ids, k) =>
    assert.deepEqual(
      ids,
      Array.from({ length: k + 1 }, (_, i) => (k + 1) * 100 + i),
    )
  );
  assert.equal(m.maxActive, 1);
  assert.deepEqual(
    m.events.filter((e) => e.startsWith("start")),
    [1, 2, 3, 4, 5, 6, 7, 8].map((p) => `start ${p}`),
  );
  assert.equal(s.served, 8);
  await s.close();
});

Deno.test("scheduler: a consumer that leaves stops its job at the next pass; a waiting job that aborts never runs", async () => {
  const m = new FakeModel();
  const s = new Scheduler(m);
  const waitingAbort = new AbortController();
  const a = s.submit([1], { maxNewTokens: 100 });
  const b = s.submit([2], { maxNewTokens: 3, signal: waitingAbort.signal });
  const c = s.submit([3], { maxNewTokens: 2 });
  assert.equal(s.waiting, 3);
  const first: number[] = [];
  const pa = (async () => {
    for await (const id of a) {
      first.push(id);
      if (first.length === 2) {
        waitingAbort.abort(); // b is still waiting
        break; // a's client leaves
      }
    }
  })();
  const pb = collect(b);
  await pa;
  assert.deepEqual(await pb, []);
  assert.equal(b.stopReason, "abort");
  assert.deepEqual(await collect(c), [300, 301]);
  assert.deepEqual(first, [100, 101]);
  // a stopped right after its next pass, b never started
  assert.ok(m.events.includes("end 1 abort"), m.events.join(", "));
  assert.ok(!m.events.includes("start 2"), m.events.join(", "));
  assert.equal(c.stopReason, "length");
  await s.close();
});

Deno.test("scheduler: close cancels running and waiting jobs and waits for the model", async () => {
  const m = new FakeModel();
  const s = new Scheduler(m);
  const a = collect(s.submit([1], { maxNewTokens: 1000 }));
  const b = collect(s.submit([2], { maxNewTokens: 1000 }));
  await new Promise((r) => setTimeout(r, 20));
  await s.close();
  assert.equal(m.active, 0);
  assert.ok((await a).length < 1000);
  assert.deepEqual(await b, []);
  assert.deepEqual(await collect(s.submit([3])), []); // closed: nothing runs
});

Deno.test("scheduler: an error of the model reaches that job only", async () => {
  const s = new Scheduler({
    tokenizer: null,
    maxSeqLen: 10,
    async *stream(input: number[]) {
      if (input[0] === 1) throw new Error("boom");
      yield 7;
    },
  });
  await assert.rejects(collect(s.submit([1])), /boom/);
  assert.deepEqual(await collect(s.submit([2])), [7]);
  await s.close();
});
