/**
 * parseStrictJson: JSON.parse's result for I-JSON documents, an error naming the problem (and where) for
 * invalid UTF-8, a key twice in one object, and lone surrogate escapes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseStrictJson, StrictJsonError } from '../../../src/registry/strict-json.ts';

const utf8 = (text: string) => Buffer.from(text, 'utf8');
const refused = (message: RegExp) => (error: unknown) => error instanceof StrictJsonError && message.test(error.message);

test('valid documents parse as JSON.parse parses them', () => {
  const documents = [
    '{"schemaVersion":2,"layers":[{"digest":"a"},{"digest":"b"}],"annotations":{"k":"v"}}',
    '[{"a":1},{"a":2},{"a":{"a":{"a":[]}}}]',
    '{"a":"}{\\"a\\":1,","b":"\\\\","c":"\\"a\\":"}',
    ' { "x" : [ 1 , -2.5e3 , true , false , null , "" ] } ',
    '{"emoji":"😀 \\ud83d\\ude00","é":"\u00e9"}',
    '"just a string"',
    '{"":1,"__proto__":2,"constructor":3}',
  ];
  for (const text of documents) assert.deepEqual(parseStrictJson(utf8(text)), JSON.parse(text), text);
});

test('the same key twice in one object is refused, with where it is', () => {
  assert.throws(() => parseStrictJson(utf8('{"layers":[],"config":{},"layers":[1]}')), refused(/^duplicate key "layers" in the object at \$$/));
  assert.throws(
    () => parseStrictJson(utf8('{"layers":[{"digest":"a"},{"digest":"b","annotations":{"x":"1","x":"2"}}]}')),
    refused(/^duplicate key "x" in the object at \$\.layers\[1\]\.annotations$/),
  );
  assert.throws(() => parseStrictJson(utf8('{"a.b":{"k":1,"k":2}}')), refused(/in the object at \$\["a\.b"\]$/));
});

test('keys that are equal once their escapes are decoded are duplicates', () => {
  assert.throws(() => parseStrictJson(utf8('{"layers":[],"lay\\u0065rs":[1]}')), refused(/^duplicate key "layers"/));
  assert.throws(() => parseStrictJson(utf8('{"a\\/b":1,"a/b":2}')), refused(/^duplicate key "a\/b"/));
});

test('equal keys in different objects, and strings that look like keys, are fine', () => {
  assert.deepEqual(parseStrictJson(utf8('{"a":{"a":1},"b":{"a":2},"c":["a","a"],"d":"a"}')), { a: { a: 1 }, b: { a: 2 }, c: ['a', 'a'], d: 'a' });
});

test('bytes that are not UTF-8 are refused, wherever they are', () => {
  const cases: [string, Buffer][] = [
    ['a lone continuation byte in an annotation', Buffer.concat([utf8('{"annotations":{"k":"'), Buffer.from([0x80]), utf8('"}}')])],
    ['a truncated sequence in a key', Buffer.concat([utf8('{"'), Buffer.from([0xe2, 0x82]), utf8('":1}')])],
    ['an overlong encoding of "/"', Buffer.concat([utf8('{"k":"'), Buffer.from([0xc0, 0xaf]), utf8('"}')])],
    ['a surrogate encoded as UTF-8', Buffer.concat([utf8('{"k":"'), Buffer.from([0xed, 0xa0, 0x80]), utf8('"}')])],
    ['Latin-1 é', Buffer.from('{"k":"caf\u00e9"}', 'latin1')],
  ];
  for (const [name, bytes] of cases) {
    assert.doesNotThrow(() => JSON.parse(bytes.toString('utf8')), `JSON.parse would take ${name}`);
    assert.throws(() => parseStrictJson(bytes), refused(/^not valid UTF-8$/), name);
  }
});

test('a byte order mark is refused, as JSON.parse refuses it', () => {
  assert.throws(() => parseStrictJson(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf8('{}')])), refused(/^not valid JSON$/));
});

test('half of a surrogate pair, escaped, is refused in keys and values', () => {
  assert.throws(
    () => parseStrictJson(utf8('{"annotations":{"k":"x\\ud800y"}}')),
    refused(/^the string at \$\.annotations\.k escapes half of a surrogate pair \(\\ud800\)$/),
  );
  assert.throws(() => parseStrictJson(utf8('{"a":["ok","\\udc00"]}')), refused(/^the string at \$\.a\[1\] escapes half/));
  assert.throws(() => parseStrictJson(utf8('{"\\ud83d":1}')), refused(/^a key of the object at \$ escapes half/));
  assert.throws(() => parseStrictJson(utf8('{"a":"\\ude00\\ud83d"}')), refused(/escapes half of a surrogate pair/), 'a pair in the wrong order');
});

test('invalid JSON is refused', () => {
  for (const text of ['', '{', '{"a":1,}', "{'a':1}", '{"a":1}{"b":2}']) assert.throws(() => parseStrictJson(utf8(text)), refused(/^not valid JSON$/), text);
});

test('deep nesting does not overflow the stack', () => {
  const depth = 200_000;
  const text = `${'{"a":['.repeat(depth)}${']}'.repeat(depth)}`;
  assert.doesNotThrow(() => parseStrictJson(utf8(text)));
  const duplicated = `${'{"a":['.repeat(depth)}{"k":1,"k":2}${']}'.repeat(depth)}`;
  assert.throws(
    () => parseStrictJson(utf8(duplicated)),
    refused(/^duplicate key "k" in the object at \$…(\.a\[0\]){6}$/),
    'only the innermost steps of the path',
  );
});
