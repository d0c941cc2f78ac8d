// Shared machinery of the parser fuzz tests (test/fuzz/*.test.ts): how many cases and which seed,
// a runner that prints what is needed to replay a failure, and generators used by several parsers.
//
// Every property runs FUZZ_RUNS cases (default 10,000). The seed is new on every run, so CI keeps
// exploring; it is printed first, and a failure prints fast-check's counterexample and the command
// that replays exactly that case: FUZZ_SEED=<seed> FUZZ_PATH=<path> npx tap --grep=<property> <file>.

import { relative } from 'node:path';
import fc from 'fast-check';
import { prng, shuffle } from '../fixtures/dispatcher/stream.js';

const DEFAULT_RUNS = 10_000;

interface FuzzSettings {
  numRuns: number;
  seed: number;
  /** fast-check's replay path of a reported counterexample (only with FUZZ_SEED). */
  path: string | undefined;
}

function intFromEnv(name: string, fallback: () => number, valid: (n: number) => boolean): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback();
  const n = Number(text);
  if (!Number.isSafeInteger(n) || !valid(n)) throw new Error(`${name}=${JSON.stringify(text)}: expected an integer (${name === 'FUZZ_RUNS' ? '≥ 1' : 'a 32-bit seed'})`);
  return n;
}

let settings: FuzzSettings | undefined;

/** Read once per test file, so that all its properties run with the one seed it printed. */
export function fuzzSettings(): FuzzSettings {
  settings ??= {
    numRuns: intFromEnv('FUZZ_RUNS', () => DEFAULT_RUNS, (n) => n >= 1),
    seed: intFromEnv('FUZZ_SEED', () => (Date.now() ^ (process.pid << 16)) | 0, (n) => n >= -(2 ** 31) && n < 2 ** 32),
    path: process.env['FUZZ_PATH'] || undefined,
  };
  return settings;
}

interface TapTest {
  name: string;
  comment: (...message: unknown[]) => void;
}

/** `text` as one single-quoted shell word. */
const shellWord = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;

/**
 * Runs one property for the configured number of cases (or `runs` when given, for a property whose
 * single case already covers many inputs) and reports the seed and how long it took.
 */
export async function fuzz<Ts extends [unknown, ...unknown[]]>(
  t: TapTest,
  property: fc.IProperty<Ts> | fc.IAsyncProperty<Ts>,
  runs?: number,
): Promise<void> {
  const { numRuns, seed, path } = fuzzSettings();
  const n = runs ?? numRuns;
  const started = performance.now();
  t.comment(`fuzz: ${n} cases, FUZZ_SEED=${seed}`);
  try {
    await fc.assert(property as fc.IAsyncProperty<Ts>, { numRuns: n, seed, ...(path === undefined ? {} : { path }) });
  } catch (err) {
    const failedPath = /path: "([^"]*)"/.exec(String(err))?.[1];
    const file = relative(process.cwd(), process.argv[1] ?? 'test/fuzz/<file>.test.ts');
    // --grep runs only this property: the path means nothing to the others.
    const grep = `--grep=${shellWord(`^${t.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`)}`;
    t.comment(`fuzz: replay with FUZZ_SEED=${seed}${failedPath === undefined ? '' : ` FUZZ_PATH=${failedPath}`} npx tap ${grep} ${file}`);
    throw err;
  }
  t.comment(`fuzz: ${n} cases passed in ${Math.round(performance.now() - started)} ms`);
}

// ---- generators ---------------------------------------------------------------------------------

/** Fixture bytes changed in a few places: bytes flipped to any value, deleted, or inserted. */
export function mutatedBytes(base: Uint8Array): fc.Arbitrary<Uint8Array> {
  const edit = fc.record({
    kind: fc.constantFrom('flip', 'delete', 'insert'),
    at: fc.nat(),
    byte: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x00, 0x0a, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0xc3, 0xff)),
  });
  return fc.array(edit, { minLength: 1, maxLength: 4 }).map((edits) => {
    const bytes = [...base];
    for (const { kind, at, byte } of edits) {
      const i = bytes.length === 0 ? 0 : at % (bytes.length + (kind === 'insert' ? 1 : 0));
      if (kind === 'flip' && bytes.length > 0) bytes[i] = byte;
      else if (kind === 'delete') bytes.splice(i, 1);
      else bytes.splice(i, 0, byte);
    }
    return Uint8Array.from(bytes);
  });
}

