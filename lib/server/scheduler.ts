/**
 * The generation queue of the server. Requests never touch the model: each
 * submits its prompt and gets its own stream of ids; the scheduler owns the
 * model and feeds the streams.
 *
 * Today the model runs one generation at a time (there is no batched forward
 * pass yet), so the scheduler takes jobs in arrival order (FIFO) and runs
 * each to its end. The shape is the one continuous batching needs: the loop
 * in `#drive` is where a batched engine would, at every pass, step all
 * admitted jobs at once and admit waiting jobs into the batch; requests, their
 * id streams and cancellation would not change.
 *
 * A job whose consumer leaves (the client disconnected, a stop string
 * matched) is aborted: a waiting job is dropped from the queue, a running one
 * stops at the next pass.
 *
 * @module
 */
import type { ReplyGenerateOptions, ReplyModel } from "../chat/reply.ts";
import type { Tokenizer } from "../text/tokenizer.ts";

/** What the scheduler needs from the model (AutoModel has it). */
export interface SchedulerModel {
  /** The tokenizer, or null. */
  readonly tokenizer: Tokenizer | null;
  /** KV cache positions. */
  readonly maxSeqLen: number;
  /** Streams new ids; stops at the next pass once `signal` aborts. */
  stream(
    input: number[],
    opts: ReplyGenerateOptions & { signal?: AbortSignal },
  ): AsyncIterable<number>;
  /** Why the last stream ended. */
  readonly lastStats?: { stopReason: string } | null;
}

interface Job {
  prompt: number[];
  opts: ReplyGenerateOptions;
  controller: AbortController;
  ids: number[];
  done: boolean;
  error: unknown;
  stopReason: string;
  wake: (() => void) | null;
}

/**
 * Runs generations on one model in arrival order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Scheduler } from "./scheduler.ts";
 * const model = {
 *   tokenizer: null,
 *   maxSeqLen: 64,
 *   async *stream(input: number[], opts: { maxNewTokens?: number }) {
 *     for (let i = 0; i < (opts.maxNewTokens ?? 2); i++) yield input[0] + i;
 *   },
 * };
 * const s = new Scheduler(model);
 * const got = await Promise.all([10, 20].map(async (p) => {
 *   const ids: number[] = [];
 *   for await (const id of s.submit([p], { maxNewTokens: 3 })) ids.push(id);
 *   return ids;
 * }));
 * assert.deepEqual(got, [[10, 11, 12], [20, 21, 22]]);
 * await s.close();
 * ```
 */
export class Scheduler {
  #model: SchedulerModel;
  #waiting: Job[] = [];
  #running: Job | null = null;
  #drive_: Promise<void> | null = null;
  #closed = false;
  #served = 0;

  /** A scheduler that owns `model`. */
  constructor(model: SchedulerModel) {
    this.#model = model;
  }

  /** Jobs waiting for the model. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Jobs generating now (0 or 1 until batching exists). */
  get running(): number {
    return this.#running ? 1 : 0;
  }

  /** Jobs finished since the start. */
  get served(): number {
    return this.#served;
  }

  /**
   * Queues a generation and returns its ids as they come. Leaving the loop
   * early (or `opts.signal` aborting) cancels the job. `stopReason` on the
   * returned stream tells why it ended (the engine's reason).
   */
  submit(
    prompt: number[],
    opts: ReplyGenerateOptions & { signal?: AbortSignal } = {},
  ): AsyncIterable<number> & { readonly stopReason: string } {
    const { signal, ...gen } = opts;
    const job: Job = {
      prompt,
      opts: gen,
      controller: new AbortController(),
      ids: [],
      done: false,
      error: null,
      stopReason: "length",
      wake: null,
    };
    if (this.#closed) {
      job.done = true;
      job.stopReason = "abort";
    } else {
      this.#waiting.push(job);
    }
    const onAbort = () => this.#cancel(job);
    if (signal?.aborted) this.#cancel(job);
    else signal?.addEventListener("abort", onAbort, { once: true });
    const consume = async function* (): AsyncGenerator<number> {
      try {
        for (;;) {
          if (job.ids.length > 0) {
            yield job.ids.shift()!;
            continue;
          }
          if (job.done) {
            if (job.error) throw job.error;
            return;
          }
          await new Promise<void>((r) => job.wake = r);
        }
      } finally {
        signal?.removeEventListener("abort", onAbort);
        if (!job.done) cancel(job);
      }
    };
    const cancel = (j: Job) => this.#cancel(j);
    const it = consume();
    void this.#kick();
    return {
      [Symbol.asyncIterator]: () => it,
      get stopReason() {
        return job.stopReason;
      },
    };
  }

  /** Aborts `job`: dropped when waiting, stopped at the next pass when running. */
  #cancel(job: Job): void {
    job.controller.abort();
    const i = this.#waiting.indexOf(job);
    if (i !== -1) {
      this.#waiting.splice(i, 1);
      this.#finish(job, "abort");
    }
  }

  #finish(job: Job, reason: string, error: unknown = null): void {
    if (job.done) return;
    job.done = true;
    job.stopReason = reason;
    job.error = error;
    this.#served++;
    job.wake?.();
    job.wake = null;
  }

  #kick(): Promise<void> {
    this.#drive_ ??= this.#drive().finally(() => this.#drive_ = null);
    return this.#drive_;
  }

  /**
   * The loop that owns the model. One job at a time, in order; with a
   * batched engine this becomes: each pass, step every admitted job and
   * admit the waiting ones.
   */
  async #drive(): Promise<void> {
    // let the submitting request finish its tick first
    await Promise.resolve();
    while (this.#waiting.length > 0) {
      const job = this.#waiting.shift()!;
      this.#running = job;
      try {
        for await (
          const id of this.#model.stream(job.prompt, {
            ...job.opts,
            signal: job.controller.signal,
          })
        ) {
          job.ids.push(id);
          job.wake?.();
          job.wake = null;
        }
        this.#finish(
          job,
          job.controller.signal.aborted
            ? "abort"
            : this.#model.lastStats?.stopReason ?? "length",
        );
      } catch (e) {
        this.#finish(job, "error", e);
      } finally {
        this.#running = null;
      }
    }
  }

  /**
   * A {@link ReplyModel} whose streams go through this queue (one per
   * request: its `lastStats` is that request's).
   */
  view(): ReplyModel {
    return new QueuedModel(this, this.#model);
  }

  /** Cancels every job and waits until the model is idle. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const job of [...this.#waiting]) this.#cancel(job);
    this.#running?.controller.abort();
    await this.#drive_;
  }
}

/** One request's view of the model through the scheduler. */
class QueuedModel implements ReplyModel {
  #s: Scheduler;
  #m: SchedulerModel;
  lastStats: { stopReason: string } | null = null;

  constructor(s: Scheduler, m: SchedulerModel) {
    this.#s = s;
    this.#m = m;
  }

  get tokenizer(): Tokenizer | null {
    return this.#m.tokenizer;
  }

  get maxSeqLen(): number {
    return this.#m.maxSeqLen;
  }

  async *stream(
    input: number[],
    opts: ReplyGenerateOptions & { signal?: AbortSignal },
  ): AsyncGenerator<number> {
    const ids = this.#s.submit(input, opts);
    try {
      yield* ids;
    } finally {
      this.lastStats = { stopReason: ids.stopReason };
    }
  }
}
