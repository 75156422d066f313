/**
 * Validation of the bodies of `POST /v1/completions` and
 * `POST /v1/chat/completions`. Supported fields are checked and typed; a bad
 * value is a 400 naming the field (`param`); fields this server does not
 * know are ignored, as OpenAI-compatible servers do; fields it knows but
 * cannot honour (`n` > 1, `logprobs`, `echo`, `tools`, ...) are refused
 * rather than silently ignored. `null` counts as absent.
 *
 * @module
 */
import { ApiError } from "./api_error.ts";
import type { ChatMessage } from "../text/chat_template.ts";

/** The sampling fields both endpoints share. */
export interface SamplingRequest {
  /** `model` as sent (answered with the served model's id). */
  model: string | undefined;
  /** `max_tokens` (chat: or `max_completion_tokens`); undefined = the server's default. */
  maxTokens: number | undefined;
  /** `temperature` in [0, 2]. */
  temperature: number | undefined;
  /** `top_p` in (0, 1]. */
  topP: number | undefined;
  /** `seed`. */
  seed: number | undefined;
  /** `stop`: up to 4 strings. */
  stop: string[];
  /** `stream`. */
  stream: boolean;
  /** `stream_options.include_usage`. */
  includeUsage: boolean;
  /** Extension (vLLM, llama.cpp): `top_k` >= 0. */
  topK: number | undefined;
  /** Extension: `min_p` in [0, 1]. */
  minP: number | undefined;
  /** Extension: `repetition_penalty` > 0. */
  repetitionPenalty: number | undefined;
}

/** A validated completions request. */
export interface CompletionRequest extends SamplingRequest {
  /** The prompt: text, or token ids. */
  prompt: string | number[];
}

/** A validated chat request. */
export interface ChatRequest extends SamplingRequest {
  /** The conversation (content parts joined into text). */
  messages: ChatMessage[];
}

const bad = (param: string, message: string) =>
  new ApiError(400, message, { param, code: "invalid_value" });

const unsupported = (param: string, message: string) =>
  new ApiError(400, message, { param, code: "unsupported_value" });

function get(body: Record<string, unknown>, key: string): unknown {
  const v = body[key];
  return v === null ? undefined : v;
}

