import { it } from 'node:test';
import assert from 'node:assert/strict';
import { REPORT_MARKER } from '../../../src/forge/forge.ts';
import { mergeReportSection } from '../../../src/forge/report-sections.ts';

const stored = (body: string) => `${REPORT_MARKER}\n${body}`;
const visible = (text: string) => text.replace(/<!-- ducc-gitops:section:\w+ -->\n/g, '');

it('sets one report section without touching the others, in the order plan, publish, reconvert', () => {
  const planned = mergeReportSection(undefined, 'plan', '### plan v1');
  const reconverted = mergeReportSection(stored(planned), 'reconvert', '### reconvert');
  const published = mergeReportSection(stored(reconverted), 'publish', '### published');
  const replanned = mergeReportSection(stored(published), 'plan', '### plan v2');

  assert.equal(visible(reconverted), '### plan v1\n\n---\n\n### reconvert');
  assert.equal(visible(replanned), '### plan v2\n\n---\n\n### published\n\n---\n\n### reconvert');
});

it('takes a report written before sections for the plan', () => {
  const fromLegacy = mergeReportSection(stored('### an old plan\n\n---\n\n### of two files'), 'reconvert', '### reconvert');

  assert.equal(visible(fromLegacy), '### an old plan\n\n---\n\n### of two files\n\n---\n\n### reconvert');
});
