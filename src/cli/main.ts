import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { errorMessage } from '../util/errors.ts';
import { parseImageReference } from '../wishlist/image-reference.ts';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Builds the `ducc` command line; separated from `main` so tests can drive it. */
export function buildProgram(out: (text: string) => void): Command {
  const program = new Command('ducc')
    .description('Publish container images into CernVM-FS (DUCC-compatible layout), and run the GitOps bot around the wish list.')
    .version(VERSION, '--version', 'print the version')
    .exitOverride()
    .configureOutput({ writeOut: out });

  program
    .command('version')
    .description('print the version')
    .action(() => out(`${VERSION}\n`));

  program
    .command('check-image-syntax')
    .aliases(['check-image', 'image-check'])
    .description('parse an image reference as a wish-list entry and print its parts')
    .argument('<image>', 'image reference, e.g. https://registry.hub.docker.com/library/ubuntu:22.04')
    .option('-z, --machine-friendly', 'print CSV instead of a table')
    .action((image: string, options: { machineFriendly?: boolean }) => {
      const ref = parseImageReference(image);
      const rows: [string, string][] = [
        ['Name', image],
        ['Scheme', ref.scheme],
        ['Registry', ref.registry],
        ['Repository', ref.repository],
        ['Tag', ref.tag ?? ''],
        ['Digest', ref.digest ?? ''],
        ['IsWildcard', String(ref.tag?.includes('*') ?? false)],
      ];
      if (options.machineFriendly) {
        out(`${rows.map(([key]) => key.toLowerCase()).join(',')}\n${rows.map(([, value]) => value).join(',')}\n`);
      } else {
        for (const [key, value] of rows) out(`${key.padEnd(12)}${value}\n`);
      }
    });

  return program;
}

/** Runs the CLI and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram((text) => process.stdout.write(text));
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    process.stderr.write(`ducc: ${errorMessage(error)}\n`);
    return 1;
  }
}