function num(
  body: Record<string, unknown>,
  key: string,
  rule: { int?: boolean; ok: (v: number) => boolean; what: string },
): number | undefined {
  const v = get(body, key);
  if (v === undefined) return undefined;
  if (
    typeof v !== "number" || !Number.isFinite(v) ||
    (rule.int && !Number.isSafeInteger(v)) || !rule.ok(v)
  ) {
    throw bad(key, `${key} must be ${rule.what}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function sampling(body: Record<string, unknown>): SamplingRequest {
  const model = get(body, "model");
  if (model !== undefined && typeof model !== "string") {
    throw bad("model", "model must be a string");
  }
  const n = get(body, "n");
  if (n !== undefined && n !== 1) {
    throw unsupported("n", `only n = 1 is supported, got ${JSON.stringify(n)}`);
  }
  const stream = get(body, "stream") ?? false;
  if (typeof stream !== "boolean") {
    throw bad("stream", "stream must be a boolean");
  }
  const so = get(body, "stream_options");
  if (so !== undefined && (typeof so !== "object" || Array.isArray(so))) {
    throw bad("stream_options", "stream_options must be an object");
  }
  const includeUsage =
    (so as { include_usage?: unknown } | undefined)?.include_usage === true;
  let stop: string[] = [];
  const s = get(body, "stop");
  if (typeof s === "string") stop = [s];
  else if (Array.isArray(s)) {
    if (s.length > 4 || s.some((x) => typeof x !== "string")) {
      throw bad("stop", "stop must be a string or a list of up to 4 strings");
    }
    stop = s as string[];
  } else if (s !== undefined) {
    throw bad("stop", "stop must be a string or a list of up to 4 strings");
  }
  const count = {
    int: true,
    ok: (v: number) => v >= 1,
    what: "an integer >= 1",
  };
  return {
    model: model as string | undefined,
    maxTokens: num(body, "max_tokens", count),
    temperature: num(body, "temperature", {
      ok: (v) => v >= 0 && v <= 2,
      what: "a number in [0, 2]",
    }),
    topP: num(body, "top_p", {
      ok: (v) => v > 0 && v <= 1,
      what: "a number in (0, 1]",
    }),
    seed: num(body, "seed", { int: true, ok: () => true, what: "an integer" }),
    stop: stop.filter((x) => x.length > 0),
    stream,
    includeUsage,
    topK: num(body, "top_k", {
      int: true,
      ok: (v) => v >= 0,
      what: "an integer >= 0",
    }),
    minP: num(body, "min_p", {
      ok: (v) => v >= 0 && v <= 1,
      what: "a number in [0, 1]",
    }),
    repetitionPenalty: num(body, "repetition_penalty", {
      ok: (v) => v > 0,
      what: "a number > 0",
    }),
  };
}

/**
 * Validates a `POST /v1/completions` body.
 *
 * @throws {ApiError} 400 naming the bad field.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCompletionRequest } from "./request.ts";
 * const r = parseCompletionRequest({ prompt: "Once", max_tokens: 8, temperature: 0, whatever: 1 });
 * assert.equal(r.prompt, "Once");
 * assert.equal(r.maxTokens, 8);
 * assert.throws(() => parseCompletionRequest({ prompt: "x", max_tokens: -1 }), /max_tokens must be/);
 * ```
 */
export function parseCompletionRequest(
  body: Record<string, unknown>,
): CompletionRequest {
  const base = sampling(body);
  const p = get(body, "prompt");
  let prompt: string | number[];
  const isIds = (x: unknown): x is number[] =>
    Array.isArray(x) && x.length > 0 &&
    x.every((i) => Number.isSafeInteger(i) && i >= 0);
  if (typeof p === "string") prompt = p;
  else if (Array.isArray(p) && p.length === 1 && typeof p[0] === "string") {
    prompt = p[0];
  } else if (isIds(p)) prompt = p;
  else if (Array.isArray(p) && p.length === 1 && isIds(p[0])) prompt = p[0];
  else if (Array.isArray(p) && p.length > 1 && !isIds(p)) {
    throw unsupported("prompt", "only one prompt per request is supported");
  } else {
    throw bad(
      "prompt",
      "prompt must be a string or a list of token ids (one prompt)",
    );
  }
  const bestOf = get(body, "best_of");
  if (bestOf !== undefined && bestOf !== 1) {
    throw unsupported("best_of", "only best_of = 1 is supported");
  }
  if (get(body, "echo") === true) {
    throw unsupported("echo", "echo is not supported");
  }
  const suffix = get(body, "suffix");
  if (suffix !== undefined && suffix !== "") {
    throw unsupported("suffix", "suffix is not supported");
  }
  if (get(body, "logprobs") !== undefined && get(body, "logprobs") !== 0) {
    throw unsupported("logprobs", "logprobs are not supported");
  }
  return { ...base, prompt };
}

/**
 * Validates a `POST /v1/chat/completions` body. Message content may be a
 * string or a list of `{type: "text", text}` parts (joined).
 *
 * @throws {ApiError} 400 naming the bad field.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseChatRequest } from "./request.ts";
 * const r = parseChatRequest({
 *   messages: [{ role: "user", content: [{ type: "text", text: "Hi" }] }],
 *   max_completion_tokens: 4,
 * });
 * assert.deepEqual(r.messages, [{ role: "user", content: "Hi" }]);
 * assert.equal(r.maxTokens, 4);
 * assert.throws(() => parseChatRequest({ messages: [] }), /messages must be/);
 * ```
 */
export function parseChatRequest(body: Record<string, unknown>): ChatRequest {
  const base = sampling(body);
  const mct = num(body, "max_completion_tokens", {
    int: true,
    ok: (v) => v >= 1,
    what: "an integer >= 1",
  });
  const raw = get(body, "messages");
  if (!Array.isArray(raw) || raw.length === 0) {
    throw bad("messages", "messages must be a non-empty list");
  }
  const messages: ChatMessage[] = raw.map((m, i) => {
    const param = `messages[${i}]`;
    if (typeof m !== "object" || m === null || Array.isArray(m)) {
      throw bad(param, `${param} must be an object`);
    }
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== "string" || role === "") {
      throw bad(`${param}.role`, `${param}.role must be a string`);
    }
    let text: string;
    if (typeof content === "string") text = content;
    else if (content === null || content === undefined) text = "";
    else if (Array.isArray(content)) {
      text = content.map((part, j) => {
        const p = part as { type?: unknown; text?: unknown };
        if (p?.type !== "text" || typeof p.text !== "string") {
          throw unsupported(
            `${param}.content[${j}]`,
            `${param}.content[${j}]: only text parts are supported`,
          );
        }
        return p.text;
      }).join("");
    } else {
      throw bad(
        `${param}.content`,
        `${param}.content must be a string or a list of text parts`,
      );
    }
    return { role, content: text };
  });
  const tools = get(body, "tools");
  if (Array.isArray(tools) && tools.length > 0) {
    throw unsupported("tools", "tools are not supported");
  }
  if (get(body, "logprobs") === true) {
    throw unsupported("logprobs", "logprobs are not supported");
  }
  return { ...base, maxTokens: mct ?? base.maxTokens, messages };
}
