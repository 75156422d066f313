/**
 * Flag helpers shared by the subcommands.
 *
 * @module
 */
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
 * import { numberFlag } from "./_args.ts";
 * console.log(numberFlag("top-k", "40", { int: true, min: 0 })); // 40
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
 * import { parseCommand } from "./_args.ts";
 * const { values, positionals } = parseCommand({
 *   command: "info",
 *   args: ["dir", "--json"],
 *   options: { json: { type: "boolean" } },
 * });
 * console.log(values.json, positionals); // true [ "dir" ]
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
      args: spec.args,
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
    const first = (e as Error).message.replace(
      /^(Unknown option '[^']*')\. To specify .*$/s,
      "$1",
    );
    throw new UsageError(
      `${spec.command}: ${first}; see '${spec.command} --help'`,
    );
  }
}
