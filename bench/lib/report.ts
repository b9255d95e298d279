/** The results as Markdown: printed to stdout and written to bench/results.md. */
import type { BenchImage, ImageKey } from './images.ts';
import type { MachineInfo } from './machine.ts';
import type { Measurement } from './measure.ts';
import type { ProfileSummary } from './profile.ts';
import type { ReconcileResult } from './reconcile.ts';
import type { GcPlanResult } from './gc.ts';
import { DUCC_TOOL_KEYS, LAYERS_ONLY_TOOL_KEYS, TOOL_KEYS, TOOL_TITLES, type ToolKey } from './tools.ts';
import { CONVERSION_MODES, type DuringConversionResult, type WebhookResult } from './webhooks.ts';
import { CVMFS_TOOL_KEYS, CVMFS_TOOL_TITLES, publishesOf, type CvmfsSection, type CvmfsToolResult } from './cvmfs.ts';
import { formatMiB, formatMs, formatRatio, formatSeconds, markdownTable, median, percentile } from './util.ts';

export interface ToolResult {
  runs: Measurement[];
  error?: string;
  /** The tool cannot handle the image at all (not a failure of the bench). */
  unsupported?: string;
}

export interface BenchResults {
  commandLine: string;
  quick: boolean;
  runs: number;
  machine: MachineInfo;
  images: BenchImage[];
  /** Commit, uncommitted changes under src/ and bin/, and a hash of the code at the start and the end of the run. */
  code: { head: string; changed: string[]; fingerprintAtStart: string; fingerprintAtEnd: string };
  /** 1-minute load average sampled during the whole run. */
  load?: { min: number; median: number; max: number; count: number };
  pushSeconds: Partial<Record<ImageKey, number>>;
  conversions: Partial<Record<ImageKey, Partial<Record<ToolKey, ToolResult>>>>;
  cvmfs?: CvmfsSection;
  reconcile?: ReconcileResult | { error: string };
  webhooks?: WebhookResult | { error: string };
  gc?: GcPlanResult | { error: string };
  duringConversions?: DuringConversionResult | { error: string };
  profiles?: (ProfileSummary | { error: string; image: string })[];
  totalSeconds: number;
}

/** The issue's targets. */
export const TARGETS = {
  fullVsSkopeoUmoci: 1.0,
  layersVsFloor: 1.3,
  rssMB: 200,
  noopReconcileSeconds: 1,
  gcPlanSeconds: 5,
  webhookP99Ms: 50,
  cvmfsVsDucc: 0.25,
  webhookP99DuringConversionMs: 50,
  freshnessVsConvert: 1.3,
  cvmfsPublishesPerImage: 2,
};

interface Target {
  name: string;
  measured: string;
  limit: string;
  pass: boolean | undefined;
  margin: string;
}

const MB = 1e6;
const rssMB = (kib: number) => (kib * 1024) / MB;

function medianSeconds(result: ToolResult | undefined): number | undefined {
  return result && result.runs.length > 0 ? median(result.runs.map((r) => r.seconds)) : undefined;
}

function peakRssKiB(result: ToolResult | undefined): number | undefined {
  return result && result.runs.length > 0 ? Math.max(...result.runs.map((r) => r.maxRssKiB)) : undefined;
}

function margin(measured: number, limit: number): string {
  const pct = (measured / limit - 1) * 100;
  return pct > 0 ? `${pct.toFixed(0)}% over` : `${(-pct).toFixed(0)}% under`;
}

function passFail(pass: boolean | undefined): string {
  return pass === undefined ? 'n/a' : pass ? 'PASS' : 'FAIL';
}

function isError<T extends object>(value: T | { error: string } | undefined): value is { error: string } {
  return value !== undefined && 'error' in value && typeof (value as { error: unknown }).error === 'string';
}

