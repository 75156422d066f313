/**
 * The tokenizer of a model: `tokenizer.json` run by `@huggingface/tokenizers`,
 * plus what Hugging Face keeps next to it — BOS/EOS ids and `add_bos_token`
 * (from `tokenizer_config.json`, `generation_config.json` and `config.json`),
 * the named special tokens, and the chat template(s).
 *
 * @module
 */
// Pinned here, not through deno.json's import map: a project that imports
// mod.ts from another directory has its own map (README "From code").
// deno-lint-ignore no-import-prefix
import { Tokenizer as HfTokenizer } from "npm:@huggingface/tokenizers@0.2.0";
import { join } from "node:path";
import { FormatError, StrataError } from "../errors.ts";
import {
  MAX_TOKENIZER_BYTES,
  validateTokenizerJson,
} from "./_validate_tokenizer.ts";

/** One entry of `tokenizer_config.json`'s `chat_template` in its list form. */
export interface NamedChatTemplate {
  /** Template name ("default", "tool_use", "rag", ...). */
  name: string;
  /** Jinja source. */
  template: string;
}

/** Options of {@linkcode Tokenizer.fromJson}. */
export interface TokenizerJsonOptions {
  /** Contents of `tokenizer_config.json` (chat template, bos/eos, add_bos_token). */
  config?: Record<string, unknown>;
  /** Contents of `generation_config.json` (bos/eos ids; eos may be a list). */
  generationConfig?: Record<string, unknown>;
  /** Contents of the model's `config.json` (bos/eos ids as a last resort). */
  modelConfig?: Record<string, unknown>;
  /** Name used in error messages (default "tokenizer.json"). */
  file?: string;
}

/** Options of {@linkcode Tokenizer.encode}. */
export interface EncodeOptions {
  /** Add BOS (and whatever the post-processor adds). Default true, as in Hugging Face. */
  addSpecialTokens?: boolean;
}

/** Options of {@linkcode Tokenizer.decode}. */
export interface DecodeOptions {
  /** Leave out special tokens (BOS, EOS, chat markers). Default false. */
  skipSpecialTokens?: boolean;
  /**
   * Apply Hugging Face's `clean_up_tokenization_spaces` (" ." → "." ...).
   * Default: the value in tokenizer_config.json, false when absent.
   */
  cleanUpTokenizationSpaces?: boolean;
}

function tokenText(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (
    v && typeof v === "object" &&
    typeof (v as { content?: unknown }).content === "string"
  ) {
    return (v as { content: string }).content;
  }
  return null;
}

