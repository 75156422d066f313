/**
 * Error classes that users of Strata may catch. Every error that reaches the
 * CLI as one of these is printed as a single line and exits non-zero.
 *
 * @module
 */

/**
 * Base class of every error Strata raises on purpose.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StrataError } from "./errors.ts";
 * try {
 *   throw new StrataError("something went wrong");
 * } catch (e) {
 *   assert.deepStrictEqual(e instanceof StrataError, true);
 * }
 * ```
 */
export class StrataError extends Error {
  /**
   * Creates the error with a one-line message: line breaks (from a quoted
   * excerpt of a bad file, a library's message) become spaces.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message.replace(/\s*[\r\n]+\s*/g, " "), options);
    this.name = "StrataError";
  }
}

/**
 * A file is malformed: the message is `<file>: <problem>`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FormatError } from "./errors.ts";
 * const e = new FormatError("model.safetensors", "header length 2^60 exceeds the file size");
 * assert.deepStrictEqual(e.message, "model.safetensors: header length 2^60 exceeds the file size");
 * ```
 */
export class FormatError extends StrataError {
  /** The file that is malformed. */
  readonly file: string;
  /** What is wrong with it. */
  readonly problem: string;
  /** Creates the error for `file` with `problem`. */
  constructor(file: string, problem: string, options?: ErrorOptions) {
    super(`${file}: ${problem}`, options);
    this.name = "FormatError";
    this.file = file;
    this.problem = problem;
  }
}

/**
 * A well-formed input that Strata does not support (an architecture, a tensor
 * type, a tokenizer model).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UnsupportedError } from "./errors.ts";
 * const e = new UnsupportedError("m.gguf", "unsupported architecture falcon");
 * assert.deepStrictEqual(e.message, "m.gguf: unsupported architecture falcon");
 * ```
 */
export class UnsupportedError extends StrataError {
  /** The file or input concerned. */
  readonly file: string;
  /** Creates the error for `file` with `problem`. */
  constructor(file: string, problem: string, options?: ErrorOptions) {
    super(`${file}: ${problem}`, options);
    this.name = "UnsupportedError";
    this.file = file;
  }
}

/**
 * No WebGPU adapter is available, or the device was lost.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GpuError } from "./errors.ts";
 * assert.deepStrictEqual(new GpuError("no WebGPU adapter").name, "GpuError");
 * ```
 */
export class GpuError extends StrataError {
  /** Creates the error with a one-line message saying what to do. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "GpuError";
  }
}

/**
 * The GPU memory budget cannot hold what must be resident.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BudgetError } from "./errors.ts";
 * assert.deepStrictEqual(new BudgetError("budget 1 MB < 3 MB needed").name, "BudgetError");
 * ```
 */
export class BudgetError extends StrataError {
  /** Creates the error with a one-line message saying what to do. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BudgetError";
  }
}

/**
 * Bad command-line usage or bad options passed to the API.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UsageError } from "./errors.ts";
 * assert.deepStrictEqual(new UsageError("--max-new-tokens must be a positive integer").name, "UsageError");
 * ```
 */
export class UsageError extends StrataError {
  /** Creates the error with a one-line message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UsageError";
  }
}
