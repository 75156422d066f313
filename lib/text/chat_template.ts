/**
 * Chat templates: the Jinja template in `tokenizer_config.json` turns a list
 * of messages into the prompt text the model was trained on. Rendering uses
 * `@huggingface/jinja` with the same conventions as `transformers`
 * (`trim_blocks`, `lstrip_blocks`, `raise_exception`, `strftime_now`,
 * `bos_token`/`eos_token` and the other named special tokens as variables).
 *
 * @module
 */
// Pinned here, not through deno.json's import map: a project that imports
// mod.ts from another directory has its own map (README "From code").
// deno-lint-ignore no-import-prefix
import * as jinja from "npm:@huggingface/jinja@0.5.11";
import { FormatError, UsageError } from "../errors.ts";
import type { Tokenizer } from "./tokenizer.ts";

const { Environment, Interpreter, Template } = jinja;

/** One chat message. */
export interface ChatMessage {
  /** "system", "user", "assistant", "tool", ... */
  role: string;
  /** The message text. */
  content: string;
  /** Any other field a template may read (reasoning_content, tool_calls, ...). */
  [key: string]: unknown;
}

/** Arguments of {@linkcode renderChatTemplate}. */
export interface RenderChatTemplateArgs {
  /** The conversation. */
  messages: ChatMessage[];
  /** Append the header that starts the assistant's reply. Default false. */
  addGenerationPrompt?: boolean;
  /** Value of `bos_token` in the template. Default "". */
  bosToken?: string;
  /** Value of `eos_token` in the template. Default "". */
  eosToken?: string;
  /** Other named special tokens (`unk_token`, `pad_token`, ...) as variables. */
  specialTokens?: Record<string, string>;
  /** Extra template variables (`tools`, `enable_thinking`, `date_string`, ...). */
  variables?: Record<string, unknown>;
  /** Where the template came from, for error messages. Default "chat template". */
  source?: string;
  /** Bounds of the rendering (time, string length, list length). */
  limits?: TemplateLimits;
}

/** The error `raise_exception(...)` throws inside a template. */
class TemplateRaise extends Error {}

const MONTHS = [
  "Jan",
  "Feb",
  "Mar",
  "Apr",
  "May",
  "Jun",
  "Jul",
  "Aug",
  "Sep",
  "Oct",
  "Nov",
  "Dec",
];
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const FULL_MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];
const FULL_DAYS = [
  "Sunday",
  "Monday",
  "Tuesday",
  "Wednesday",
  "Thursday",
  "Friday",
  "Saturday",
];

/**
 * Bounds of one template rendering. Chat templates are code from a model
 * repository: a loop over `range(10**9)` or a string doubled in a loop must
 * end with an error, not a hang or gigabytes of memory.
 */
export interface TemplateLimits {
  /** Wall-clock limit in milliseconds. Default 2000 (real templates take a few ms). */
  timeMs?: number;
  /**
   * Longest string (the output included) any step may produce, in
   * characters. Default 8 Mi, or 4 × the messages' text when that is more.
   */
  maxChars?: number;
  /** Most items `range()` or any list may hold. Default 100,000. */
  maxItems?: number;
}

/** Defaults of {@linkcode TemplateLimits}. */
const LIMITS = { timeMs: 2000, maxChars: 8 * 2 ** 20, maxItems: 100_000 };

/** A template ran past one of its {@linkcode TemplateLimits}. */
class TemplateOverrun extends Error {}

/** Python's `range(start, stop, step)`, refusing more than `maxItems` items. */
function pyRange(maxItems: number) {
  return (start: number, stop?: number, step = 1): number[] => {
    if (stop === undefined) [start, stop] = [0, start];
    for (const v of [start, stop, step]) {
      if (!Number.isSafeInteger(v)) {
        throw new Error(`range() takes integers, got ${v}`);
      }
    }
    if (step === 0) throw new Error("range() step must not be zero");
    const n = Math.max(0, Math.ceil((stop - start) / step));
    if (n > maxItems) {
      throw new TemplateOverrun(
        `range() of ${n} items exceeds the limit of ${maxItems}`,
      );
    }
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(start + i * step);
    return out;
  };
}

type Statement = Parameters<jinja.Interpreter["evaluate"]>[0];
type Env = Parameters<jinja.Interpreter["evaluate"]>[1];
type Value = ReturnType<jinja.Interpreter["evaluate"]>;

/**
 * The Jinja interpreter with a step counter: every evaluated node counts,
 * every 1024 steps the clock is read, and every string or list a node
 * produces is measured. `@huggingface/jinja` is synchronous, so the check
 * has to run inside the evaluation itself.
 */
class BoundedInterpreter extends Interpreter {
  #steps = 0;
  #deadline: number;
  #limits: Required<TemplateLimits>;