/**
 * One character: mostly printable ASCII, else a control character, any other code point, or a lone
 * surrogate. (Not fast-check's `binary` unit: its first use maps all 1.1 million code points, which
 * costs seconds per test file.)
 */
export const anyChar: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)) },
  { weight: 2, arbitrary: fc.integer({ min: 0x7f, max: 0x10ffff }).map((c) => String.fromCodePoint(c)) },
  { weight: 1, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)) },
);

/** Arbitrary text: any characters (lone surrogates and NUL included), or JSON-ish punctuation. */
export const anyText: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: anyChar, maxLength: 300 }),
  fc.string({ unit: fc.constantFrom('{', '}', '[', ']', '"', '\\', ':', ',', ' ', '\n', '\0', '1', 'e', '-', 'u', 'a', 'é'), maxLength: 300 }),
);

/** Arbitrary JSON values, unicode strings included, nesting kept small so that one case stays cheap. */
export const anyJson: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 6, stringUnit: anyChar });

/**
 * A nesting depth: mostly small, now and then past where recursive code (JSON.stringify,
 * structuredClone) overflows the stack, about 5,000 levels on Node 20. Rarely, because a stack
 * overflow costs some 10 ms: a few dozen per 10,000 cases are enough to catch one.
 */
export const nestingDepth: fc.Arbitrary<number> = fc.oneof(
  { weight: 30, arbitrary: fc.integer({ min: 1, max: 100 }) },
  { weight: 1, arbitrary: fc.integer({ min: 5_000, max: 12_000 }) },
);

/** `depth` arrays inside each other around `inner`: `[[[…inner…]]]`. */
export const nested = (depth: number, inner = '0'): string => `${'['.repeat(depth)}${inner}${']'.repeat(depth)}`;

/** JSON numbers and values that trip naive validation: huge, tiny, negative zero, unsafe integers. */
export const oddNumbers: readonly number[] = [
  0, -0, -1, 1.5, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 1e21, 1e308, -1e308, 5e-324, 999_999, 1_000_000, 9007199254, 9007199255, 1795597947,
];

// ---- JSON text in many spellings ----------------------------------------------------------------

export interface JsonSpelling {
  /** `compact`: luxid's `{"a":1}`; `spaced`: Python's `{"a": 1}`; `random`: any whitespace between tokens. */
  style: 'compact' | 'spaced' | 'random';
  /** Whitespace allowed between tokens in the `random` style (the progress stream forbids newlines). */
  whitespace: readonly string[];
  /** Shuffle object keys. */
  reorderKeys: boolean;
  /** Write some characters as `\uXXXX` or `\/`, and some numbers in exponent form. */
  respell: boolean;
}

const JSON_WHITESPACE = [' ', '\t', '\n', '\r'] as const;

/**
 * Serialises `value` (a JSON.parse result) as other valid JSON text that parses to the same value: the
 * formatting Ganeti's two writers use, or random whitespace, reordered keys, escapes and exponents.
 * `seed` drives every choice, so a fast-check counterexample replays exactly.
 */
