/**
 * A conversation with a model: the list of messages, rendered through the
 * model's chat template on every turn; replies stop at the template's
 * end-of-turn markers and are added to the conversation. The chat REPL keeps
 * one session for its whole life; the HTTP server makes one per request from
 * the request's messages. Neither copies the other's logic.
 *
 * @module
 */
import { StrataError, UsageError } from "../errors.ts";
import { type ChatMessage, renderChatTemplate } from "../text/chat_template.ts";
import type { Tokenizer } from "../text/tokenizer.ts";
import {
  checkFits,
  type Reply,
  type ReplyModel,
  type ReplyOptions,
  streamReply,
} from "./reply.ts";

export type { ChatMessage } from "../text/chat_template.ts";

/**
 * Tokens that end an assistant turn in common chat templates. One of them
 * ends a reply when the template writes it and the vocabulary has it as one
 * token (models often name only the end of sequence as EOS).
 */
export const END_OF_TURN_TOKENS: readonly string[] = [
  "<|im_end|>",
  "<|eot_id|>",
  "<|eom_id|>",
  "<end_of_turn>",
  "<|end|>",
  "<|endoftext|>",
  "<|end_of_text|>",
  "</s>",
];

/**
 * The ids that end a reply under `template` besides the EOS ids (on which
 * the engine stops by itself): every {@linkcode END_OF_TURN_TOKENS} entry
 * the template mentions that the vocabulary has as one token.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { endOfTurnIds } from "./session.ts";
 * import { Tokenizer } from "../text/tokenizer.ts";
 * import { makeTinyTokenizer } from "../testing/tiny_tokenizer.ts";
 * const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer();
 * const tok = Tokenizer.fromJson(tokenizerJson, { config: tokenizerConfig });
 * // </s> is the EOS: the engine stops on it anyway
assert.deepEqual([...endOfTurnIds(tok, "{{ m }}</s>")], []);
 * ```
 */
export function endOfTurnIds(tok: Tokenizer, template: string): Set<number> {
  const eos = new Set(tok.eosTokenIds);
  const ids = new Set<number>();
  for (const t of END_OF_TURN_TOKENS) {
    if (!template.includes(t)) continue;
    const id = tok.tokenToId(t);
    if (id !== undefined && !eos.has(id)) ids.add(id);
  }
  return ids;
}

/** Options of {@linkcode ChatSession}. */
export interface ChatSessionOptions {
  /** The model (its tokenizer is required). */
  model: ReplyModel;
  /** The model's name (for messages). */
  modelName: string;
  /** The Jinja chat template. */
  template: string;
  /** Where the template came from when not the model (`--chat-template FILE`), for messages. */
  templateSource?: string;
  /** System prompt, kept across {@linkcode ChatSession.reset}. */
  system?: string;
  /** The conversation so far (after the system prompt). */
  messages?: ChatMessage[];
}

/** A reply of the assistant, added to the conversation. */
export type ChatReply = Reply;

/**
 * A conversation rendered through a chat template.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ChatSession } from "./session.ts";
 * import { Tokenizer } from "../text/tokenizer.ts";
 * import { makeTinyTokenizer, TINY_CHAT_TEMPLATE } from "../testing/tiny_tokenizer.ts";
 *
 * const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer();
 * const tok = Tokenizer.fromJson(tokenizerJson, { config: tokenizerConfig });
 * const model = {
 *   tokenizer: tok,
 *   async *stream() {
 *     yield* tok.encode(" Hello Lily", { addSpecialTokens: false });
 *     yield tok.eosTokenIds[0]; // the engine stops after EOS
 *   },
 * };
 * const chat = new ChatSession({ model, modelName: "tiny", template: TINY_CHAT_TEMPLATE });
 * const ids = chat.ask("Hi");
 * assert.equal(tok.decode(ids), "<s>user: Hi</s>\nassistant:");
 * const r = await chat.reply(ids);
 * assert.equal(r.text, " Hello Lily");
 * assert.equal(r.finishReason, "stop");
 * assert.deepEqual(chat.messages.at(-1), { role: "assistant", content: "Hello Lily" });
 * ```
 */
export class ChatSession {
  #model: ReplyModel;
  #tok: Tokenizer;
  #modelName: string;
  #template: string;
  #source: string;
  #system: string | undefined;
  #messages: ChatMessage[];
  #eot: Set<number>;

  /** Starts a conversation (the system prompt, then `opts.messages`). */
  constructor(opts: ChatSessionOptions) {
    if (!opts.model.tokenizer) {
      throw new UsageError(
        `${opts.modelName}: no tokenizer.json; chat needs a tokenizer`,
      );
    }
    this.#model = opts.model;
    this.#tok = opts.model.tokenizer;
    this.#modelName = opts.modelName;
    this.#template = opts.template;
    this.#source = opts.templateSource ?? `${opts.modelName}: chat template`;
    this.#system = opts.system;
    this.#messages = [...this.#start(), ...(opts.messages ?? [])];
    this.#eot = endOfTurnIds(this.#tok, opts.template);
  }

  #start(): ChatMessage[] {
    return this.#system ? [{ role: "system", content: this.#system }] : [];
  }

  /** The conversation (a copy). */
  get messages(): ChatMessage[] {
    return this.#messages.map((m) => ({ ...m }));
  }

  /** The ids that end a reply besides EOS (the template's end-of-turn markers). */
  get endOfTurnIds(): ReadonlySet<number> {
    return this.#eot;
  }

  /** Forgets the conversation (the system prompt stays). */
  reset(): void {
    this.#messages = this.#start();
  }

  /**
   * The conversation rendered with the generation prompt, as ids (the
   * template writes BOS itself where the model wants it).
   *
   * @throws {StrataError} when the template fails to render or raises.
   */
  prompt(): number[] {
    const text = renderChatTemplate(this.#template, {
      messages: this.#messages,
      addGenerationPrompt: true,
      specialTokens: this.#tok.specialTokens,
      source: this.#source,
    });
    return this.#tok.encode(text, { addSpecialTokens: false });
  }

  /**
   * Adds the user's message and returns the prompt ids of the reply. When
   * the template fails or the conversation no longer fits the context, the
   * message is taken back and the error thrown.
   *
   * @throws {StrataError} a template error, or "does not fit the context".
   */
  ask(content: string): number[] {
    this.#messages.push({ role: "user", content });
    try {
      const ids = this.prompt();
      checkFits(ids.length, this.#model.maxSeqLen);
      return ids;
    } catch (e) {
      this.#messages.pop();
      throw e;
    }
  }

  /**
   * Generates the assistant's reply to `promptIds` (from {@linkcode ask} or
   * {@linkcode prompt}) and adds it to the conversation, trimmed — even a
   * stopped one, so the roles keep alternating. When generation fails, the
   * last user message is taken back and the error thrown.
   */
  async reply(
    promptIds: number[],
    opts: Omit<ReplyOptions, "endOfTurnIds"> = {},
  ): Promise<ChatReply> {
    let r: Reply;
    try {
      r = await streamReply(this.#model, promptIds, {
        ...opts,
        endOfTurnIds: this.#eot,
      });
    } catch (e) {
      if (e instanceof StrataError && this.#messages.at(-1)?.role === "user") {
        this.#messages.pop();
      }
      throw e;
    }
    this.#messages.push({ role: "assistant", content: r.text.trim() });
    return r;
  }

  /** The model's name given at construction. */
  get modelName(): string {
    return this.#modelName;
  }
}