  constructor(env: jinja.Environment, limits: Required<TemplateLimits>) {
    super(env);
    this.#limits = limits;
    this.#deadline = performance.now() + limits.timeMs;
    // A loop runs its body through evaluateBlock, which is private in the
    // typings: an empty body never reaches evaluate, so count it here too.
    const self = this as unknown as {
      evaluateBlock: (statements: unknown, environment: Env) => Value;
    };
    const block = self.evaluateBlock.bind(this);
    self.evaluateBlock = (statements, environment) => {
      this.#tick();
      return block(statements, environment);
    };
  }

  #tick(): void {
    if ((++this.#steps & 1023) === 0 && performance.now() > this.#deadline) {
      throw new TemplateOverrun(
        `rendering took longer than ${this.#limits.timeMs} ms (${this.#steps} steps)`,
      );
    }
  }

  override evaluate(statement: Statement, environment: Env): Value {
    this.#tick();
    const v = super.evaluate(statement, environment);
    if (
      v.type === "StringValue" &&
      (v.value as string).length > this.#limits.maxChars
    ) {
      throw new TemplateOverrun(
        `the output exceeds ${this.#limits.maxChars} characters`,
      );
    }
    if (
      (v.type === "ArrayValue" || v.type === "TupleValue") &&
      (v.value as unknown[]).length > this.#limits.maxItems
    ) {
      throw new TemplateOverrun(
        `a list exceeds the limit of ${this.#limits.maxItems} items`,
      );
    }
    return v;
  }
}

/** Python's `strftime` for the directives chat templates use. */
function strftime(format: string, d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return format.replace(/%([a-zA-Z%])/g, (m, c: string) => {
    switch (c) {
      case "d":
        return p(d.getDate());
      case "e":
        return String(d.getDate()).padStart(2, " ");
      case "m":
        return p(d.getMonth() + 1);
      case "Y":
        return String(d.getFullYear());
      case "y":
        return p(d.getFullYear() % 100);
      case "b":
        return MONTHS[d.getMonth()];
      case "B":
        return FULL_MONTHS[d.getMonth()];
      case "a":
        return DAYS[d.getDay()];
      case "A":
        return FULL_DAYS[d.getDay()];
      case "H":
        return p(d.getHours());
      case "M":
        return p(d.getMinutes());
      case "S":
        return p(d.getSeconds());
      case "j": {
        const start = new Date(d.getFullYear(), 0, 1);
        return p(Math.floor((d.getTime() - start.getTime()) / 86400000) + 1, 3);
      }
      case "%":
        return "%";
      default:
        return m;
    }
  });
}

/**
 * Renders a Jinja chat template. Syntax errors throw {@linkcode FormatError}
 * naming the template's source; `raise_exception("...")` in the template
 * (e.g. "Conversation roles must alternate") throws {@linkcode UsageError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderChatTemplate } from "./chat_template.ts";
 * const text = renderChatTemplate(
 *   "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}" +
 *     "{% if add_generation_prompt %}<assistant>{% endif %}",
 *   { messages: [{ role: "user", content: "Hi" }], addGenerationPrompt: true },
 * );
 * assert.deepStrictEqual(text, "<user>Hi\n<assistant>");
 * ```
 */
export function renderChatTemplate(
  template: string,
  args: RenderChatTemplateArgs,
): string {
  const source = args.source ?? "chat template";
  let t: jinja.Template;
  try {
    t = new Template(template);
  } catch (e) {
    throw new FormatError(
      source,
      `cannot parse the Jinja template: ${oneLine((e as Error).message)}`,
      {
        cause: e,
      },
    );
  }
  let inputChars = 0;
  for (const m of args.messages) {
    if (typeof m?.content === "string") inputChars += m.content.length;
  }
  const limits: Required<TemplateLimits> = {
    timeMs: args.limits?.timeMs ?? LIMITS.timeMs,
    maxChars: args.limits?.maxChars ??
      Math.max(LIMITS.maxChars, 4 * inputChars),
    maxItems: args.limits?.maxItems ?? LIMITS.maxItems,
  };
  // The globals transformers provides, set here rather than by
  // Template.render so that raise_exception can be told apart from other
  // errors and strftime_now knows more directives (in English).
  const globals: Record<string, unknown> = {
    false: false,
    true: true,
    none: null,
    False: false,
    True: true,
    None: null,
    range: pyRange(limits.maxItems),
    raise_exception: (message: unknown) => {
      throw new TemplateRaise(String(message));
    },
    strftime_now: (format: unknown) => strftime(String(format), new Date()),
  };
  const context: Record<string, unknown> = {
    ...globals,
    ...(args.specialTokens ?? {}),
    ...(args.variables ?? {}),
    messages: args.messages,
    add_generation_prompt: args.addGenerationPrompt ?? false,
    bos_token: args.bosToken ?? args.specialTokens?.bos_token ?? "",
    eos_token: args.eosToken ?? args.specialTokens?.eos_token ?? "",
  };
  try {
    const env = new Environment();
    for (const [k, v] of Object.entries(context)) env.set(k, v);
    return new BoundedInterpreter(env, limits).run(t.parsed).value as string;
  } catch (e) {
    if (e instanceof TemplateRaise) {
      throw new UsageError(`${source}: ${e.message}`, { cause: e });
    }
    if (e instanceof TemplateOverrun) {
      throw new FormatError(
        source,
        `rendering stopped: ${e.message} (a chat template must not loop without bound)`,
        { cause: e },
      );
    }
    throw new FormatError(
      source,
      `cannot render: ${oneLine((e as Error).message)}`,
      {
        cause: e,
      },
    );
  }
}

