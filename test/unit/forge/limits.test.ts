import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ForgeError } from '../../../src/forge/forge-error.ts';
import { openBlockClosers, truncateMarkdown, truncateText } from '../../../src/forge/limits.ts';

describe('truncateText', () => {
  it('leaves short text alone and cuts long text to the limit with …', () => {
    assert.equal(truncateText('abc', 3), 'abc');
    assert.equal(truncateText('abcd', 3), 'ab…');
    assert.equal(truncateText('abcd', 0), '');
  });

  it('never leaves half of a surrogate pair', () => {
    const cut = truncateText('a😀😀', 3);
    assert.equal(cut, 'a…');
    assert.ok(cut.length <= 3);
  });
});

describe('openBlockClosers', () => {
  it('closes an open fence with the same marker and open <details> blocks', () => {
    assert.equal(openBlockClosers('text\n````diff\n+ a\n'), '````\n');
    assert.equal(openBlockClosers('~~~\ncode\n'), '~~~\n');
    assert.equal(openBlockClosers('<details><summary>x</summary>\n\n```\na\n```\n'), '</details>\n');
    assert.equal(openBlockClosers('<details>\n<details open>\n```\n'), '```\n</details>\n</details>\n');
  });

  it('ignores closed blocks, <details> inside code, and shorter fence lines inside a fence', () => {
    assert.equal(openBlockClosers('```\n<details>\n```\n'), '');
    assert.equal(openBlockClosers('<details>\n</details>\n```sh\nx\n```\n'), '');
    assert.equal(openBlockClosers('````\n```\nstill code\n'), '````\n');
    assert.equal(openBlockClosers('inline ``` code ``` here\n'), '');
  });
});

describe('truncateMarkdown', () => {
  it('returns text within the limit unchanged', () => {
    assert.equal(truncateMarkdown('short', 10), 'short');
  });

  it('keeps the head, cuts at a line break, closes blocks and adds the note, within the limit', () => {
    const text = `head\n<details>\n\n\`\`\`\n${'0123456789\n'.repeat(1000)}\`\`\`\n</details>\nTHE-END`;
    const cut = truncateMarkdown(text, 5_000);
    assert.ok(cut.length <= 5_000, String(cut.length));
    assert.ok(cut.startsWith('head\n<details>\n\n```\n0123456789\n'));
    assert.doesNotMatch(cut, /THE-END/);
    assert.match(cut, /0123456789\n```\n<\/details>\n\n…report truncated: the first \d+ of \d+ characters are shown\.\n$/);
  });

  it('fits tiny limits too', () => {
    const cut = truncateMarkdown('x'.repeat(100), 50);
    assert.ok(cut.length <= 50);
  });
});

describe('ForgeError', () => {
  it('classifies temporary failures', () => {
    assert.equal(new ForgeError('github', 'x', undefined).temporary, true);
    assert.equal(new ForgeError('github', 'x', 429).temporary, true);
    assert.equal(new ForgeError('gitlab', 'x', 503).temporary, true);
    assert.equal(new ForgeError('gitlab', 'x', 404).temporary, false);
    assert.equal(new ForgeError('gitlab', 'x', 404).code, 'BOT_ERR_FORGE');
  });
});