function idList(v: unknown): number[] {
  if (typeof v === "number" && Number.isInteger(v) && v >= 0) return [v];
  if (Array.isArray(v)) return v.flatMap(idList);
  return [];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * A model's tokenizer.
 *
 * @example
 * ```ts ignore
 * import { Tokenizer } from "./tokenizer.ts";
 * const tok = await Tokenizer.fromDir("shards/llama2");
 * const ids = tok.encode("Hello world");       // [1, 15043, 3186] (BOS first)
 * console.log(tok.decode(ids, { skipSpecialTokens: true })); // "Hello world"
 * ```
 */
export class Tokenizer {
  #hf: HfTokenizer;
  #file: string;
  #vocabSize: number;
  #bos: number | null;
  #eos: number[];
  #addBos: boolean;
  #special: Record<string, string>;
  #specialIds: number[];
  #template: string | null;
  #templates: Record<string, string>;
  #cleanUp: boolean;
  #kind: string;

  private constructor(
    hf: HfTokenizer,
    json: Record<string, unknown>,
    opts: TokenizerJsonOptions,
  ) {
    const file = opts.file ?? "tokenizer.json";
    const cfg = opts.config ?? {};
    const gen = opts.generationConfig ?? {};
    const mc = opts.modelConfig ?? {};
    this.#hf = hf;
    this.#file = file;
    const model = json.model as Record<string, unknown>;
    this.#kind = String(model.type ?? "BPE");

    let maxId = -1;
    for (const id of hf.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.#vocabSize = maxId + 1;

    // Named special tokens from tokenizer_config.json.
    this.#special = {};
    for (const [k, v] of Object.entries(cfg)) {
      if (!k.endsWith("_token")) continue;
      const t = tokenText(v);
      if (t !== null) this.#special[k] = t;
    }
    this.#specialIds = [];
    for (const [id, t] of hf.get_added_tokens_decoder()) {
      if (t.special) this.#specialIds.push(id);
    }
    this.#specialIds.sort((a, b) => a - b);

    const idOf = (text: string | undefined): number | null => {
      if (text === undefined) return null;
      const id = hf.token_to_id(text);
      return id === undefined ? null : id;
    };

    // BOS: tokenizer_config's text, then generation_config, then config.json.
    this.#bos = idOf(this.#special.bos_token) ?? idList(gen.bos_token_id)[0] ??
      idList(mc.bos_token_id)[0] ?? null;
    if (this.#bos !== null && this.#bos >= this.#vocabSize) {
      throw new FormatError(
        file,
        `bos token id ${this.#bos} (from generation_config.json or config.json) is outside the vocabulary of ${this.#vocabSize}`,
      );
    }
    if (this.#bos !== null && this.#special.bos_token === undefined) {
      const t = hf.id_to_token(this.#bos);
      if (t !== undefined) this.#special.bos_token = t;
    }
    // EOS: every id any of the three files names (generation stops on any).
    const eos: number[] = [];
    const addEos = (ids: number[]) => {
      for (const id of ids) {
        if (id < this.#vocabSize && !eos.includes(id)) eos.push(id);
      }
    };
    addEos(idList(gen.eos_token_id));
    const eosText = idOf(this.#special.eos_token);
    if (eosText !== null) addEos([eosText]);
    addEos(idList(mc.eos_token_id));
    this.#eos = eos;
    if (eos.length > 0 && this.#special.eos_token === undefined) {
      const t = hf.id_to_token(eos[0]);
      if (t !== undefined) this.#special.eos_token = t;
    }

    // add_bos_token: explicit in tokenizer_config.json, else what the
    // post-processor does.
    if (typeof cfg.add_bos_token === "boolean") {
      this.#addBos = cfg.add_bos_token && this.#bos !== null;
    } else {
      const probe = hf.encode("a", { add_special_tokens: true }).ids;
      this.#addBos = this.#bos !== null && probe[0] === this.#bos;
    }
    this.#cleanUp = cfg.clean_up_tokenization_spaces === true;

    // Chat template(s): a string, or [{name, template}] (pick "default").
    this.#templates = {};
    const ct = cfg.chat_template;
    if (typeof ct === "string") {
      this.#templates.default = ct;
    } else if (Array.isArray(ct)) {
      for (const e of ct) {
        if (
          !isObject(e) || typeof e.name !== "string" ||
          typeof e.template !== "string"
        ) {
          throw new FormatError(
            "tokenizer_config.json",
            "chat_template list entries must be {name, template} strings",
          );
        }
        this.#templates[e.name] = e.template;
      }
    } else if (ct !== undefined && ct !== null) {
      throw new FormatError(
        "tokenizer_config.json",
        `chat_template must be a string or a list of {name, template}, got ${typeof ct}`,
      );
    }
    this.#template = this.#templates.default ?? null;
  }

  /**
   * Builds a tokenizer from parsed `tokenizer.json` (and optionally the
   * configs next to it). The second argument is either
   * {@linkcode TokenizerJsonOptions} or, as a shorthand, the parsed
   * `tokenizer_config.json` itself.
   *
   * @example
   * ```ts ignore
   * import { Tokenizer } from "./tokenizer.ts";
   * const json = JSON.parse(await Deno.readTextFile("tokenizer.json"));
   * const tok = Tokenizer.fromJson(json, { config: { add_bos_token: true } });
   * ```
   */
  static fromJson(
    tokenizerJson: object,
    optsOrConfig: TokenizerJsonOptions | Record<string, unknown> = {},
  ): Tokenizer {
    const opts = asOptions(optsOrConfig);
    const file = opts.file ?? "tokenizer.json";
    if (!isObject(tokenizerJson)) {
      throw new FormatError(file, "not a JSON object");
    }
    // Nothing reaches the library unchecked: it trusts its input (an id of
    // 1e9 makes it spin, a null template fails on the first encode).
    validateTokenizerJson(tokenizerJson, file);
    // Absent components are none (the library wants every key present).
    tokenizerJson = {
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      ...tokenizerJson,
      added_tokens: tokenizerJson.added_tokens ?? [],
    };
    const config = opts.config ?? {};
    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer(tokenizerJson, config);
      // One encode and decode at load, so a tokenizer the library builds but
      // cannot run fails here, naming the file, not on the first prompt.
      const probe = hf.encode("Hi, 12 é\u00e9 😀", {
        add_special_tokens: true,
      });
      hf.decode(probe.ids, { skip_special_tokens: false });
    } catch (e) {
      throw new FormatError(
        file,
        `cannot build the tokenizer: ${oneLine(e)}`,
        { cause: e },
      );
    }
    return guarded(
      file,
      () => new Tokenizer(hf, tokenizerJson as Record<string, unknown>, opts),
    );
  }

  /**
   * Loads `tokenizer.json` from `dir`, with `tokenizer_config.json`,
   * `generation_config.json` and `config.json` when present; a
   * `chat_template.jinja` file, when present, is the chat template.
   * Throws {@linkcode FormatError} when tokenizer.json is missing or bad.
   *
   * @example
   * ```ts ignore
   * import { Tokenizer } from "./tokenizer.ts";
   * const tok = await Tokenizer.fromDir("../shared/tokenizers/llama2");
   * console.log(tok.bosTokenId, tok.eosTokenIds); // 1 [2]
   * ```
   */
  static async fromDir(dir: string): Promise<Tokenizer> {
    const path = join(dir, "tokenizer.json");
    let text: string;
    try {
      const size = (await Deno.stat(path)).size;
      if (size > MAX_TOKENIZER_BYTES) {
        throw new FormatError(
          path,
          `${size} bytes is larger than any real tokenizer.json (limit ${MAX_TOKENIZER_BYTES})`,
        );
      }
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof StrataError) throw e;
      if (e instanceof Deno.errors.NotFound) {
        throw new FormatError(
          path,
          "not found (the model directory has no tokenizer.json)",
        );
      }
      throw new FormatError(path, `cannot read: ${(e as Error).message}`);
    }
    const json = parseJson(path, text);
    let config = await readOptionalJson(join(dir, "tokenizer_config.json"));
    // transformers ≥ 4.50 saves the template as chat_template.jinja (and no
    // longer in tokenizer_config.json); when present it is the template.
    const jinja = await readOptionalText(join(dir, "chat_template.jinja"));
    if (jinja !== undefined && jinja.trim() !== "") {
      config = { ...(config ?? {}), chat_template: jinja };
    }
    const generationConfig = await readOptionalJson(
      join(dir, "generation_config.json"),
    );
    const modelConfig = await readOptionalJson(join(dir, "config.json"));
    return Tokenizer.fromJson(json, {
      config,
      generationConfig,
      modelConfig,
      file: path,
    });
  }

  /**
   * Text → ids. With `addSpecialTokens` (default true) the post-processor's
   * tokens are added and BOS is ensured when `addBosToken` is set. Chat text
   * rendered by a template already holds its BOS: encode it with
   * `addSpecialTokens: false`.
   *
   * @example
   * ```ts ignore
   * tok.encode("Hi", { addSpecialTokens: false }); // [6324]
   * ```
   */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const add = opts.addSpecialTokens ?? true;
    const ids = guarded(
      this.#file,
      () => this.#hf.encode(text, { add_special_tokens: add }).ids,
    );
    if (add && this.#addBos && this.#bos !== null && ids[0] !== this.#bos) {
      ids.unshift(this.#bos);
    }
    return ids;
  }

  /**
   * Ids → text. Ids outside the vocabulary decode as the unknown token.
   *
   * @example
   * ```ts ignore
   * tok.decode([1, 15043], { skipSpecialTokens: true }); // "Hello"
   * ```
   */
  decode(ids: number[], opts: DecodeOptions = {}): string {
    if (ids.length === 0) return "";
    return guarded(this.#file, () =>
      this.#hf.decode(ids, {
        skip_special_tokens: opts.skipSpecialTokens ?? false,
        clean_up_tokenization_spaces: opts.cleanUpTokenizationSpaces ??
          this.#cleanUp,
      }));
  }

  /**
   * The token text of `id` as stored in the vocabulary (e.g. "▁Hello"), or
   * undefined.
   *
   * @example
   * ```ts ignore
   * tok.idToToken(1); // "<s>"
   * ```
   */
  idToToken(id: number): string | undefined {
    return guarded(this.#file, () => this.#hf.id_to_token(id));
  }

  /**
   * The id of the vocabulary entry `token`, or undefined.
   *
   * @example
   * ```ts ignore
   * tok.tokenToId("</s>"); // 2
   * ```
   */
  tokenToId(token: string): number | undefined {
    return guarded(this.#file, () => this.#hf.token_to_id(token));
  }

  /** Beginning-of-sequence id, or null when the model has none. */
  get bosTokenId(): number | null {
    return this.#bos;
  }
  /** Every end-of-sequence id (generation stops on any of them). */
  get eosTokenIds(): number[] {
    return [...this.#eos];
  }
  /** Whether `encode` with special tokens starts with BOS. */
  get addBosToken(): boolean {
    return this.#addBos;
  }
  /** Highest token id + 1 (added tokens included). */
  get vocabSize(): number {
    return this.#vocabSize;
  }
  /** The model type of tokenizer.json ("BPE", "Unigram", "WordPiece"). */
  get modelType(): string {
    return this.#kind;
  }
  /** The file this tokenizer came from (for messages). */
  get file(): string {
    return this.#file;
  }
  /** The default chat template, or null when the model has none. */
  get chatTemplate(): string | null {
    return this.#template;
  }
  /** Every named chat template ("default" included when present). */
  get chatTemplates(): Readonly<Record<string, string>> {
    return { ...this.#templates };
  }
  /** Named special tokens: `{ bos_token: "<s>", eos_token: "</s>", ... }`. */
  get specialTokens(): Record<string, string> {
    return { ...this.#special };
  }
  /** Ids of every added token marked special. */
  get specialTokenIds(): number[] {
    return [...this.#specialIds];
  }
}

/** An error of the tokenizer library, on one line. */
function oneLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.replace(/\s*\n\s*/g, " ").trim().slice(0, 200);
}

/**
 * Runs `f`, turning anything the tokenizer library throws into a
 * FormatError naming the file (its own errors are not Strata's).
 */
function guarded<T>(file: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof StrataError) throw e;
    throw new FormatError(file, `the tokenizer failed: ${oneLine(e)}`, {
      cause: e,
    });
  }
}

const OPTION_KEYS = new Set([
  "config",
  "generationConfig",
  "modelConfig",
  "file",
]);

/** Options object, or a bare tokenizer_config.json (the contract's shorthand). */
function asOptions(
  v: TokenizerJsonOptions | Record<string, unknown>,
): TokenizerJsonOptions {
  const keys = Object.keys(v);
  if (keys.length === 0 || keys.every((k) => OPTION_KEYS.has(k))) {
    return v as TokenizerJsonOptions;
  }
  return { config: v as Record<string, unknown> };
}

function parseJson(path: string, text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new FormatError(path, `invalid JSON: ${(e as Error).message}`);
  }
  if (!isObject(v)) throw new FormatError(path, "not a JSON object");
  return v;
}

async function readOptionalText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new FormatError(path, `cannot read: ${(e as Error).message}`);
  }
}

async function readOptionalJson(
  path: string,
): Promise<Record<string, unknown> | undefined> {
  const text = await readOptionalText(path);
  return text === undefined ? undefined : parseJson(path, text);
}

/** What `info` prints about a model's tokenizer. */
export interface TokenizerDescription {
  /** tokenizer.json model type: "BPE", "Unigram", "WordPiece". */
  type: string;
  /** Highest id + 1. */
  vocabSize: number;
  /** BOS id or null. */
  bosTokenId: number | null;
  /** EOS ids. */
  eosTokenIds: number[];
  /** Whether BOS is added when encoding. */
  addBosToken: boolean;
  /** Named special tokens from tokenizer_config.json. */
  specialTokens: Record<string, string>;
  /** Number of added tokens marked special. */
  specialTokenCount: number;
  /** Whether a default chat template is present. */
  chatTemplate: boolean;
  /** Names of all chat templates. */
  chatTemplateNames: string[];
  /** The same as human-readable lines ("tokenizer: BPE, 32000 tokens, ..."). */
  lines: string[];
}

/**
 * Describes the tokenizer in `dir` (for `info`), or returns null when the
 * directory has no tokenizer.json.
 *
 * @example
 * ```ts ignore
 * import { describeTokenizer } from "./tokenizer.ts";
 * const d = await describeTokenizer("../shared/tokenizers/llama2");
 * for (const line of d?.lines ?? ["tokenizer: none"]) console.log(line);
 * ```
 */
export async function describeTokenizer(
  dir: string,
): Promise<TokenizerDescription | null> {
  try {
    await Deno.stat(join(dir, "tokenizer.json"));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  const tok = await Tokenizer.fromDir(dir);
  const name = (id: number) =>
    `${id} ${JSON.stringify(tok.idToToken(id) ?? "?")}`;
  const names = Object.keys(tok.chatTemplates);
  const special = tok.specialTokens;
  const lines = [
    `tokenizer: ${tok.modelType}, ${tok.vocabSize} tokens, ${tok.specialTokenIds.length} special`,
    `  bos: ${tok.bosTokenId === null ? "none" : name(tok.bosTokenId)}` +
    ` (added: ${tok.addBosToken ? "yes" : "no"}), eos: ${
      tok.eosTokenIds.length ? tok.eosTokenIds.map(name).join(", ") : "none"
    }`,
    `  special tokens: ${
      Object.entries(special).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(
        " ",
      ) || "none"
    }`,
    `  chat template: ${
      names.length === 0
        ? "none"
        : names.includes("default") && names.length === 1
        ? "yes"
        : `yes (${names.join(", ")})`
    }`,
  ];
  return {
    type: tok.modelType,
    vocabSize: tok.vocabSize,
    bosTokenId: tok.bosTokenId,
    eosTokenIds: tok.eosTokenIds,
    addBosToken: tok.addBosToken,
    specialTokens: special,
    specialTokenCount: tok.specialTokenIds.length,
    chatTemplate: tok.chatTemplate !== null,
    chatTemplateNames: names,
    lines,
  };
}
