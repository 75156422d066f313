/**
 * The start shared by the commands that load one model (run, chat, serve):
 * their own flags parsed with {@link MODEL_FLAGS} and {@link TRACE_FLAG},
 * `--help` answered, and exactly one `<model>` required.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { type FlagSpec, MODEL_FLAGS, parseHelpedCommand } from "./_args.ts";
import { TRACE_FLAG } from "./_trace.ts";

/** What {@link parseModelCommand} parses. */
export interface ModelCommandSpec<O extends FlagSpec> {
  /** The subcommand's name, prefixed to error messages. */
  command: string;
  /** Its command-line arguments. */
  args: string[];
  /** Its own flags (the model and trace flags are added). */
  options: O;
  /** The text `--help` prints. */
  help: string;
}

/**
 * Parses a model command's arguments (see {@link parseHelpedCommand}); prints
 * `spec.help` and returns null for `--help`, else the flag values and the
 * model's name.
 *
 * @throws {UsageError} on a bad flag, or unless exactly one `<model>` is
 * given.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseModelCommand } from "./_model_command.ts";
 * const cmd = parseModelCommand({
 *   command: "run",
 *   args: ["m", "--seed", "1", "--json"],
 *   options: { json: { type: "boolean" } },
 *   help: "Usage: run <model>",
 * });
 * assert.equal(cmd?.modelName, "m");
 * assert.deepStrictEqual([cmd?.values.seed, cmd?.values.json], ["1", true]);
 * assert.throws(
 *   () => parseModelCommand({ command: "run", args: [], options: {}, help: "" }),
 *   /run: give exactly one <model>/,
 * );
 * ```
 */
export function parseModelCommand<O extends FlagSpec>(
  spec: ModelCommandSpec<O>,
) {
  const parsed = parseHelpedCommand<O & typeof TRACE_FLAG & typeof MODEL_FLAGS>(
    { ...spec, options: { ...spec.options, ...TRACE_FLAG, ...MODEL_FLAGS } },
  );
  if (parsed === null) return null;
  if (parsed.positionals.length !== 1) {
    throw new UsageError(
      `${spec.command}: give exactly one <model> (see ${spec.command} --help)`,
    );
  }
  return { values: parsed.values, modelName: parsed.positionals[0] };
}
