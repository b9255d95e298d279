/**
 * The bot's single report comment on a merge/pull request holds up to three sections, each written by
 * one kind of job and kept when another writes its own: the plan (the merge request checked), the
 * publish result (after the merge) and the last `/reconvert`. Each section starts with a hidden marker.
 */
import { REPORT_MARKER } from './forge.ts';

export type ReportSection = 'plan' | 'publish' | 'reconvert';

/** In the order they are shown. */
const ORDER: readonly ReportSection[] = ['plan', 'publish', 'reconvert'];
const SECTION_MARKER = /<!-- ducc-gitops:section:([a-z]+) -->\n?/g;

function marker(section: ReportSection): string {
  return `<!-- ducc-gitops:section:${section} -->`;
}

/**
 * The report's new body (without REPORT_MARKER): `existing` (the comment as it is, or undefined) with
 * `section` set to `body`. A report written before sections existed counts as the plan.
 */
export function mergeReportSection(existing: string | undefined, section: ReportSection, body: string): string {
  const sections = new Map<ReportSection, string>();
  if (existing !== undefined) {
    const text = existing.replace(REPORT_MARKER, '').replace(/^\n/, '');
    const parts = text.split(SECTION_MARKER);
    const legacy = parts[0]!.replace(/\n+---\n+$/, '').trim();
    if (legacy !== '') sections.set('plan', legacy);
    for (let i = 1; i + 1 < parts.length; i += 2) {
      const name = parts[i] as ReportSection;
      if (ORDER.includes(name)) sections.set(name, parts[i + 1]!.replace(/\n+---\n+$/, '').trim());
    }
  }
  sections.set(section, body.trim());
  return ORDER.filter((name) => sections.has(name))
    .map((name) => `${marker(name)}\n${sections.get(name)}`)
    .join('\n\n---\n\n');
}