export function spellJson(value: unknown, spelling: JsonSpelling, seed: number): string {
  const random = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const gap = (): string => {
    if (spelling.style !== 'random') return '';
    let s = '';
    while (random() < 0.3) s += pick(spelling.whitespace);
    return s;
  };
  const after = (sep: ',' | ':'): string => (spelling.style === 'spaced' ? `${sep} ` : `${gap()}${sep}${gap()}`);
  const str = (s: string): string => {
    if (!spelling.respell || random() < 0.5) return JSON.stringify(s);
    let out = '"';
    for (const ch of JSON.stringify(s).slice(1, -1).split(/(\\u[0-9a-fA-F]{4}|\\.)/)) {
      if (ch.startsWith('\\')) out += ch;
      else for (const c of ch) out += random() < 0.2 ? escapeUnits(c, random() < 0.5) : c === '/' && random() < 0.5 ? '\\/' : c;
    }
    return `${out}"`;
  };
  const num = (n: number): string => {
    if (!spelling.respell || random() < 0.7 || Object.is(n, -0)) return JSON.stringify(n);
    const e = n.toExponential(); // as many digits as needed to read back the same double
    return random() < 0.5 ? e.replace('e+', 'e') : e.toUpperCase();
  };
  const write = (v: unknown): string => {
    if (v === null || typeof v === 'boolean') return JSON.stringify(v);
    if (typeof v === 'number') return num(v);
    if (typeof v === 'string') return str(v);
    if (Array.isArray(v)) {
      if (v.length === 0) return `[${gap()}]`;
      return `[${gap()}${v.map(write).join(after(','))}${gap()}]`;
    }
    const keys = Object.keys(v as object);
    const ordered = spelling.reorderKeys ? shuffle(keys, random) : keys;
    if (ordered.length === 0) return `{${gap()}}`;
    const members = ordered.map((k) => `${str(k)}${after(':')}${write((v as Record<string, unknown>)[k])}`);
    return `{${gap()}${members.join(after(','))}${gap()}}`;
  };
  return `${gap()}${write(value)}${gap()}${spelling.style === 'spaced' ? '\n' : ''}`;
}

/** `c` as `\uXXXX` escapes, one per UTF-16 unit (a pair for astral characters), in either case. */
function escapeUnits(c: string, upper: boolean): string {
  let out = '';
  for (let i = 0; i < c.length; i++) {
    const hex = c.charCodeAt(i).toString(16).padStart(4, '0');
    out += `\\u${upper ? hex.toUpperCase() : hex}`;
  }
  return out;
}

export function jsonSpelling(whitespace: readonly string[] = JSON_WHITESPACE): fc.Arbitrary<JsonSpelling> {
  return fc.record({
    style: fc.constantFrom('compact', 'spaced', 'random') as fc.Arbitrary<JsonSpelling['style']>,
    whitespace: fc.constant(whitespace),
    reorderKeys: fc.boolean(),
    respell: fc.boolean(),
  });
}

// ---- paths into JSON documents ------------------------------------------------------------------

export type JsonPath = (string | number)[];

/** Every path to a value inside `doc` (the root excluded), in document order. */
export function jsonPaths(doc: unknown, prefix: JsonPath = []): JsonPath[] {
  if (typeof doc !== 'object' || doc === null) return [];
  const entries: [string | number, unknown][] = Array.isArray(doc) ? doc.map((v, i) => [i, v]) : Object.entries(doc);
  return entries.flatMap(([k, v]) => [[...prefix, k], ...jsonPaths(v, [...prefix, k])]);
}

export type Mutation = { kind: 'replace'; value: unknown } | { kind: 'delete' } | { kind: 'insert'; key: string; value: unknown };

/** A copy of `doc` with one change at `path` (insert adds a member next to it, or an array element before it). */
export function mutateAt(doc: unknown, path: JsonPath, mutation: Mutation): unknown {
  const copy = structuredClone(doc);
  let parent = copy as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const last = path[path.length - 1] as string | number;
  if (Array.isArray(parent)) {
    const i = last as number;
    if (mutation.kind === 'replace') parent[i] = mutation.value;
    else if (mutation.kind === 'delete') parent.splice(i, 1);
    else parent.splice(i, 0, mutation.value);
  } else if (mutation.kind === 'replace') parent[last] = mutation.value;
  else if (mutation.kind === 'delete') delete parent[last];
  else Object.defineProperty(parent, mutation.key, { value: mutation.value, enumerable: true, configurable: true, writable: true });
  return copy;
}

/** A value of another JSON type than `v` (or an odd one of the same type), to swap a field's type. */
const otherJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, '', 'x', [], {}, [1, 2], { a: 1 }, '4', '-1', ' ', 'null'),
  fc.constantFrom(...oddNumbers),
  anyJson,
);

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: otherJson.map((value): Mutation => ({ kind: 'replace', value })) },
  { weight: 1, arbitrary: fc.constant<Mutation>({ kind: 'delete' }) },
  {
    weight: 1,
    arbitrary: fc
      .record({ key: fc.oneof(fc.constantFrom('__proto__', 'constructor', 'toString', 'x', ''), fc.string({ maxLength: 8 })), value: otherJson })
      .map(({ key, value }): Mutation => ({ kind: 'insert', key, value })),
  },
);
