/**
 * Streaming detokenization: turn generated ids into text as soon as the text
 * is complete, and find user stop strings across token boundaries.
 *
 * The detokenizer decodes a short running window of ids twice — once up to
 * the last emitted token (the prefix) and once with the new tokens — and
 * emits the difference. Decoding a window rather than a lone token keeps
 * SentencePiece's leading "▁" spaces right (a decoder strips only the first
 * token's space) and joins byte-fallback / byte-level pieces of one UTF-8
 * character. While the window's text ends in U+FFFD (an unfinished
 * character) only the text before it is emitted and the window stays put;
 * `flush()` emits whatever is left, with U+FFFD only for bytes that never
 * became valid UTF-8.
 *
 * @module
 */
import type { Tokenizer } from "./tokenizer.ts";

/** Options of {@linkcode StreamingDetokenizer}. */
export interface StreamingDetokenizerOptions {
  /** Leave out special tokens (BOS, EOS, chat markers). Default true. */
  skipSpecialTokens?: boolean;
  /**
   * Ids that come before the generated ones (the prompt). Only the text of
   * the pushed ids is emitted; the prefix decides e.g. whether the first
   * generated "▁word" keeps its space.
   */
  prefixIds?: number[];
}

/** How many prompt ids the window keeps as context. */
const PREFIX_CONTEXT = 6;

/**
 * Incremental ids → text.
 *
 * @example
 * ```ts ignore
 * import { StreamingDetokenizer } from "./detokenizer.ts";
 * const detok = new StreamingDetokenizer(tokenizer);
 * for await (const id of model.stream("Once upon a time")) {
 *   await Deno.stdout.write(new TextEncoder().encode(detok.push(id)));
 * }
 * console.log(detok.flush());
 * ```
 */
export class StreamingDetokenizer {
  #tok: Tokenizer;
  #skip: boolean;
  #ids: number[];
  #prefixOffset: number;
  #readOffset: number;
  #text = "";
  /** Chars already emitted past the prefix text while a character was unfinished. */
  #partial = 0;

  /** Starts an empty stream (after `prefixIds`, if given). */
  constructor(tok: Tokenizer, opts: StreamingDetokenizerOptions = {}) {
    this.#tok = tok;
    this.#skip = opts.skipSpecialTokens ?? true;
    const prefix = opts.prefixIds ?? [];
    this.#ids = prefix.slice(Math.max(0, prefix.length - PREFIX_CONTEXT));
    this.#prefixOffset = 0;
    this.#readOffset = this.#ids.length;
  }

  #decode(ids: number[]): string {
    return this.#tok.decode(ids, {
      skipSpecialTokens: this.#skip,
      cleanUpTokenizationSpaces: false,
    });
  }

  /**
   * Adds one generated id; returns the text that became complete ("" when
   * the id ends in the middle of a character).
   *
   * @example
   * ```ts ignore
   * const text = detok.push(id);
   * ```
   */
  push(id: number): string {
    this.#ids.push(id);
    const prefixText = this.#decode(
      this.#ids.slice(this.#prefixOffset, this.#readOffset),
    );
    const newText = this.#decode(this.#ids.slice(this.#prefixOffset));
    // Text before an unfinished character at the end is already final.
    const pending = newText.endsWith("\uFFFD");
    const avail = pending ? newText.replace(/\uFFFD+$/, "") : newText;
    const start = prefixText.length + this.#partial;
    const out = avail.length > start ? avail.slice(start) : "";
    if (pending || newText.length <= prefixText.length) {
      this.#partial += out.length;
      this.#text += out;
      return out;
    }
    // Everything up to here is final: the window moves on.
    this.#partial = 0;
    this.#prefixOffset = this.#readOffset;
    this.#readOffset = this.#ids.length;
    // Keep the window short: everything before prefixOffset is never decoded again.
    this.#ids = this.#ids.slice(this.#prefixOffset);
    this.#readOffset -= this.#prefixOffset;
    this.#prefixOffset = 0;
    this.#text += out;
    return out;
  }

  /**
   * Emits what is left at the end of the stream (incomplete bytes become
   * U+FFFD).
   *
   * @example
   * ```ts ignore
   * const rest = detok.flush();
   * ```
   */
  flush(): string {
    const prefixText = this.#decode(
      this.#ids.slice(this.#prefixOffset, this.#readOffset),
    );
    const newText = this.#decode(this.#ids.slice(this.#prefixOffset));
    const start = prefixText.length + this.#partial;
    const out = newText.length > start ? newText.slice(start) : "";
    this.#partial = 0;
    // Keep the last ids as context should the stream go on after a flush.
    this.#ids = this.#ids.slice(Math.max(0, this.#ids.length - PREFIX_CONTEXT));
    this.#prefixOffset = 0;
    this.#readOffset = this.#ids.length;
    this.#text += out;
    return out;
  }

  /** All text emitted so far. */
  get text(): string {
    return this.#text;
  }
}

/** What {@linkcode StopStrings.push} returns. */
export interface StopResult {
  /** Text that is safe to show now. */
  text: string;
  /** True once a stop string was seen: `text` ends right before it. */
  stopped: boolean;
  /** The stop string that matched, when stopped. */
  match?: string;
}

/**
 * Finds user stop strings in streamed text, even when one is split across
 * tokens, and holds back any tail that could still become a stop string.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StopStrings } from "./detokenizer.ts";
 * const stops = new StopStrings(["\nUser:"]);
 * assert.deepStrictEqual(stops.push("Hi!\nUs"), { text: "Hi!", stopped: false });
 * assert.deepStrictEqual(stops.push("er: more"), { text: "", stopped: true, match: "\nUser:" });
 * ```
 */
export class StopStrings {
  #stops: string[];
  #held = "";
  #stopped = false;

  /** Watches for each of `stops` (empty strings are ignored). */
  constructor(stops: string[]) {
    this.#stops = stops.filter((s) => s.length > 0);
  }

  /** Whether a stop string has been seen. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Adds newly decoded text; returns what can be shown and whether to stop.
   *
   * @example
   * ```ts ignore
   * const { text, stopped } = stops.push(detok.push(id));
   * ```
   */
  push(text: string): StopResult {
    if (this.#stopped) return { text: "", stopped: true };
    const buf = this.#held + text;
    // Earliest stop string occurrence in the buffer.
    let at = -1;
    let match: string | undefined;
    for (const s of this.#stops) {
      const i = buf.indexOf(s);
      if (i !== -1 && (at === -1 || i < at)) {
        at = i;
        match = s;
      }
    }
    if (at !== -1) {
      this.#stopped = true;
      this.#held = "";
      return { text: buf.slice(0, at), stopped: true, match };
    }
    // Hold back the longest tail that is a proper prefix of some stop string.
    let hold = 0;
    for (const s of this.#stops) {
      for (let n = Math.min(s.length - 1, buf.length); n > hold; n--) {
        if (buf.endsWith(s.slice(0, n))) {
          hold = n;
          break;
        }
      }
    }
    this.#held = buf.slice(buf.length - hold);
    return { text: buf.slice(0, buf.length - hold), stopped: false };
  }

  /**
   * Ends the stream: returns the held-back text (it never became a stop
   * string).
   *
   * @example
   * ```ts ignore
   * process(stops.flush());
   * ```
   */
  flush(): string {
    const t = this.#stopped ? "" : this.#held;
    this.#held = "";
    return t;
  }
}
