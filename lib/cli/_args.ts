/**
 * Flag helpers shared by the subcommands.
 *
 * @module
 */
import {
  encoding,
  parseQuantization,
  type Quantization,
} from "../quant/encoding.ts";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../errors.ts";

/**
 * Parses the numeric flag `--<flag>` with value `v`: `undefined` when
 * absent, else a finite number (an integer when `rule.int`) that is at least
 * `rule.min`.
 *
 * @throws {UsageError} naming the flag and the bad value.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { numberFlag } from "./_args.ts";
 * assert.deepStrictEqual(numberFlag("top-k", "40", { int: true, min: 0 }), 40);
 * ```
 */
export function numberFlag(
  flag: string,
  v: string | undefined,
  rule: { int: boolean; min: number },
): number | undefined {
  if (v === undefined) return undefined;
  const { int, min } = rule;
  const n = Number(v);
  if (
    v.trim() === "" || !Number.isFinite(n) || (int && !Number.isInteger(n)) ||
    n < min
  ) {
    throw new UsageError(
      `--${flag} must be ${
        int ? "an integer" : "a number"
      } >= ${min}, got '${v}'`,
    );
  }
  return n;
}

/** The flag declarations of one subcommand (node:util parseArgs options). */
export type FlagSpec = NonNullable<ParseArgsConfig["options"]>;

/** What {@link parseCommand} parses. */
export interface CommandSpec<O extends FlagSpec> {
  /** The subcommand's name, prefixed to error messages. */
  command: string;
  /** Its command-line arguments. */
  args: string[];
  /** Its flags. */
  options: O;
  /** Whether it takes positional arguments (default true). */
  positionals?: boolean;
}

/**
 * Parses a subcommand's arguments strictly (unknown flags are errors); a
 * parse error becomes a {@link UsageError} prefixed with the subcommand's
 * name.
 *
 * @throws {UsageError} on an unknown flag, a missing flag value or an
 * unexpected positional argument.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommand } from "./_args.ts";
 * const { values, positionals } = parseCommand({
 *   command: "info",
 *   args: ["dir", "--json"],
 *   options: { json: { type: "boolean" } },
 * });
 * assert.deepStrictEqual([values.json, positionals], [true, ["dir"]]);
 * ```
 */
export function parseCommand<O extends FlagSpec>(
  spec: CommandSpec<O>,
): ReturnType<
  typeof parseArgs<
    { args: string[]; options: O; strict: true; allowPositionals: true }
  >
> {
  try {
    return parseArgs({
      args: joinNegativeValues(spec.args, spec.options),
      options: spec.options,
      strict: true,
      allowPositionals: spec.positionals ?? true,
    }) as ReturnType<
      typeof parseArgs<
        { args: string[]; options: O; strict: true; allowPositionals: true }
      >
    >;
  } catch (e) {
    // node's "Unknown option '--x'. To specify a positional argument ..."
    // hint is noise here: keep the first sentence, point at --help.
    const message = (e as Error).message;
    const first = message.replace(
      /^(Unknown option '[^']*')\. To specify .*$/s,
      "$1",
    );
    const unknown = /^Unknown option '(-{1,2}[^'=]*)/.exec(message)?.[1];
    const guess = unknown === undefined
      ? null
      : closestFlag(unknown, Object.keys(spec.options));
    throw new UsageError(
      `${spec.command}: ${first}${
        guess === null ? "" : ` (did you mean --${guess}?)`
      }; see '${spec.command} --help'`,
    );
  }
}

/**
 * node's parseArgs takes `--temperature -1` for two options and calls it
 * ambiguous: a negative number after a flag that takes a value is that
 * flag's value (`--temperature=-1`), so its own range check can speak.
 */
function joinNegativeValues(args: string[], options: FlagSpec): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      out.push(...args.slice(i));
      break;
    }
    const name = a.startsWith("--") && !a.includes("=") ? a.slice(2) : null;
    const next = args[i + 1];
    if (
      name !== null && options[name]?.type === "string" &&
      next !== undefined && /^-(\d|\.\d|Infinity)/.test(next)
    ) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** Edit distance between `a` and `b` (insert, delete, substitute, swap). */
