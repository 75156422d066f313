/**
 * Flag helpers shared by the subcommands.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/**
 * Parses the numeric flag `--<flag>`: `undefined` when absent, else a finite
 * number (an integer when `int`) that is at least `min`.
 *
 * @throws {UsageError} naming the flag and the bad value.
 * @example
 * ```ts
 * import { numberFlag } from "./_args.ts";
 * console.log(numberFlag("top-k", "40", true, 0)); // 40
 * ```
 */
export function numberFlag(
  flag: string,
  v: string | undefined,
  int: boolean,
  min: number,
): number | undefined {
  if (v === undefined) return undefined;
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
