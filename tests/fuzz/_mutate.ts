/**
 * Seeded mutators for the fuzz suite: bytes, JSON values and template text.
 * Every case draws from its own generator (`caseRng(seed, i)`), so case `i`
 * of a run can be replayed alone.
 *
 * @module
 */

/** A uniform generator on [0, 1). */
export type Rng = () => number;

/** mulberry32: small, fast, good enough to pick mutations. */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The generator of case `i` of a run seeded with `seed`. */
export function caseRng(seed: number, i: number): Rng {
  return rng(
    Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(i + 1, 0xc2b2ae35),
  );
}

/** An integer in [0, n). */
export function int(r: Rng, n: number): number {
  return Math.floor(r() * n);
}

/** One element of `xs`. */
export function pick<T>(r: Rng, xs: readonly T[]): T {
  return xs[int(r, xs.length)];
}

const INTERESTING_INTS = [
  0,
  1,
  -1,
  2,
  7,
  255,
  0x7fff,
  0xffff,
  0x7fffffff,
  -0x80000000,
  0xffffffff,
  2 ** 31,
  2 ** 32 + 5,
  2 ** 53 - 1,
  2 ** 62,
  1e9,
];

/**
 * Mutates a copy of `src`: 1-4 operations among bit flips, byte sets,
 * 4/8-byte overwrites with boundary values, truncation, extension, slice
 * duplication and deletion. Offsets fall within the first `hot` bytes (the
 * header) two times out of three.
 */
export function mutateBytes(src: Uint8Array, r: Rng, hot = 512): Uint8Array {
  let b = src.slice();
  const ops = 1 + int(r, 4);
  for (let k = 0; k < ops; k++) {
    const at = (n: number) =>
      b.length === 0
        ? 0
        : r() < 0.67
        ? int(r, Math.min(hot, b.length))
        : int(r, Math.max(1, b.length - n));
    switch (int(r, 8)) {
      case 0: {
        if (b.length) b[at(1)] ^= 1 << int(r, 8);
        break;
      }
      case 1: {
        if (b.length) b[at(1)] = int(r, 256);
        break;
      }
      case 2:
      case 3: {
        const wide = r() < 0.5;
        const o = at(wide ? 8 : 4);
        if (o + (wide ? 8 : 4) > b.length) break;
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        const v = pick(r, INTERESTING_INTS);
        if (wide) dv.setBigInt64(o, BigInt(Math.trunc(v)), true);
        else dv.setInt32(o, v | 0, true);
        break;
      }
      case 4: {
        b = b.slice(0, int(r, b.length + 1));
        break;
      }
      case 5: {
        const extra = new Uint8Array(1 + int(r, 64));
        for (let i = 0; i < extra.length; i++) extra[i] = int(r, 256);
        const out = new Uint8Array(b.length + extra.length);
        out.set(b);
        out.set(extra, b.length);
        b = out;
        break;
      }
      case 6: {
        if (b.length < 2) break;
        const s = at(16), n = 1 + int(r, Math.min(64, b.length - s));
        const out = new Uint8Array(b.length + n);
        out.set(b.subarray(0, s + n));
        out.set(b.subarray(s, s + n), s + n);
        out.set(b.subarray(s + n), s + 2 * n);
        b = out;
        break;
      }
      case 7: {
        if (b.length < 2) break;
        const s = at(16), n = 1 + int(r, Math.min(64, b.length - s));
        b = new Uint8Array([...b.subarray(0, s), ...b.subarray(s + n)]);
        break;
      }
    }
  }
  return b;
}

const INTERESTING_VALUES: unknown[] = [
  -1,
  0,
  1,
  1.5,
  -5,
  2 ** 31,
  2 ** 53,
  1e9,
  1e300,
  null,
  "",
  "x",
  "A",
  "h i",
  true,
  false,
  [],
  {},
  [1, 2, 3],
  { type: "Sequence" },
  "a".repeat(1000),
];

type Path = (string | number)[];

/** Up to `limit` paths of `v`'s nodes, in a seeded walk. */
function paths(v: unknown, r: Rng, limit = 4000): Path[] {
  const out: Path[] = [];
  const walk = (x: unknown, p: Path) => {
    if (out.length >= limit) return;
    out.push(p);
    if (Array.isArray(x)) {
      // Long lists: a sample of their elements.
      const n = x.length;
      const take = n <= 64 ? n : 64;
      for (let k = 0; k < take; k++) {
        walk(x[n <= 64 ? k : int(r, n)], [...p, n <= 64 ? k : int(r, n)]);
      }
    } else if (x !== null && typeof x === "object") {
      const keys = Object.keys(x);
      const take = keys.length <= 64
        ? keys
        : keys.filter(() => r() < 64 / keys.length);
      for (const k of take) walk((x as Record<string, unknown>)[k], [...p, k]);
    }
  };
  walk(v, []);
  return out;
}

