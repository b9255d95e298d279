import type { ProgressEvent } from '../convert/convert-image.ts';

/**
 * A terminal progress display: one status line per layer download, rewritten in place, and a line per
 * finished layer and flat tree. Used only when stderr is a terminal; logs stay structured otherwise.
 */
export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): ((event: ProgressEvent) => void) | undefined {
  if (!stream.isTTY) return undefined;
  const sizes = new Map<string, number>();
  let lastDraw = 0;
  const short = (digest: string) => digest.slice(7, 19);
  const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return (event) => {
    switch (event.kind) {
      case 'layer-start':
        sizes.set(event.layer, event.size);
        stream.write(`\r\x1b[K${event.image}: layer ${event.index + 1}/${event.total} ${short(event.layer)} (${mib(event.size)})\n`);
        break;
      case 'layer-bytes': {
        const now = Date.now();
        if (now - lastDraw < 200) return;
        lastDraw = now;
        const size = sizes.get(event.layer) ?? 0;
        const percent = size > 0 ? Math.min(100, Math.floor((event.bytes / size) * 100)) : 0;
        stream.write(`\r\x1b[K  ${short(event.layer)} ${mib(event.bytes)} / ${mib(size)} ${percent}%`);
        break;
      }
      case 'layer-done':
        stream.write(`\r\x1b[K  ${short(event.layer)} ${event.skipped ? 'already published' : 'unpacked'}\n`);
        break;
      case 'flat':
        stream.write(`\r\x1b[K${event.image}: building the flat root filesystem\n`);
        break;
    }
  };
}
