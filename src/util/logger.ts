import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

/** Fields that may hold secrets; pino replaces their values before anything is written. */
export const REDACTED_PATHS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'headers.cookie',
  'secret',
  '*.secret',
];

/**
 * Structured JSON logs (one object per line) on stderr; on a terminal the same records as short
 * human-readable lines. Secrets are redacted in both. A record with `printed: true` repeats what the
 * command has just printed itself (an `error:` line of `ducc convert`): it stays in JSON logs, and a
 * terminal, where both would show, gets it once.
 */
export function createLogger(options: { level?: string; human?: boolean; stream?: NodeJS.WritableStream } = {}): Logger {
  const out = options.stream ?? process.stderr;
  const human = options.human ?? Boolean((out as NodeJS.WriteStream).isTTY);
  const destination = human ? humanLines(out) : out;
  return pino({ level: options.level ?? 'info', redact: { paths: REDACTED_PATHS, censor: '[redacted]' }, base: undefined }, destination);
}

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

function humanLines(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        try {
          const { level, msg, time: _time, printed, ...rest } = JSON.parse(line) as Record<string, unknown>;
          if (printed === true) continue;
          const fields = Object.entries(rest).map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
          out.write(`${LEVELS[level as number] ?? level}: ${String(msg ?? '')}${fields.length ? ` ${fields.join(' ')}` : ''}\n`);
        } catch {
          out.write(`${line}\n`);
        }
      }
      callback();
    },
  });
}
