/**
 * One generated reply as text: the ids a model streams go through the
 * streaming detokenizer, user stop strings and end-of-turn ids, and the
 * reply ends with a reason (`stop`, `length`, `context`, `abort`). The chat
 * REPL (`strata chat`) and the HTTP server (`strata serve`) both generate
 * through {@linkcode streamReply}, so a reply reads the same in both.
 *
 * @module
 */
import { StrataError, UsageError } from "../errors.ts";
import { StopStrings, StreamingDetokenizer } from "../text/detokenizer.ts";
import type { Tokenizer } from "../text/tokenizer.ts";

/** Generation options a reply passes on (a subset of the engine's). */
export interface ReplyGenerateOptions {
  /** Longest reply in tokens. */
  maxNewTokens?: number;
  /** Sampling temperature (0 = greedy). */
  temperature?: number;
  /** Sample instead of greedy. */
  doSample?: boolean;
  /** top-k filter. */
  topK?: number;
  /** top-p filter. */
  topP?: number;
  /** min-p filter. */
  minP?: number;
  /** Repetition penalty. */
  repetitionPenalty?: number;
  /** PRNG seed. */
  seed?: number;
}

/** What a reply needs from a model (AutoModel has it). */
export interface ReplyModel {
  /** The tokenizer; a text reply needs one. */
  readonly tokenizer: Tokenizer | null;
  /** KV cache positions, when known: prompts that do not fit are refused early. */
  readonly maxSeqLen?: number;
  /** Streams new ids for the prompt ids; stops at the next pass once `signal` aborts. */
  stream(
    input: number[],
    opts: ReplyGenerateOptions & { signal?: AbortSignal },
  ): AsyncIterable<number>;
  /** Why the last stream ended (AutoModel has it: "length", "eos", "context", ...). */
  readonly lastStats?: { stopReason: string } | null;
}

/**
 * Why a reply ended: `stop` (end of sequence or of turn, or a stop string),
 * `length` (the token limit), `context` (the KV cache is full), `abort` (the
 * signal).
 */
export type FinishReason = "stop" | "length" | "context" | "abort";

/** Options of {@linkcode streamReply}. */
export interface ReplyOptions {
  /** How to sample. */
  generate?: ReplyGenerateOptions;
  /** Stop strings: the reply ends right before the first one (not shown). */
  stop?: string[];
  /** Ids that end the reply besides the engine's EOS ids (end-of-turn markers). */
  endOfTurnIds?: Iterable<number>;
  /** Stops the reply at the next pass. */
  signal?: AbortSignal;
  /** Receives each piece of text as soon as it is final. */
  onText?: (text: string) => void | Promise<void>;
}

/** A finished reply. */
export interface Reply {
  /** The text shown (everything given to `onText`). */
  text: string;
  /** Why it ended. */
  finishReason: FinishReason;
  /** Prompt tokens. */
  promptTokens: number;
  /** Generated tokens (an end-of-sequence or end-of-turn id included). */
  completionTokens: number;
}

/**
 * Generates a reply to `promptIds` and returns it as text; pieces stream to
 * `opts.onText` as they become final.
 *
 * @throws {UsageError} when the model has no tokenizer or the prompt does
 * not fit the context; whatever the model's stream throws (unless the signal
 * had aborted: then the reply ends with `abort`).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { streamReply } from "./reply.ts";
 * import { Tokenizer } from "../text/tokenizer.ts";
 * import { makeTinyTokenizer } from "../testing/tiny_tokenizer.ts";
 *
 * const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer();
 * const tok = Tokenizer.fromJson(tokenizerJson, { config: tokenizerConfig });
 * const model = {
 *   tokenizer: tok,
 *   async *stream() {
 *     yield* tok.encode(" Hi there. Bye", { addSpecialTokens: false });
 *   },
 * };
 * const pieces: string[] = [];
 * const r = await streamReply(model, tok.encode("Hello"), {
 *   stop: ["."],
 *   onText: (s) => void pieces.push(s),
 * });
 * assert.equal(r.text, " Hi there");
 * assert.equal(pieces.join(""), r.text);
 * assert.equal(r.finishReason, "stop");
 * ```
 */
export async function streamReply(
  model: ReplyModel,
  promptIds: number[],
  opts: ReplyOptions = {},
): Promise<Reply> {
  const tok = model.tokenizer;
  if (!tok) throw new UsageError("no tokenizer.json; a text reply needs one");
  checkFits(promptIds.length, model.maxSeqLen);
  const detok = new StreamingDetokenizer(tok, { prefixIds: promptIds });
  const stop = (opts.stop ?? []).filter((s) => s.length > 0);
  const stops = stop.length > 0 ? new StopStrings(stop) : null;
  const eot = new Set(opts.endOfTurnIds ?? []);
  let text = "";
  const show = async (s: string) => {
    if (s === "") return;
    text += s;
    await opts.onText?.(s);
  };
  const maxNew = opts.generate?.maxNewTokens;
  let count = 0;
  let ended: FinishReason | null = null;
  try {
    for await (
      const id of model.stream(promptIds, {
        ...opts.generate,
        signal: opts.signal,
      })
    ) {
      count++;
      if (eot.has(id)) {
        ended = "stop";
        break;
      }
      const piece = detok.push(id);
      if (stops) {
        const r = stops.push(piece);
        await show(r.text);
        if (r.stopped) {
          ended = "stop";
          break;
        }
      } else {
        await show(piece);
      }
      if (opts.signal?.aborted) {
        ended = "abort";
        break;
      }
    }
  } catch (e) {
    if (!opts.signal?.aborted) throw e;
    ended = "abort";
  }
  // A stream that ends by itself after the signal fired was stopped by it.
  if (ended === null && opts.signal?.aborted) ended = "abort";
  if (!stops?.stopped) {
    const rest = detok.flush();
    if (stops) {
      const r = stops.push(rest);
      await show(r.text);
      if (r.stopped) ended = "stop";
      else await show(stops.flush());
    } else {
      await show(rest);
    }
  }
  return {
    text,
    finishReason: ended ??
      engineReason(model.lastStats?.stopReason, count, maxNew),
    promptTokens: promptIds.length,
    completionTokens: count,
  };
}

/** The finish reason of a stream that ended by itself. */
function engineReason(
  reason: string | undefined,
  count: number,
  maxNew: number | undefined,
): FinishReason {
  switch (reason) {
    case "length":
    case "context":
    case "abort":
      return reason;
    case "eos":
    case "stop":
      return "stop";
  }
  return maxNew !== undefined && count >= maxNew ? "length" : "stop";
}

/**
 * Throws when a prompt of `promptTokens` leaves no room for a reply in a
 * context of `maxSeqLen` positions (no check when it is unknown).
 *
 * @throws {UsageError} "the conversation (N tokens) does not fit the context (M positions)".
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkFits } from "./reply.ts";
 * checkFits(10, 64);
 * assert.throws(() => checkFits(64, 64), /does not fit the context/);
 * ```
 */
export function checkFits(promptTokens: number, maxSeqLen?: number): void {
  if (maxSeqLen !== undefined && promptTokens + 1 > maxSeqLen) {
    throw new UsageError(
      `the conversation (${promptTokens} tokens) does not fit the context (${maxSeqLen} positions)`,
    );
  }
}

/** Whether `e` says that a prompt does not fit the context (for hints). */
export function isContextError(e: unknown): boolean {
  return e instanceof StrataError && /does not fit/.test(e.message);
}
