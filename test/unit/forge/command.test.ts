import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseCommand } from '../../../src/forge/command.ts';

const IMG = 'https://registry.hub.docker.com/library/ubuntu:22.04';
const IMG2 = 'ghcr.io/org/tool@sha256:' + 'a'.repeat(64);

describe('parseCommand: not a command → undefined', () => {
  const cases: [string, string][] = [
    ['empty', ''],
    ['only whitespace', '  \n\t '],
    ['ordinary text', 'LGTM, thanks!'],
    ['mentioned mid-sentence', 'please /reconvert ubuntu'],
    ['other slash command', '/approve'],
    ['longer word', '/reconverted ' + IMG],
    ['prefix of the word', '/reconver ' + IMG],
    ['second line after the command', `/reconvert ${IMG}\nthanks`],
    ['command on the second line', `Could you run\n/reconvert ${IMG}`],
    ['Windows line break', `/reconvert ${IMG}\r\nx`],
    ['quoted in a reply', `> /reconvert ${IMG}`],
    ['inside a fenced code block', `\`\`\`\n/reconvert ${IMG}\n\`\`\``],
    ['Unicode line separator', `/reconvert ${IMG}\u2028x`],
  ];
  for (const [name, body] of cases) {
    it(name, () => assert.equal(parseCommand(body), undefined));
  }
});

describe('parseCommand: reconvert', () => {
  const cases: [string, string, string[]][] = [
    ['bare command', '/reconvert', []],
    ['one image', `/reconvert ${IMG}`, [IMG]],
    ['surrounding whitespace and blank lines', `\n\n  /reconvert   ${IMG}  \n\n`, [IMG]],
    ['tabs between words', `/reconvert\t${IMG}\t${IMG2}`, [IMG, IMG2]],
    ['upper-case command', `/RECONVERT ${IMG}`, [IMG]],
    ['inside backticks', `\`/reconvert ${IMG}\``, [IMG]],
    ['single quotes', `/reconvert '${IMG}'`, [IMG]],
    ['double quotes', `/reconvert "${IMG2}"`, [IMG2]],
    ['duplicates collapsed', `/reconvert ${IMG} ${IMG}`, [IMG]],
    ['wildcard tag', '/reconvert https://ghcr.io/org/img:*', ['https://ghcr.io/org/img:*']],
    [
      'registry with port and IPv6 host',
      '/reconvert registry.example.org:5005/a/b:1 [::1]:5000/x/y:2',
      ['registry.example.org:5005/a/b:1', '[::1]:5000/x/y:2'],
    ],
    ['exactly 50 images', `/reconvert ${Array.from({ length: 50 }, (_, i) => `r.io/i${i}:1`).join(' ')}`, Array.from({ length: 50 }, (_, i) => `r.io/i${i}:1`)],
  ];
  for (const [name, body, images] of cases) {
    it(name, () => assert.deepEqual(parseCommand(body), { kind: 'reconvert', images }));
  }
});

describe('parseCommand: invalid, with a message for the reply', () => {
  const cases: [string, string, RegExp][] = [
    ['unterminated single quote', `/reconvert '${IMG}`, /Unterminated single quote/],
    ['unterminated double quote', `/reconvert "${IMG}`, /Unterminated double quote/],
    ['trailing backslash', `/reconvert ${IMG} \\`, /Trailing backslash/],
    ['51 images', `/reconvert ${Array.from({ length: 51 }, (_, i) => `r.io/i${i}:1`).join(' ')}`, /Too many images: 51 given, at most 50/],
    ['too long', `/reconvert r.io/${'a'.repeat(520)}:1`, /longer than 512 characters/],
    ['quoted whitespace', `/reconvert "r.io/a b:1"`, /contains whitespace or control characters/],
    ['control character', `/reconvert r.io/a\u0007b:1`, /contains whitespace or control characters/],
    ['zero-width space', `/reconvert r.io/a\u200bb:1`, /contains whitespace or control characters/],
    ['option', `/reconvert --all`, /Options such as `--all` are not supported/],
    ['command substitution stays text', '/reconvert "$(reboot)"', /is not an image reference/],
    ['backticks stay text', '/reconvert "r.io/`id`:1"', /`r\.io\/\?id\?:1` is not an image reference/],
    ['semicolon', `/reconvert r.io/a:1;reboot`, /is not an image reference/],
    ['empty quoted word', `/reconvert ''`, /empty image name/],
  ];
  for (const [name, body, message] of cases) {
    it(name, () => {
      const result = parseCommand(body);
      assert.equal(result?.kind, 'invalid', JSON.stringify(result));
      assert.match((result as { message: string }).message, message);
    });
  }

  it('a long invalid word is shortened in the message', () => {
    const result = parseCommand(`/reconvert ${'!'.repeat(300)}`);
    assert.equal(result?.kind, 'invalid');
    assert.ok((result as { message: string }).message.length < 300);
  });
});

describe('parseCommand never throws', () => {
  it('on odd input', () => {
    for (const body of [
      '/reconvert \\',
      '/reconvert "\\',
      "/reconvert '",
      '/reconvert \0',
      `/reconvert ${'"'.repeat(10_001)}`,
      '/reconvert \ud800',
      undefined as unknown as string,
      42 as unknown as string,
    ]) {
      assert.doesNotThrow(() => parseCommand(body));
    }
  });

  it('on a huge single-line comment, quickly', () => {
    const started = Date.now();
    const result = parseCommand(`/reconvert ${'r.io/a:1 '.repeat(100_000)}`);
    assert.equal(result?.kind, 'invalid');
    assert.ok(Date.now() - started < 2_000);
  });
});