export function collectTargets(results: BenchResults): Target[] {
  const targets: Target[] = [];
  for (const image of results.images) {
    const tools = results.conversions[image.key] ?? {};
    const full = medianSeconds(tools.ducc);
    const alt = medianSeconds(tools['skopeo-umoci']);
    const floor = medianSeconds(tools['floor-verified']);
    if (full !== undefined && alt !== undefined) {
      const ratio = full / alt;
      targets.push({
        name: `${image.key}: full conversion vs skopeo+umoci`,
        measured: formatRatio(ratio),
        limit: `≤ ${formatRatio(TARGETS.fullVsSkopeoUmoci)}`,
        pass: ratio <= TARGETS.fullVsSkopeoUmoci,
        margin: margin(ratio, TARGETS.fullVsSkopeoUmoci),
      });
    } else if (full !== undefined) {
      targets.push({
        name: `${image.key}: full conversion vs skopeo+umoci`,
        measured: 'n/a',
        limit: `≤ ${formatRatio(TARGETS.fullVsSkopeoUmoci)}`,
        pass: undefined,
        margin: tools['skopeo-umoci']?.unsupported ?? (tools['skopeo-umoci']?.error ? 'skopeo+umoci failed' : ''),
      });
    }
    for (const tool of LAYERS_ONLY_TOOL_KEYS) {
      const layers = medianSeconds(tools[tool]);
      if (layers === undefined || floor === undefined) continue;
      const ratio = layers / floor;
      targets.push({
        name: `${image.key}: layers only${tool === 'ducc-layers-oci' ? ' from the OCI layout' : ''} vs the verified floor`,
        measured: formatRatio(ratio),
        limit: `≤ ${formatRatio(TARGETS.layersVsFloor)}`,
        pass: ratio <= TARGETS.layersVsFloor,
        margin: margin(ratio, TARGETS.layersVsFloor),
      });
    }
    for (const tool of DUCC_TOOL_KEYS) {
      const rss = peakRssKiB(tools[tool]);
      if (rss === undefined) continue;
      const mb = rssMB(rss);
      targets.push({
        name: `${image.key}: peak RSS of ${TOOL_TITLES[tool]}${tool === 'ducc-disk' ? '' : ' (tmpfs)'}`,
        measured: `${mb.toFixed(0)} MB`,
        limit: `≤ ${TARGETS.rssMB} MB`,
        pass: mb <= TARGETS.rssMB,
        margin: margin(mb, TARGETS.rssMB),
      });
    }
  }
  for (const [key, tools] of Object.entries(results.cvmfs?.images ?? {})) {
    const ours = cvmfsMedian(tools?.['ducc-cvmfs']);
    const theirs = cvmfsMedian(tools?.['cvmfs-ducc']);
    if (ours !== undefined) {
      const ratio = theirs === undefined ? undefined : ours / theirs;
      targets.push({
        name: `${key}: cvmfs publisher vs cvmfs_ducc (real stratum 0)`,
        measured: ratio === undefined ? 'n/a' : formatRatio(ratio),
        limit: `≤ ${formatRatio(TARGETS.cvmfsVsDucc)}`,
        pass: ratio === undefined ? undefined : ratio <= TARGETS.cvmfsVsDucc,
        margin:
          ratio === undefined ? (tools?.['cvmfs-ducc']?.unsupported ?? tools?.['cvmfs-ducc']?.error?.split('\n')[0] ?? '') : margin(ratio, TARGETS.cvmfsVsDucc),
      });
      const own = tools!['ducc-cvmfs']!.runs.map((run) => run.ownMaxRssKiB).filter((v) => v !== undefined);
      if (own.length > 0) {
        const mb = rssMB(Math.max(...own));
        targets.push({
          name: `${key}: peak RSS of the ducc process, cvmfs publisher (staging on disk)`,
          measured: `${mb.toFixed(0)} MB`,
          limit: `≤ ${TARGETS.rssMB} MB`,
          pass: mb <= TARGETS.rssMB,
          margin: margin(mb, TARGETS.rssMB),
        });
      }
      const publishes = Math.max(...tools!['ducc-cvmfs']!.runs.map((run) => publishesOf(run.calls)));
      targets.push({
        name: `${key}: publishes of the cvmfs publisher per image`,
        measured: String(publishes),
        limit: `≤ ${TARGETS.cvmfsPublishesPerImage}`,
        pass: publishes <= TARGETS.cvmfsPublishesPerImage,
        margin: publishes <= TARGETS.cvmfsPublishesPerImage ? 'met' : `${publishes - TARGETS.cvmfsPublishesPerImage} too many`,
      });
    }
  }
  if (results.reconcile && !isError(results.reconcile)) {
    const r = results.reconcile;
    const cli = median(r.cli.map((m) => m.seconds));
    const inProcess = median(r.inProcess.map((m) => m.seconds));
    targets.push({
      name: `no-op reconcile of ${r.wishes} wishes over ${r.repositories} repositories (ducc convert process)`,
      measured: `${formatSeconds(cli)} s`,
      limit: `≤ ${TARGETS.noopReconcileSeconds} s`,
      pass: cli <= TARGETS.noopReconcileSeconds,
      margin: margin(cli, TARGETS.noopReconcileSeconds),
    });
    targets.push({
      name: `no-op reconcile of ${r.wishes} wishes over ${r.repositories} repositories (in-process runConversion)`,
      measured: `${formatSeconds(inProcess)} s`,
      limit: `≤ ${TARGETS.noopReconcileSeconds} s`,
      pass: inProcess <= TARGETS.noopReconcileSeconds,
      margin: margin(inProcess, TARGETS.noopReconcileSeconds),
    });
  }
  if (results.gc && !isError(results.gc)) {
    const g = results.gc;
    for (const [what, seconds] of [
      ['ducc gc --dry-run process', median(g.cli.map((m) => m.seconds))],
      ['in-process plan', median(g.inProcess.map((m) => m.seconds))],
    ] as const) {
      targets.push({
        name: `gc plan of ${g.images} images, ${g.unreferencedFlats} unreferenced flat trees (${what})`,
        measured: `${formatSeconds(seconds)} s`,
        limit: `≤ ${TARGETS.gcPlanSeconds} s`,
        pass: seconds <= TARGETS.gcPlanSeconds,
        margin: margin(seconds, TARGETS.gcPlanSeconds),
      });
    }
  }
  if (results.webhooks && !isError(results.webhooks)) {
    const p99 = median(results.webhooks.bursts.map((b) => percentile(b.latenciesMs, 99)));
    targets.push({
      name: `webhook ack p99, ${results.webhooks.concurrency} concurrent deliveries`,
      measured: formatMs(p99),
      limit: `≤ ${TARGETS.webhookP99Ms} ms`,
      pass: p99 <= TARGETS.webhookP99Ms,
      margin: margin(p99, TARGETS.webhookP99Ms),
    });
  }
  if (results.duringConversions && !isError(results.duringConversions)) {
    const d = results.duringConversions;
    for (const [key, modes] of Object.entries(d.bursts)) {
      const bursts = modes?.['worker-thread'];
      if (!bursts || bursts.length === 0) continue;
      const p99 = median(bursts.map((b) => percentile(b.latenciesMs, 99)));
      targets.push({
        name: `webhook ack p99 during the conversion of ${key} (${d.concurrency} concurrent deliveries)`,
        measured: formatMs(p99),
        limit: `≤ ${TARGETS.webhookP99DuringConversionMs} ms`,
        pass: p99 <= TARGETS.webhookP99DuringConversionMs,
        margin: margin(p99, TARGETS.webhookP99DuringConversionMs),
      });
    }
    const fresh = d.freshness['worker-thread'];
    const convert = d.freshnessImage === undefined ? undefined : medianSeconds(results.conversions[d.freshnessImage as ImageKey]?.ducc);
    if (fresh && fresh.length > 0 && convert !== undefined) {
      const serve = median(fresh.map((f) => f.successSeconds));
      const ratio = serve / convert;
      targets.push({
        name: `freshness: push adding ${d.freshnessImage} to its success status (${formatSeconds(serve)} s) vs ducc convert of it alone (${formatSeconds(convert)} s)`,
        measured: formatRatio(ratio),
        limit: `≤ ${formatRatio(TARGETS.freshnessVsConvert)}`,
        pass: ratio <= TARGETS.freshnessVsConvert,
        margin: margin(ratio, TARGETS.freshnessVsConvert),
      });
    }
  }
  return targets;
}