function editDistance(a: string, b: string): number {
  const d = Array.from(
    { length: a.length + 1 },
    (_, i) =>
      Array.from(
        { length: b.length + 1 },
        (_, j) => i === 0 ? j : j === 0 ? i : 0,
      ),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(
        d[i - 1][j] + 1,
        d[i][j - 1] + 1,
        d[i - 1][j - 1] + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The known flag closest to the unknown `flag` (`--temprature` →
 * `temperature`), or null when none is close: at most 1 edit for short
 * names, 2 for longer ones, or a unique flag that starts with it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { closestFlag } from "./_args.ts";
 * assert.equal(closestFlag("--temprature", ["temperature", "top-k"]), "temperature");
 * assert.equal(closestFlag("--max-new", ["max-new-tokens", "max-seq-len"]), "max-new-tokens");
 * assert.equal(closestFlag("--zzz", ["temperature"]), null);
 * ```
 */
export function closestFlag(flag: string, known: string[]): string | null {
  const name = flag.replace(/^-+/, "").toLowerCase();
  if (name === "") return null;
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of known) {
    const dist = editDistance(name, k);
    if (dist < bestD) [best, bestD] = [k, dist];
  }
  if (best !== null && bestD <= (name.length <= 4 ? 1 : 2)) return best;
  const prefixed = known.filter((k) => k.startsWith(name));
  return prefixed.length === 1 ? prefixed[0] : null;
}

/**
 * The flags `run`, `chat` and `serve` share: how the model is loaded (budget, KV
 * cache, split-time quantization, llama2.c tokenizer) and how tokens are
 * sampled. Spread it into a subcommand's own flags.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MODEL_FLAGS, parseCommand } from "./_args.ts";
 * const { values } = parseCommand({
 *   command: "run",
 *   args: ["m", "--top-k", "40"],
 *   options: { ...MODEL_FLAGS, json: { type: "boolean" } },
 * });
 * assert.deepStrictEqual(values["top-k"], "40");
 * ```
 */
export const MODEL_FLAGS = {
  "max-new-tokens": { type: "string" },
  temperature: { type: "string" },
  "top-k": { type: "string" },
  "top-p": { type: "string" },
  "min-p": { type: "string" },
  "repetition-penalty": { type: "string" },
  seed: { type: "string" },
  "gpu-memory": { type: "string" },
  "max-seq-len": { type: "string" },
  quantize: { type: "string" },
  tokenizer: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies FlagSpec;

/** The raw values of {@link MODEL_FLAGS} after parsing. */
export type ModelFlagValues = {
  [K in Exclude<keyof typeof MODEL_FLAGS, "help">]?: string;
};

/**
 * Checks `--quantize` ("none" or a packed encoding of lib/quant/encoding.ts;
 * default none) and returns it with the matching `AutoModel.fromPretrained`
 * compression.
 *
 * @throws {UsageError} for any other value.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quantizeFlag } from "./_args.ts";
 * assert.deepEqual(quantizeFlag(undefined), { quantize: "none", compression: null });
 * ```
 */
export function quantizeFlag(v: string | undefined): {
  quantize: Quantization;
  compression: "4bit" | "8bit" | null;
} {
  const quantize = parseQuantization(v, "--quantize");
  return {
    quantize,
    compression: quantize === "none" ? null : encoding(quantize).compression,
  };
}

/** The numbers {@link samplingFlags} parses (undefined = not given, unless defaulted). */
export interface SamplingFlags {
  /** `--max-new-tokens` (defaulted). */
  maxNewTokens: number;
  /** `--temperature` (defaulted when a default is given). */
  temperature: number | undefined;
  /** `--top-k`. */
  topK: number | undefined;
  /** `--top-p`. */
  topP: number | undefined;
  /** `--min-p`. */
  minP: number | undefined;
  /** `--repetition-penalty`. */
  repetitionPenalty: number | undefined;
  /** `--seed`. */
  seed: number | undefined;
  /** `--max-seq-len`. */
  maxSeqLen: number | undefined;
}

/**
 * Parses the numeric flags of {@link MODEL_FLAGS}, in this order:
 * `--max-new-tokens` (an integer ≥ `rule.minNewTokens`, default
 * `rule.maxNewTokens`), `--temperature` (≥ 0, default `rule.temperature`),
 * `--top-k`, `--top-p`, `--min-p`, `--repetition-penalty`, `--seed`
 * (integers / numbers ≥ 0) and `--max-seq-len` (an integer ≥ 1).
 *
 * @throws {UsageError} naming the first bad flag.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { samplingFlags } from "./_args.ts";
 * const s = samplingFlags({ "top-k": "40" }, { maxNewTokens: 128, minNewTokens: 0 });
 * assert.deepStrictEqual([s.topK, s.maxNewTokens, s.temperature], [40, 128, undefined]);
 * ```
 */
export function samplingFlags(
  v: ModelFlagValues,
  rule: { maxNewTokens: number; minNewTokens: number; temperature?: number },
): SamplingFlags {
  const real = { int: false, min: 0 }, count = { int: true, min: 0 };
  return {
    maxNewTokens: numberFlag("max-new-tokens", v["max-new-tokens"], {
      int: true,
      min: rule.minNewTokens,
    }) ?? rule.maxNewTokens,
    temperature: numberFlag("temperature", v.temperature, real) ??
      rule.temperature,
    topK: numberFlag("top-k", v["top-k"], count),
    topP: numberFlag("top-p", v["top-p"], real),
    minP: numberFlag("min-p", v["min-p"], real),
    repetitionPenalty: numberFlag(
      "repetition-penalty",
      v["repetition-penalty"],
      real,
    ),
    seed: numberFlag("seed", v.seed, count),
    maxSeqLen: numberFlag("max-seq-len", v["max-seq-len"], {
      int: true,
      min: 1,
    }),
  };
}

/**
 * Logs that `--tokenizer` is ignored unless the model is a llama2.c `.bin`.
 *
 * @example
 * ```ts
 * import { noteIgnoredTokenizer } from "./_args.ts";
 * noteIgnoredTokenizer("shards/tiny", "tok512.bin", console.error); // prints the note
 * ```
 */
export function noteIgnoredTokenizer(
  model: string,
  tokenizer: string | undefined,
  log: (s: string) => void,
): void {
  if (tokenizer !== undefined && !/\.bin$/i.test(model)) {
    log("note: --tokenizer is only for llama2.c .bin checkpoints; ignored");
  }
}

/** The `--help` flag every command takes. */
export const HELP_FLAG = { help: { type: "boolean", short: "h" } } as const;

/** What {@link parseHelpedCommand} parses. */
export interface HelpedCommandSpec<O extends FlagSpec> extends CommandSpec<O> {
  /** The text `--help` prints. */
  help: string;
}

/**
 * Parses a subcommand's arguments with {@link HELP_FLAG} added to its flags
 * (see {@link parseCommand}); prints `spec.help` and returns null for
 * `--help`, else what parseCommand returns.
 *
 * @throws {UsageError} on a bad flag.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseHelpedCommand } from "./_args.ts";
 * const spec = {
 *   command: "demo",
 *   options: { keep: { type: "string" } },
 *   help: "Usage: demo",
 * } as const;
 * const parsed = parseHelpedCommand({ ...spec, args: ["--keep", "x"] });
 * assert.equal(parsed?.values.keep, "x");
 * assert.equal(parseHelpedCommand({ ...spec, args: ["-h"] }), null);
 * ```
 */
export function parseHelpedCommand<O extends FlagSpec>(
  spec: HelpedCommandSpec<O>,
) {
  const parsed = parseCommand<O & typeof HELP_FLAG>({
    ...spec,
    options: { ...spec.options, ...HELP_FLAG },
  });
  // The generic O hides the help flag from the type here.
  if ((parsed.values as { help?: boolean }).help) {
    console.log(spec.help);
    return null;
  }
  return parsed;
}

/** What {@link parseOneArgCommand} parses. */
export interface OneArgCommandSpec<O extends FlagSpec>
  extends HelpedCommandSpec<O> {
  /** What the one positional argument is, for the error message. */
  what: string;
}

/**
 * Parses the arguments of a command that takes exactly one positional
 * argument (see {@link parseHelpedCommand}): null for `--help`, else the
 * flag values and the argument.
 *
 * @throws {UsageError} on a bad flag, or unless exactly one positional
 * argument is given.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseOneArgCommand } from "./_args.ts";
 * const options = { json: { type: "boolean" } } as const;
 * const cmd = parseOneArgCommand({
 *   command: "info",
 *   args: ["dir", "--json"],
 *   options,
 *   help: "Usage: info <model>",
 *   what: "model path",
 * });
 * assert.deepStrictEqual([cmd?.arg, cmd?.values.json], ["dir", true]);
 * assert.throws(
 *   () =>
 *     parseOneArgCommand({
 *       command: "info",
 *       args: [],
 *       options,
 *       help: "",
 *       what: "model path",
 *     }),
 *   /info: expected one model path \(got 0\)/,
 * );
 * ```
 */
export function parseOneArgCommand<O extends FlagSpec>(
  spec: OneArgCommandSpec<O>,
) {
  const parsed = parseHelpedCommand(spec);
  if (parsed === null) return null;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) {
    throw new UsageError(
      `${spec.command}: expected one ${spec.what} (got ${positionals.length}); see '${spec.command} --help'`,
    );
  }
  return { values, arg: positionals[0] };
}