/**
 * Reads a `--chat-template FILE`: a Jinja file, or a JSON file holding
 * `chat_template` (a tokenizer_config.json) or a JSON string.
 *
 * @example
 * ```ts ignore
 * import { loadChatTemplate } from "./chat_template.ts";
 * const template = await loadChatTemplate("templates/chatml.jinja");
 * ```
 */
export async function loadChatTemplate(path: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(`${path}: chat template file not found`);
    }
    throw new UsageError(
      `${path}: cannot read the chat template: ${(e as Error).message}`,
    );
  }
  if (path.endsWith(".json")) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new FormatError(path, `invalid JSON: ${(e as Error).message}`);
    }
    if (typeof v === "string") return checkTemplateSyntax(v, path);
    const ct = (v as { chat_template?: unknown })?.chat_template;
    if (typeof ct === "string") return checkTemplateSyntax(ct, path);
    if (Array.isArray(ct)) {
      const d = ct.find((e) => e?.name === "default");
      if (typeof d?.template === "string") {
        return checkTemplateSyntax(d.template, path);
      }
    }
    throw new FormatError(path, "has no chat_template string");
  }
  if (text.trim() === "") {
    throw new FormatError(path, "the chat template is empty");
  }
  return checkTemplateSyntax(text, path);
}

/** Parses `template` once so a syntax error is reported when it is loaded. */
function checkTemplateSyntax(template: string, path: string): string {
  try {
    new Template(template);
  } catch (e) {
    throw new FormatError(
      path,
      `cannot parse the Jinja template: ${oneLine((e as Error).message)}`,
      { cause: e },
    );
  }
  return template;
}

/** Error text of a library on one line (the CLI prints one line per error). */
function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, " ").trim();
}

/** Options of {@linkcode applyChatTemplate}. */
export interface ApplyChatTemplateOptions {
  /** Append the assistant header. Default true. */
  addGenerationPrompt?: boolean;
  /** A template that replaces the tokenizer's (`--chat-template FILE`). */
  template?: string;
  /** A named template of the tokenizer ("tool_use", ...) instead of the default. */
  name?: string;
  /** The model's name, for the "no chat template" error. Default "model". */
  model?: string;
  /** Extra template variables. */
  variables?: Record<string, unknown>;
}

/**
 * Renders `messages` with the tokenizer's chat template (or `opts.template`),
 * filling `bos_token`, `eos_token` and the other named special tokens from
 * the tokenizer. Throws {@linkcode UsageError}
 * "`<model>: no chat template; pass --chat-template FILE`" when there is none.
 * The text already holds BOS when the template writes it: encode it with
 * `addSpecialTokens: false`.
 *
 * @example
 * ```ts ignore
 * import { applyChatTemplate } from "./chat_template.ts";
 * const prompt = applyChatTemplate(tokenizer, [{ role: "user", content: "Hi" }]);
 * const ids = tokenizer.encode(prompt, { addSpecialTokens: false });
 * ```
 */
export function applyChatTemplate(
  tokenizer: Tokenizer,
  messages: ChatMessage[],
  opts: ApplyChatTemplateOptions = {},
): string {
  const model = opts.model ?? "model";
  let template = opts.template ?? null;
  if (template === null) {
    if (opts.name !== undefined) {
      template = tokenizer.chatTemplates[opts.name] ?? null;
      if (template === null) {
        throw new UsageError(
          `${model}: no chat template named '${opts.name}' (have: ${
            Object.keys(tokenizer.chatTemplates).join(", ") || "none"
          })`,
        );
      }
    } else {
      template = tokenizer.chatTemplate;
    }
  }
  if (template === null) {
    throw new UsageError(
      `${model}: no chat template; pass --chat-template FILE`,
    );
  }
  return renderChatTemplate(template, {
    messages,
    addGenerationPrompt: opts.addGenerationPrompt ?? true,
    specialTokens: tokenizer.specialTokens,
    variables: opts.variables,
    source: opts.template !== undefined
      ? "--chat-template"
      : `${model}: chat template`,
  });
}