function duringConversionsSection(results: BenchResults): string[] {
  const d = results.duringConversions;
  if (d === undefined) return ['Not run.', ''];
  if (isError(d)) return [`Failed: ${d.error}`, ''];
  const out: string[] = [];
  out.push(
    `Each run starts a fresh \`ducc serve\` (in the bench process, as the test harness runs it, logging as \`ducc serve\` does), with its state and its directory publisher's root in the bench's output directory, publishes a wish list of one small image, then pushes a commit that adds the image below. ${d.concurrency} signed deliveries are sent at once from a separate process, each on its own connection, shortly after the first layer appears in the publisher's staging (0.2 s for small-files, 1 s for bigfile). "worker-thread" is the default of \`ducc serve\` (conversions on a thread of their own, src/bot/conversion-thread.ts); "main-thread" runs them on the event loop's thread, as before. "During" counts the bursts whose last answer came before the image's success status. The conversion time runs from the push delivery to the success status.`,
    '',
  );
  const rows: string[][] = [];
  for (const [key, modes] of Object.entries(d.bursts)) {
    for (const mode of CONVERSION_MODES) {
      const bursts = modes?.[mode];
      if (!bursts || bursts.length === 0) continue;
      const p50s = bursts.map((b) => percentile(b.latenciesMs, 50));
      const p99s = bursts.map((b) => percentile(b.latenciesMs, 99));
      const maxes = bursts.map((b) => Math.max(...b.latenciesMs));
      rows.push([
        key,
        mode,
        formatMs(median(p50s)),
        formatMs(median(p99s)),
        p99s.map(formatMs).join(' / '),
        formatMs(median(maxes)),
        `${bursts.filter((b) => b.duringConversion).length} of ${bursts.length}`,
        `${formatSeconds(median(bursts.map((b) => b.conversionSeconds)))} s`,
        mode === 'worker-thread' ? `≤50 ms: ${passFail(median(p99s) <= TARGETS.webhookP99DuringConversionMs)}` : '',
      ]);
    }
  }
  out.push(
    markdownTable(
      ['Image being converted', 'Conversions on', 'ack p50', 'ack p99', 'p99 of each run', 'ack max', 'During', 'Push to success', 'Target'],
      rows,
      ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
    '',
  );
  if (d.freshnessImage !== undefined) {
    const convert = results.conversions[d.freshnessImage as ImageKey]?.ducc;
    const convertSeconds = medianSeconds(convert);
    const freshRows: string[][] = [];
    for (const mode of CONVERSION_MODES) {
      const runs = d.freshness[mode];
      if (!runs || runs.length === 0) continue;
      const serve = median(runs.map((f) => f.successSeconds));
      freshRows.push([
        `\`ducc serve\` (conversions on the ${mode}): push adding ${d.freshnessImage} to its success status`,
        `${formatSeconds(serve)} s`,
        runs.map((f) => formatSeconds(f.successSeconds)).join(' / '),
        convertSeconds === undefined ? '—' : formatRatio(serve / convertSeconds),
        mode === 'worker-thread' && convertSeconds !== undefined ? `≤1.3×: ${passFail(serve / convertSeconds <= TARGETS.freshnessVsConvert)}` : '',
      ]);
    }
    if (convert && convertSeconds !== undefined) {
      freshRows.push([
        `\`ducc convert\` of ${d.freshnessImage} alone (the conversion table's full conversion)`,
        `${formatSeconds(convertSeconds)} s`,
        convert.runs.map((r) => formatSeconds(r.seconds)).join(' / '),
        '1.00×',
        '',
      ]);
    }
    out.push('Freshness: the same fresh `ducc serve`, a push adding the image, no burst.', '');
    out.push(markdownTable(['Measurement', 'Median', 'Runs', '× ducc convert', 'Target'], freshRows, ['l', 'r', 'r', 'r', 'l']), '');
  }
  return out;
}

function conversionTable(results: BenchResults): string {
  const rows: string[][] = [];
  for (const image of results.images) {
    const tools = results.conversions[image.key] ?? {};
    const alt = medianSeconds(tools['skopeo-umoci']);
    const floor = medianSeconds(tools['floor-verified']);
    for (const tool of TOOL_KEYS) {
      const result = tools[tool];
      if (result === undefined) continue;
      const seconds = medianSeconds(result);
      const rss = peakRssKiB(result);
      const isDucc = (DUCC_TOOL_KEYS as readonly ToolKey[]).includes(tool);
      const targetNotes: string[] = [];
      if (seconds !== undefined && tool === 'ducc' && alt !== undefined) targetNotes.push(`≤1.0× s+u: ${passFail(seconds / alt <= TARGETS.fullVsSkopeoUmoci)}`);
      if (seconds !== undefined && (LAYERS_ONLY_TOOL_KEYS as readonly ToolKey[]).includes(tool) && floor !== undefined)
        targetNotes.push(`≤1.3× verified floor: ${passFail(seconds / floor <= TARGETS.layersVsFloor)}`);
      if (rss !== undefined && isDucc) targetNotes.push(`RSS ≤200 MB: ${passFail(rssMB(rss) <= TARGETS.rssMB)}`);
      const cpu = result.runs.length > 0 ? median(result.runs.map((r) => r.cpuSeconds)) : undefined;
      rows.push([
        image.key,
        TOOL_TITLES[tool],
        result.error ? 'FAILED' : result.unsupported ? 'n/a' : seconds === undefined ? 'n/a' : formatSeconds(seconds),
        result.runs.map((r) => formatSeconds(r.seconds)).join(' / ') || '—',
        cpu === undefined ? '—' : formatSeconds(cpu),
        isDucc && seconds !== undefined && alt !== undefined ? formatRatio(seconds / alt) : '—',
        (isDucc || tool === 'node-verify' || tool === 'floor') && seconds !== undefined && floor !== undefined ? formatRatio(seconds / floor) : '—',
        rss === undefined ? '—' : rssMB(rss).toFixed(0),
        targetNotes.join('; ') || result.unsupported || (result.error ? result.error.split('\n')[0]!.slice(0, 80) : ''),
      ]);
    }
  }
  return markdownTable(['Image', 'Tool', 'Median s', 'Runs (s)', 'CPU s', '× skopeo+umoci', '× verified floor', 'Peak RSS MB', 'Targets'], rows, [
    'l',
    'l',
    'r',
    'r',
    'r',
    'r',
    'r',
    'r',
    'l',
  ]);
}

function cvmfsMedian(result: CvmfsToolResult | undefined): number | undefined {
  return result && result.runs.length > 0 ? median(result.runs.map((r) => r.seconds)) : undefined;
}

/** `list 1, ingest 2`: how often each subcommand was called (the same in every run, or a range). */
function callSummary(result: CvmfsToolResult): string {
  const counts = result.runs.map((run) => {
    const count = new Map<string, number>();
    for (const call of run.calls) count.set(call.subcommand, (count.get(call.subcommand) ?? 0) + 1);
    return count;
  });
  const subcommands = [...new Set(counts.flatMap((count) => [...count.keys()]))];
  return subcommands
    .map((sub) => {
      const values = counts.map((count) => count.get(sub) ?? 0);
      const [low, high] = [Math.min(...values), Math.max(...values)];
      return `${sub} ${low === high ? low : `${low}–${high}`}`;
    })
    .join(', ');
}

function cvmfsTable(results: BenchResults): string {
  const rows: string[][] = [];
  for (const [key, tools] of Object.entries(results.cvmfs?.images ?? {})) {
    const theirs = cvmfsMedian(tools?.['cvmfs-ducc']);
    const directory = results.conversions[key as ImageKey]?.ducc;
    const directorySeconds = medianSeconds(directory);
    if (directory && directorySeconds !== undefined) {
      rows.push([
        key,
        'ducc convert, directory publisher (from the conversion table; outputs on tmpfs)',
        formatSeconds(directorySeconds),
        directory.runs.map((r) => formatSeconds(r.seconds)).join(' / '),
        formatSeconds(median(directory.runs.map((r) => r.cpuSeconds))),
        theirs === undefined ? '—' : formatRatio(directorySeconds / theirs),
        'none',
        '0',
        '—',
        rssMB(peakRssKiB(directory)!).toFixed(0),
        '',
      ]);
    }
    const ducc = tools?.['cvmfs-ducc'];
    if (ducc && ducc.runs.length > 0 && theirs !== undefined) {
      // cvmfs_ducc ingests each layer's tar once: what any tool spends at least on this repository to
      // store the image's files (compressing and hashing them), whatever it does around that.
      const ingests = ducc.runs.map((run) => run.calls.filter((call) => call.subcommand === 'ingest').reduce((sum, call) => sum + call.seconds, 0));
      const ingestMedian = median(ingests);
      rows.push([
        key,
        "cvmfs_ducc's layer ingests alone (storing the files once: the least any tool spends here)",
        formatSeconds(ingestMedian),
        ingests.map(formatSeconds).join(' / '),
        formatSeconds(median(ducc.runs.map((run) => run.calls.filter((call) => call.subcommand === 'ingest').reduce((sum, call) => sum + call.cpuSeconds, 0)))),
        formatRatio(ingestMedian / theirs),
        '',
        '',
        '',
        '',
        '',
      ]);
    }
    for (const tool of CVMFS_TOOL_KEYS) {
      const result = tools?.[tool];
      if (result === undefined) continue;
      const seconds = cvmfsMedian(result);
      const runs = result.runs;
      const publishes = runs.map((run) => publishesOf(run.calls));
      const own = runs.map((run) => run.ownMaxRssKiB).filter((v) => v !== undefined);
      const tree = runs.length > 0 ? Math.max(...runs.map((run) => run.maxRssKiB)) : undefined;
      const notes: string[] = [];
      if (tool === 'ducc-cvmfs' && seconds !== undefined && theirs !== undefined)
        notes.push(`≤0.25× cvmfs_ducc: ${passFail(seconds / theirs <= TARGETS.cvmfsVsDucc)}`);
      if (tool === 'ducc-cvmfs' && publishes.length > 0) notes.push(`≤2 publishes: ${passFail(Math.max(...publishes) <= TARGETS.cvmfsPublishesPerImage)}`);
      rows.push([
        key,
        CVMFS_TOOL_TITLES[tool],
        result.error ? 'FAILED' : result.unsupported ? 'n/a' : seconds === undefined ? 'n/a' : formatSeconds(seconds),
        runs.map((r) => formatSeconds(r.seconds)).join(' / ') || '—',
        runs.length > 0 ? formatSeconds(median(runs.map((r) => r.cpuSeconds))) : '—',
        tool === 'ducc-cvmfs' && seconds !== undefined && theirs !== undefined ? formatRatio(seconds / theirs) : '—',
        runs.length > 0 ? callSummary(result) : '—',
        publishes.length > 0
          ? Math.min(...publishes) === Math.max(...publishes)
            ? String(publishes[0])
            : `${Math.min(...publishes)}–${Math.max(...publishes)}`
          : '—',
        runs.length > 0 ? formatSeconds(median(runs.map((run) => run.calls.reduce((sum, call) => sum + call.seconds, 0)))) : '—',
        tree === undefined ? '—' : own.length > 0 ? `${rssMB(Math.max(...own)).toFixed(0)} (tree ${rssMB(tree).toFixed(0)})` : `tree ${rssMB(tree).toFixed(0)}`,
        notes.join('; ') || result.unsupported || (result.error ? result.error.split('\n')[0]!.slice(0, 100) : ''),
      ]);
    }
  }
  return markdownTable(
    [
      'Image',
      'Tool',
      'Median s',
      'Runs (s)',
      'CPU s',
      '× cvmfs_ducc',
      'cvmfs_server calls per image',
      'Publishes',
      's in cvmfs_server',
      'Peak RSS MB',
      'Targets',
    ],
    rows,
    ['l', 'l', 'r', 'r', 'r', 'r', 'l', 'r', 'r', 'r', 'l'],
  );
}

function breakdown(results: BenchResults): string {
  const rows: string[][] = [];
  for (const image of results.images) {
    for (const tool of ['skopeo-umoci', 'floor-verified', 'floor'] as const) {
      const result = results.conversions[image.key]?.[tool];
      if (!result || result.runs.length === 0) continue;
      const names = result.runs[0]!.steps?.map((s) => s.name) ?? [];
      for (const name of names) {
        const values = result.runs.map((r) => r.steps?.find((s) => s.name === name)).filter((s) => s !== undefined);
        rows.push([
          image.key,
          TOOL_TITLES[tool],
          name,
          formatSeconds(median(values.map((v) => v.seconds))),
          formatSeconds(median(values.map((v) => v.cpuSeconds))),
          ((Math.max(...values.map((v) => v.maxRssKiB)) * 1024) / MB).toFixed(0),
        ]);
      }
    }
  }
  return rows.length === 0 ? '' : markdownTable(['Image', 'Tool', 'Step', 'Median s', 'CPU s', 'Peak RSS MB'], rows, ['l', 'l', 'l', 'r', 'r', 'r']);
}

export function renderReport(results: BenchResults): string {
  const m = results.machine;
  const out: string[] = [];
  out.push('# ducc-gitops benchmark results', '');
  out.push(
    `Taken ${m.date} with \`${results.commandLine}\` (${results.quick ? '**quick mode**: small images, not comparable with full runs' : 'full mode'}); every number is the median of ${results.runs} run${results.runs === 1 ? '' : 's'} unless said otherwise. Total bench time ${formatSeconds(results.totalSeconds)} s. See bench/README.md for what each number means.`,
    '',
  );
  const c = results.code;
  out.push('## Code and conditions', '');
  out.push(
    `- Commit ${c.head}${c.changed.length > 0 ? ` with ${c.changed.length} uncommitted change${c.changed.length === 1 ? '' : 's'} under src/ and bin/ (${c.changed.join(', ')})` : ', no uncommitted changes under src/ and bin/'}.`,
  );
  out.push(
    c.fingerprintAtEnd === '' || c.fingerprintAtEnd === c.fingerprintAtStart
      ? `- The code (src/, bin/, package.json; hash ${c.fingerprintAtStart}) did not change during the run.`
      : `- **The code changed during the run** (hash ${c.fingerprintAtStart} at the start, ${c.fingerprintAtEnd} at the end): measurements mix versions.`,
  );
  if (results.load) {
    // The measured commands keep every core busy themselves: only a load above that means other work.
    const busy = results.load.median > m.cores + 0.5;
    out.push(
      `- 1-minute load average during the run (${m.cores} cores): min ${results.load.min.toFixed(2)}, median ${results.load.median.toFixed(2)}, max ${results.load.max.toFixed(2)} (${results.load.count} samples).${busy ? ' Other processes were competing for the CPU: wall times are noisier than usual; the CPU-time column is less affected.' : ' The measured commands use all cores themselves, so a load up to the number of cores is expected.'}`,
    );
    out.push('- `dist/` was built at the start of the run, so `bin/ducc.js` ran the compiled JavaScript (the bundle in `dist/bundle/`).');
  }
  out.push('');
  out.push('## Machine', '');
  out.push(`- CPU: ${m.cpu}, ${m.cores} cores`);
  out.push(`- Memory: ${m.memory}`);
  out.push(`- Outputs of the measured commands (repository roots, OCI copies, bundles, extracted layers): ${m.workDisk}`);
  out.push(
    `- bench/.cache (image layouts read by the floor): ${m.cacheDisk}; registry storage, bot state and git repositories (system temp dir): ${m.tmpDisk}`,
  );
  out.push(`- OS: ${m.os}, kernel ${m.kernel}`);
  out.push(`- Node.js ${m.node}`);
  out.push(
    `- One \`await fs.promises.lstat()\` in the output directory: ${m.fsRoundTrip.asyncUs.toFixed(1)} µs; one \`lstatSync()\`: ${m.fsRoundTrip.syncUs.toFixed(1)} µs (the difference is the libuv thread-pool round trip every awaited fs call pays)`,
  );
  out.push(
    `- Tools: ${Object.entries(m.tools)
      .map(([k, v]) => `${k}: ${v}`)
      .join('; ')}`,
    '',
  );

  out.push('## Images', '');
  out.push(
    markdownTable(
      ['Image', 'Description', 'Layers', 'Tar entries', 'Uncompressed', 'Compressed', 'Push (skopeo) s'],
      results.images.map((i) => [
        i.key,
        i.title,
        String(i.layout.layers.length),
        i.entries.toLocaleString('en'),
        formatMiB(i.uncompressedBytes),
        formatMiB(i.compressedBytes),
        formatSeconds(results.pushSeconds[i.key] ?? Number.NaN),
      ]),
      ['l', 'l', 'r', 'r', 'r', 'r', 'r'],
    ),
    '',
  );

  out.push('## Conversion', '');
  out.push(
    'Wall time (median, and every run), CPU time (user + system of all processes measured, median), ratios of the median wall time against skopeo+umoci and against the verified floor, peak RSS (largest of the runs; MB = 10⁶ bytes).',
    '',
    "The verified floor is what C tools alone spend to unpack the layers *and* check them, as a converter must: for each layer, one pipeline `tee FIFO1 < BLOB | gzip -dc | tee FIFO2 | tar -x` (zstd -dc for zstd) with `openssl dgst -sha256` reading each FIFO, so that the blob's digest and its tar's diff_id are computed on the way (and checked against the image); layers one after another, times summed. The unverified `decompress | tar -x` is shown for information.",
    '',
    "The floors read the blobs from the image's OCI layout on disk; they download nothing. Layers only is therefore measured twice, each against the 1.3× target: with the image in the local registry (as a wish names it most often: the download, and the registry process serving it on the same cores, are included), and with the same OCI layout as the wish (`oci:DIR:TAG`): the same input as the floors.",
    '',
  );
  out.push(
    '"Node: read + verify + decompress only" is not a tool but a lower bound, for information: a bare Node process that reads the same blobs from disk, checks their digests and diff_ids (sha256) and decompresses them with Node\'s zlib/zstd, all layers at once, and writes nothing (bench/lib/node-verify.js). No converter in Node that verifies what it unpacks can be faster.',
    '',
  );
  out.push(conversionTable(results), '');

  const targets = collectTargets(results);
  out.push('## Targets', '');
  out.push(
    markdownTable(
      ['Target', 'Measured', 'Limit', 'Result', 'Margin'],
      targets.map((t) => [t.name, t.measured, t.limit, passFail(t.pass), t.margin]),
      ['l', 'r', 'r', 'l', 'r'],
    ),
    '',
  );
  const failed = targets.filter((t) => t.pass === false);
  out.push(
    failed.length === 0
      ? 'All measured targets pass.'
      : `${failed.length} of ${targets.length} targets fail: ${failed.map((t) => `${t.name} (${t.measured}, ${t.margin})`).join('; ')}.`,
    '',
  );
  const steps = breakdown(results);
  if (steps) out.push('### Breakdown of the comparisons', '', steps, '');

  out.push('## CernVM-FS stratum 0: cvmfs publisher and cvmfs_ducc', '');
  if (results.cvmfs?.unavailable !== undefined) out.push(`Not run: no CernVM-FS stratum 0 can be made here (${results.cvmfs.unavailable}).`, '');
  else if (results.cvmfs) {
    out.push(
      "Each run converts one image into a repository of its own on this machine's stratum 0 (`cvmfs_server mkfs -o root -f overlayfs`, not timed; removed afterwards), from the same registry: `ducc convert --config` with `publisher: {kind: cvmfs}` and `--skip-thin-image`, and upstream DUCC as `cvmfs_ducc convert --skip-thin-image --skip-podman`. Both call `cvmfs_server` through the same logging shim (first on PATH; `publisher.cvmfsServer` for ducc-gitops), which counts the calls and the time spent in them. Publishes are `ingest` and `publish` calls (each ingest is a transaction and a publish of its own). Both tools keep their temporary files on disk (ducc-gitops's `stagingDir`, DUCC's `-t`, under bench/.cache/work). CPU time and the tree's peak RSS include every process, cvmfs_server and cvmfs_swissknife too; for ducc-gitops the first RSS number is its own process (threads included, children not).",
      '',
      cvmfsTable(results),
      '',
    );
  } else out.push('Not run.', '');

  out.push(`## No-op reconcile`, '');
  if (isError(results.reconcile)) out.push(`Failed: ${results.reconcile.error}`, '');
  else if (results.reconcile) {
    const r = results.reconcile;
    out.push(
      `${r.wishes.toLocaleString('en')} wishes over ${r.repositories} repositories (${r.wishes / r.repositories} tags of one small image of two layers in each), all already published.`,
      '',
    );
    /** A row of seconds: the median, and every run. */
    const secondsRow = (label: string, values: number[]): string[] => [
      label,
      `${formatSeconds(median(values))} s`,
      values.map((value) => formatSeconds(value)).join(' / '),
    ];
    const bare = r.bareClient ?? [];
    out.push(
      markdownTable(
        ['Measurement', 'Median', 'Runs'],
        [
          secondsRow(
            '`ducc convert` process (Node start-up included)',
            r.cli.map((c) => c.seconds),
          ),
          secondsRow(
            'CPU time of the `ducc convert` process',
            r.cli.map((c) => c.cpuSeconds),
          ),
          secondsRow('CPU time of the registry meanwhile (docker-registry, on the same cores)', r.registryCpu ?? []),
          ...(bare.length > 0
            ? [
                secondsRow(
                  'bare client process: the same conditional manifest GETs, nothing else (bench/lib/manifest-floor.js)',
                  bare.map((c) => c.seconds),
                ),
                secondsRow(
                  'CPU time of the bare client process',
                  bare.map((c) => c.cpuSeconds),
                ),
                secondsRow('CPU time of the registry meanwhile', r.bareClientRegistryCpu ?? []),
                ['`ducc convert` process ÷ bare client process', formatRatio(median(r.cli.map((c) => c.seconds)) / median(bare.map((c) => c.seconds))), ''],
              ]
            : []),
          secondsRow(
            'in-process `runConversion`',
            r.inProcess.map((c) => c.seconds),
          ),
          [
            'blob requests per no-op run (runConversion.blobRequests)',
            String(median(r.inProcess.map((c) => c.blobRequests))),
            r.inProcess.map((c) => String(c.blobRequests)).join(' / '),
          ],
          ['peak RSS of the process', `${rssMB(Math.max(...r.cli.map((c) => c.maxRssKiB))).toFixed(0)} MB`, ''],
          ['first conversion of all wishes (in-process, once)', `${formatSeconds(r.initialSeconds)} s`, ''],
          ['pushing the image (skopeo once per repository, the other tags by manifest PUT; once)', `${formatSeconds(r.pushSeconds)} s`, ''],
        ],
        ['l', 'r', 'r'],
      ),
      '',
    );
    if (bare.length > 0) {
      out.push(
        'The bare client is the least any client spends here: a Node process with only undici that sends the same conditional GETs (If-None-Match: the digest each tag named) 16 at a time, and checks any body against its Docker-Content-Digest. ' +
          'The registry spends its own CPU time on each request, on the same 2 cores, whoever asks.',
        '',
      );
    }
    out.push(
      `HTTP requests of one no-op run (counted by a proxy in front of the registry): ${
        Object.entries(r.requests)
          .map(([k, v]) => `${v} × ${k}`)
          .join(', ') || 'none'
      }.`,
      '',
    );
  } else out.push('Not run.', '');

  out.push('## GC plan', '');
  if (isError(results.gc)) out.push(`Failed: ${results.gc.error}`, '');
  else if (results.gc) {
    const g = results.gc;
    const reads = g.inProcess[0]?.readsByName ?? {};
    out.push(
      `A synthetic directory-publisher repository: ${g.images} published images (public name, DUCC manifest, flat tree; three layers each: one of 5 bases, one of 50 middles, one of their own) and ${g.unreferencedFlats} flat trees of images nothing references any more, with their own layers: ${g.layers} layers in all. The plan finds ${g.garbage} items to remove. Files read by the plan: ${
        Object.entries(reads)
          .map(([name, count]) => `${count} × ${name}`)
          .join(', ') || 'none'
      } (never a file of an image).`,
      '',
    );
    out.push(
      markdownTable(
        ['Measurement', 'Median', 'Runs'],
        [
          [
            '`ducc gc --dry-run` process (Node start-up included)',
            `${formatSeconds(median(g.cli.map((m) => m.seconds)))} s`,
            g.cli.map((m) => formatSeconds(m.seconds)).join(' / '),
          ],
          ['CPU time of the process', `${formatSeconds(median(g.cli.map((m) => m.cpuSeconds)))} s`, g.cli.map((m) => formatSeconds(m.cpuSeconds)).join(' / ')],
          [
            'in-process plan (collectGarbage, dry run)',
            `${formatSeconds(median(g.inProcess.map((m) => m.seconds)))} s`,
            g.inProcess.map((m) => formatSeconds(m.seconds)).join(' / '),
          ],
          ['peak RSS of the process', `${rssMB(Math.max(...g.cli.map((m) => m.maxRssKiB))).toFixed(0)} MB`, ''],
          ['building the repository (once)', `${formatSeconds(g.buildSeconds)} s`, ''],
        ],
        ['l', 'r', 'r'],
      ),
      '',
    );
  } else out.push('Not run.', '');

  out.push('## Webhooks', '');
  if (isError(results.webhooks)) out.push(`Failed: ${results.webhooks.error}`, '');
  else if (results.webhooks) {
    const w = results.webhooks;
    const p50s = w.bursts.map((b) => percentile(b.latenciesMs, 50));
    const p99s = w.bursts.map((b) => percentile(b.latenciesMs, 99));
    const maxes = w.bursts.map((b) => Math.max(...b.latenciesMs));
    const walls = w.bursts.map((b) => b.wallMs);
    out.push(
      `Bot in-process (test harness), logging as \`ducc serve\` does (JSON lines at info, one write(2) each, to /dev/null), GitHub API double, wish list of ${w.wishes} published wishes. Each burst: ${w.concurrency} signed push deliveries with distinct delivery ids (same commit, so the queue deduplicates them) sent at once from a separate process, each on its own connection, after 3 warm-up deliveries.`,
      '',
    );
    out.push(
      markdownTable(
        ['Measurement', 'Median', 'Runs'],
        [
          ['ack latency p50', formatMs(median(p50s)), p50s.map(formatMs).join(' / ')],
          ['ack latency p99', formatMs(median(p99s)), p99s.map(formatMs).join(' / ')],
          ['ack latency max', formatMs(median(maxes)), maxes.map(formatMs).join(' / ')],
          [`whole burst of ${w.concurrency} (first sent to last answered)`, formatMs(median(walls)), walls.map(formatMs).join(' / ')],
          ['no-op push: POST answered', formatMs(median(w.pushToStatus.map((p) => p.ackMs))), w.pushToStatus.map((p) => formatMs(p.ackMs)).join(' / ')],
          [
            'no-op push: pending status seen',
            formatMs(median(w.pushToStatus.map((p) => p.pendingMs))),
            w.pushToStatus.map((p) => formatMs(p.pendingMs)).join(' / '),
          ],
          [
            'no-op push: success status seen (push-to-status)',
            `${formatSeconds(median(w.pushToStatus.map((p) => p.successMs / 1000)))} s`,
            w.pushToStatus.map((p) => `${formatSeconds(p.successMs / 1000)} s`).join(' / '),
          ],
          [`first publication of the ${w.wishes} wishes through the bot (once)`, `${formatSeconds(w.primeSeconds)} s`, ''],
        ],
        ['l', 'r', 'r'],
      ),
      '',
    );
  } else out.push('Not run.', '');

  out.push('## Webhooks during a conversion, and freshness', '');
  out.push(...duringConversionsSection(results));

  for (const p of results.profiles ?? []) {
    out.push(`## Profile: ${p.image}`, '');
    if (isError(p)) {
      out.push(`Failed: ${p.error}`, '');
      continue;
    }
    out.push(
      `\`node --cpu-prof\` of one full \`ducc convert\`: ${formatSeconds(p.seconds)} s wall (profiled ${formatSeconds(p.profiledMs / 1000)} s of the main thread; Node start-up and module loading included).`,
      '',
    );
    out.push('Inclusive time by area (a sample counts for every area on its stack):', '');
    out.push(
      markdownTable(
        ['Area', 'ms', 'Share'],
        p.phases.map((x) => [x.name, x.ms.toFixed(0), `${(x.share * 100).toFixed(1)}%`]),
        ['l', 'r', 'r'],
      ),
      '',
    );
    out.push('Self time by area:', '');
    out.push(
      markdownTable(
        ['Area', 'ms', 'Share'],
        p.areas.map((x) => [x.name, x.ms.toFixed(0), `${(x.share * 100).toFixed(1)}%`]),
        ['l', 'r', 'r'],
      ),
      '',
    );
    out.push('Top functions by self time:', '');
    out.push(
      markdownTable(
        ['Function', 'ms', 'Share'],
        p.topSelf.map((x) => [`\`${x.name}\``, x.ms.toFixed(0), `${(x.share * 100).toFixed(1)}%`]),
        ['l', 'r', 'r'],
      ),
      '',
    );
    for (const [i, thread] of (p.otherThreads ?? []).entries()) {
      out.push(
        `Writer thread ${i + 1} (small files, src/unpack/file-writer-worker.ts): busy ${thread.busyMs.toFixed(0)} ms; ${thread.topSelf.map((x) => `\`${x.name}\` ${x.ms.toFixed(0)} ms`).join(', ')}.`,
        '',
      );
    }
    if (p.threadPool.length > 0) {
      out.push(
        `Same conversion with a bigger libuv thread pool (default 4), one run each: ${p.threadPool.map((t) => `UV_THREADPOOL_SIZE=${t.size}: ${formatSeconds(t.seconds)} s`).join(', ')}.`,
        '',
      );
    }
  }

  out.push('## Method', '');
  out.push(
    [
      "- Registry: Debian's docker-registry on loopback (test/support/registry.ts), filesystem storage on the same disk as the outputs; images pushed once per bench run with skopeo `--preserve-digests`.",
      '- Every command runs under `/usr/bin/time -f "%e %M %U %S"`: wall time from a monotonic clock around the spawn; peak RSS (the largest process of the command) and CPU time (user + system) from GNU time.',
      '- `ducc convert`: `node bin/ducc.js convert WISHLIST --repo-root FRESH_DIR --skip-thin-image` (directory publisher), a new repository directory every run; `--skip-flat` for layers only. The wish is the image in the local registry, except for the row "from the OCI layout", whose wish is `oci:DIR:TAG`, the image\'s OCI layout in bench/.cache: the same blob files the floors read, so that ducc and the floor start from the same input (no download, and no registry process sharing the cores). Node start-up (~0.1 s with the compiled bundle, which the bench builds first) is included.',
      '- skopeo+umoci: `skopeo copy docker://… oci:DIR:TAG` then `umoci unpack --image DIR:TAG BUNDLE`; times summed, RSS the larger.',
      '- Verified floor: for each layer blob already on disk, `tee FIFO1 < BLOB | gzip -dc | tee FIFO2 | tar -x -f - -C DIR` (zstd -dcq for zstd) and `openssl dgst -sha256 -r FIFO1`, `openssl dgst -sha256 -r FIFO2`: six processes spawned without a shell, each under GNU time; both digests checked against the image; layers one after another; times and CPU summed; RSS the largest process. The unverified floor is the same without tee and openssl.',
      `- \`sync\` (not timed) before every measurement; outputs are removed after each (not timed). Tool order rotates between runs. Blobs stay in the page cache (${m.memory} of RAM): the numbers are CPU, syscall and write-back costs, not disk reads.`,
    ].join('\n'),
    '',
  );
  return out.join('\n');
}
