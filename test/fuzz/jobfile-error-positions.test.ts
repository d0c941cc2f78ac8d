// Two places where parseJobFile names the wrong place or the wrong problem (src/eventd/jobfile.ts;
// both found by fuzzing, both fixed by a few lines there, see the fuzzing report):
//
// - A job file cut inside a multi-byte UTF-8 character is a truncated file like any other: it must
//   be reported as truncated at the cut, not as "not valid UTF-8 (binary data?)" with no position.
//   parseJobFile accepts UTF-8 job files, and a cut anywhere in an ASCII file is already reported as
//   truncated at the cut (test/fuzz/jobfile.test.ts); a cut inside a non-ASCII character must read
//   the same, with the position counted as for any other cut (in characters of the decoded text).
// - A complete document followed by junk is not truncated: the error is at the first junk
//   character. Trailing Unicode whitespace that JSON does not allow (NBSP, BOM, U+2028) was taken
//   for the end of the text by String.prototype.trimEnd, so such a file read "JSON ends too early
//   (truncated file?)" at a position past the culprit.

import t from 'tap';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { JobFileError, parseJobFile } from '../../src/eventd/jobfile.js';
import { anyText, fuzz } from './fuzz.js';

const NON_ASCII = ['é', 'καλημέρα', '🚀', '日本語', 'ü\u0301', '\u2028'];

/** A valid one-op job file whose log message and an op parameter hold non-ASCII text. */
const jobText = (words: string[]): string =>
  `${JSON.stringify({
    id: 9,
    ops: [
      {
        input: { OP_ID: 'OP_INSTANCE_STARTUP', instance_name: 'snf-1', comment: words.join(' ') },
        status: 'running',
        result: null,
        log: [[1, [1795597947, 1], 'message', ` - INFO: ${words.join('/')}`]],
        start_timestamp: [1795597947, 0],
        exec_timestamp: [1795597947, 1],
        end_timestamp: null,
      },
    ],
    received_timestamp: [1795597946, 0],
    start_timestamp: [1795597947, 0],
    end_timestamp: null,
  })}\n`;

t.test('a file cut inside a multi-byte character is reported as truncated at the cut', async (t) => {
  const arb = fc.record({ words: fc.array(fc.constantFrom(...NON_ASCII), { minLength: 1, maxLength: 4 }), cut: fc.nat() });
  await fuzz(
    t,
    fc.property(arb, ({ words, cut }) => {
      const bytes = Buffer.from(jobText(words));
      const end = bytes.lastIndexOf(0x7d);
      const prefix = bytes.subarray(0, 1 + (cut % end));
      // The characters the cut left whole (a trailing partial character is not one of them).
      const whole = new TextDecoder('utf-8').decode(prefix, { stream: true });
      let err: unknown;
      try {
        parseJobFile(prefix, 'queue/job-9');
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof JobFileError, `a JobFileError, got ${String(err)}`);
      assert.equal(err.where, `position ${whole.length}`, err.message);
      assert.match(err.reason, /truncated/);
    }),
  );
});

t.test('a complete job file followed by junk is reported at the first junk character, not as truncated', async (t) => {
  const junk = fc.oneof(fc.constantFrom('\u00a0', '\ufeff', '\u2028', '\u2029', '\u3000', '\u000b', '\u000c', '}', 'x', '{}'), anyText);
  const arb = fc.record({
    words: fc.array(fc.constantFrom(...NON_ASCII), { minLength: 1, maxLength: 2 }),
    gap: fc.string({ unit: fc.constantFrom(' ', '\t', '\n', '\r'), maxLength: 3 }),
    junk,
    bytes: fc.boolean(),
  });
  await fuzz(
    t,
    fc.property(arb, ({ words, gap, junk: tail, bytes }) => {
      const doc = jobText(words).trimEnd();
      const text = `${doc}${gap}${tail}`;
      const culprit = doc.length + gap.length + (/^[ \t\n\r]*/.exec(tail)?.[0].length ?? 0);
      if (culprit === text.length) return; // only JSON whitespace after the document: a valid file
      let err: unknown;
      try {
        parseJobFile(bytes ? Buffer.from(text) : text, 'queue/job-9');
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof JobFileError, `a JobFileError, got ${String(err)}`);
      assert.doesNotMatch(err.reason, /truncated/, err.message);
      // A NUL or a lone surrogate in the junk is found before parsing, at its own place; invalid
      // UTF-8 is named as such; anything else is an error at the first junk character.
      const position = Number(/^position (\d+)$/.exec(err.where)?.[1]);
      if (/NUL byte|lone surrogate/.test(err.reason)) assert.ok(position >= culprit, err.message);
      else if (!/UTF-8/.test(err.reason)) assert.equal(err.where, `position ${culprit}`, err.message);
    }),
  );
});