function getAt(v: unknown, p: Path): unknown {
  let x = v;
  for (const k of p) x = (x as Record<string | number, unknown>)?.[k];
  return x;
}

/**
 * Mutates a deep copy of the JSON value `src`: 1-3 operations among
 * replacing a node with a boundary value, nudging a number, deleting a key
 * or element, duplicating an element and changing a node's type.
 */
export function mutateJson<T>(src: T, r: Rng): T {
  const v = structuredClone(src);
  const ops = 1 + int(r, 3);
  for (let k = 0; k < ops; k++) {
    const ps = paths(v, r).filter((p) => p.length > 0);
    if (ps.length === 0) break;
    const p = pick(r, ps);
    const parent = getAt(v, p.slice(0, -1)) as Record<string | number, unknown>;
    const key = p[p.length - 1];
    if (parent === null || typeof parent !== "object") continue;
    const cur = parent[key];
    switch (int(r, 6)) {
      case 0:
      case 1:
        parent[key] = structuredClone(pick(r, INTERESTING_VALUES));
        break;
      case 2:
        if (typeof cur === "number") {
          parent[key] = pick(r, [
            cur + 1,
            cur - 1,
            cur * 1e6,
            -cur,
            cur + 0.5,
            2 ** 31 + cur,
          ]);
        } else parent[key] = structuredClone(pick(r, INTERESTING_VALUES));
        break;
      case 3:
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else delete parent[key];
        break;
      case 4:
        if (Array.isArray(parent)) {
          parent.splice(key as number, 0, structuredClone(cur));
        } else if (Array.isArray(cur) && cur.length) {
          cur.push(structuredClone(cur[int(r, cur.length)]));
        } else parent[key] = [cur];
        break;
      case 5:
        parent[key] = typeof cur === "string"
          ? Number(cur.length)
          : typeof cur === "number"
          ? String(cur)
          : cur === null
          ? {}
          : null;
        break;
    }
  }
  return v;
}

const TEMPLATE_SNIPPETS = [
  "{% for x in range(10**9) %}{{ x }}{% endfor %}",
  "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
  "{% set s = 'ab' %}{% for i in range(64) %}{% set s = s ~ s %}{% endfor %}{{ s }}",
  "{% set ns = namespace(a=[1]) %}{% for i in range(64) %}{% set ns.a = ns.a + ns.a %}{% endfor %}",
  "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
  "{{ raise_exception('no') }}",
  "{{ messages[0]['content'] | upper }}",
  "{{ range(-5, 5, 0) }}",
  "{{ range(1.5) }}",
  "{{ 10 ** 400 }}",
  "{{ 'x' | indent(100000) }}",
  "{{ messages | tojson(indent=1000) }}",
  "{% if %}",
  "{% endfor %}",
  "{{",
  "}}",
  "{#",
  "{%- for m in messages -%}{{ m.role }}{%- endfor -%}",
  "{{ strftime_now('%Y-%m-%d') }}",
  "{{ messages[10**9] }}",
  "{{ undefined_thing.x.y }}",
  "{% set x = {'a': 1} %}{{ x.items() | list }}",
];

/** Mutates template text: snippets inserted, ranges deleted or doubled, characters replaced. */
export function mutateTemplate(src: string, r: Rng): string {
  let t = src;
  const ops = 1 + int(r, 3);
  for (let k = 0; k < ops; k++) {
    const at = int(r, t.length + 1);
    switch (int(r, 5)) {
      case 0:
      case 1:
        t = t.slice(0, at) + pick(r, TEMPLATE_SNIPPETS) + t.slice(at);
        break;
      case 2:
        t = t.slice(0, at) + t.slice(at + 1 + int(r, 20));
        break;
      case 3: {
        const n = 1 + int(r, 40);
        t = t.slice(0, at + n) + t.slice(at, at + n) + t.slice(at + n);
        break;
      }
      case 4:
        t = t.slice(0, at) +
          pick(r, ["{", "}", "%", "(", ")", "'", '"', "|", "-", "0"]) +
          t.slice(at + 1);
        break;
    }
  }
  return t;
}
