import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { errorMessage } from '../util/errors.ts';
import { parseImageReference, wholeName, manifestReference } from '../wishlist/image-reference.ts';
import { formatProblem, hasErrors, type Wishlist } from '../wishlist/wishlist.ts';
import { createLogger } from '../util/logger.ts';
import { parsePlatform } from '../registry/platform.ts';
import { expandWish } from '../convert/convert-wishlist.ts';
import { terminalProgress } from './progress.ts';
import { createSources, readWishlist, reportSummary, runConversion, runLoop, type ConversionFlags } from './run-conversion.ts';
import { addGcCommands } from './gc-commands.ts';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** The wish-list grammar and the configuration the commands share, shown by `ducc --help`. */
export const IMAGE_REFERENCE_HELP = `
Image references (wish-list inputs and IMAGE arguments):
  [https://|http://]REGISTRY/REPOSITORY[:TAG][@DIGEST]  a registry, as DUCC reads it
  oci:PATH:TAG                   an OCI image layout directory (skopeo copy ... oci:PATH:TAG)
  oci-archive:PATH:TAG           a tar of an OCI image layout (skopeo copy ... oci-archive:PATH:TAG)
  docker-archive:PATH:NAME:TAG   a docker save archive: the image with the RepoTag NAME:TAG
  dogestry://REMOTE/NAME:TAG     a dogestry remote named in the config's dogestryRemotes
  PATH is absolute. Published as oci/PATH:TAG, oci-archive/PATH:TAG, docker-archive/PATH/NAME:TAG and
  dogestry/REMOTE/NAME:TAG (PATH without its leading /). A TAG may hold * (wildcard).

Config file (--config FILE, else $DUCC_CONFIG; see config/ducc.example.yaml):
  publisher:        where images go (directory or cvmfs)
  dogestryRemotes:  - {name: central, url: file:///srv/dogestry}
                    - {name: builds, url: s3://BUCKET/PREFIX, region: eu-west-1, endpoint: https://...}
  cacheDir:         caches, default ./var/cache (DUCC_CACHE_DIR)
  S3 credentials come only from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (or *_FILE).
`;

/** Builds the `ducc` command line; separated from `main` so tests can drive it. */
export function buildProgram(out: (text: string) => void): Command {
  const program = new Command('ducc')
    .description('Publish container images into CernVM-FS (DUCC-compatible layout), and run the GitOps bot around the wish list.')
    .version(VERSION, '--version', 'print the version')
    .exitOverride()
    .configureOutput({ writeOut: out })
    .addHelpText('after', IMAGE_REFERENCE_HELP);

  program
    .command('version')
    .description('print the version')
    .action(() => out(`${VERSION}\n`));

  program
    .command('check-image-syntax')
    .aliases(['check-image', 'image-check'])
    .description('parse an image reference as a wish-list entry and print its parts')
    .argument('<image>', 'image reference, e.g. https://registry.hub.docker.com/library/ubuntu:22.04 or oci:/srv/layouts/app:1.0 (see ducc --help)')
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
      // Registry-less inputs: where the image is read from, and the name it is published under.
      const source = ref.source;
      if (source !== undefined) rows.push(['Location', source.kind === 'dogestry' ? `remote ${source.remote}, repository ${source.name}` : source.path]);
      if (source !== undefined) rows.push(['PublicName', `${ref.registry}/${ref.repository}:${ref.tag ?? ''}`]);
      if (options.machineFriendly) {
        out(`${rows.map(([key]) => key.toLowerCase()).join(',')}\n${rows.map(([, value]) => value).join(',')}\n`);
      } else {
        for (const [key, value] of rows) out(`${key.padEnd(12)}${value}\n`);
      }
    });

  const conversionFlags = (command: Command, withRepoFlags = true): Command => {
    if (withRepoFlags) {
      command
        .option('--repo-root <dir>', 'directory publisher: write into <dir>/<cvmfs_repo>/ (overrides the config file)')
        .option('--config <file>', 'config file: publisher, dogestryRemotes, cacheDir (default $DUCC_CONFIG; else directory publisher under ./var/cvmfs)');
    }
    return command
      .option('-s, --skip-flat', 'do not build the flat root filesystem nor the public symlink')
      .option('-d, --skip-layers', 'do not unpack layers, unless the flat root filesystem needs them')
      .option('-i, --skip-thin-image', 'do not push thin images')
      .option('-g, --convert-again', 'convert even images that .metadata says are up to date')
      .option('-f, --overwrite-layers', 'unpack layers again even when already published')
      .option('--platform <os/arch[/variant]>', 'platform to take from multi-platform images', 'linux/amd64')
      .option('-m, --multi-arch', 'publish every platform of multi-platform images under .multiarch/, chosen by CVMFS_ARCH')
      .option('--max-concurrent-downloads <n>', 'layers downloaded at once per image', '3')
      .option('--max-wildcard-tags <n>', 'most tags one wildcard entry may expand to', '500')
      .option('--shard <k/n>', 'convert only the k-th of n disjoint shares of the images, by registry/repository (workers on several publisher nodes)')
      .option('-n, --notification-file <file>', 'append DUCC JSON-lines notifications to <file>');
  };

  conversionFlags(
    program
      .command('convert')
      .description('convert every image of a wish list once; exit 1 if any failed')
      .argument('<wishlist>', 'wish list file (DUCC recipe v1)'),
  ).action(async (file: string, flags: ConversionFlags) => {
    const logger = createLogger();
    const summary = await runConversion(await readWishlist(file), flags, process.env, logger, undefined, terminalProgress());
    process.exitCode = reportSummary(summary, out, file);
  });

  conversionFlags(
    program
      .command('loop')
      .description('convert the wish list again and again, re-reading it each round, until SIGINT/SIGTERM')
      .argument('<wishlist>', 'wish list file (DUCC recipe v1)')
      .option('--interval <seconds>', 'pause between rounds', '60'),
  ).action(async (file: string, flags: ConversionFlags & { interval?: string }) => {
    process.exitCode = await runLoop(file, flags, process.env, createLogger(), out);
  });

  conversionFlags(
    program
      .command('convert-single-image')
      .description('convert one image into a CVMFS repository without a wish list')
      .argument('<image>', 'image reference, e.g. https://registry.hub.docker.com/library/ubuntu:22.04 or oci:/srv/layouts/app:1.0 (see ducc --help)')
      .argument('<cvmfs-repo>', 'repository name, e.g. unpacked.cern.ch')
      .option('-u, --username <user>', 'account that pushes the thin image')
      .option('--thin-image-name <image>', 'thin image name (default: <image>_thin naming of DUCC)'),
  ).action(async (image: string, repo: string, flags: ConversionFlags & { username?: string; thinImageName?: string }) => {
    // Checked here so that a bad argument is reported as such, not as a line of a synthetic wish list.
    parseImageReference(image);
    if (flags.thinImageName) parseImageReference(flags.thinImageName);
    const yaml = JSON.stringify({
      version: 1,
      cvmfs_repo: repo,
      ...(flags.username ? { user: flags.username } : {}),
      ...(flags.thinImageName ? { output_format: flags.thinImageName } : {}),
      input: [image],
    });
    const { parseWishlist } = await import('../wishlist/wishlist.ts');
    const summary = await runConversion(parseWishlist(yaml, '<command line>'), flags, process.env, createLogger());
    process.exitCode = reportSummary(summary, out);
  });

  program
    .command('check')
    .description('validate a wish list and resolve every reference without converting; exit 1 on problems')
    .argument('<wishlist>', 'wish list file (DUCC recipe v1)')
    .option('--platform <os/arch[/variant]>', 'platform to resolve in multi-platform images', 'linux/amd64')
    .option('--offline', 'only check the file, do not contact registries')
    .option('--config <file>', 'config file with dogestryRemotes and cacheDir (default $DUCC_CONFIG)')
    .action(async (file: string, flags: { platform: string; offline?: boolean; config?: string }) => {
      const wishlist = await readWishlist(file);
      for (const problem of wishlist.problems) out(`${formatProblem(problem, file)}\n`);
      let resolvedImages = 0;
      let unresolved = 0;
      if (!flags.offline) {
        const sources = await createSources(flags.config, process.env, createLogger({ level: 'warn' }));
        const platform = parsePlatform(flags.platform);
        for (const wish of wishlist.wishes) {
          const where = `${file}:${wish.source.line}:${wish.source.column}`;
          try {
            const images = await expandWish(sources, wish);
            for (const image of images) {
              const resolved = await sources.forImage(image).resolveManifest(manifestReference(image), { platform });
              out(`${where}: ok: ${wholeName(image)} ${resolved.manifestDigest}\n`);
              resolvedImages++;
            }
          } catch (error) {
            unresolved++;
            out(`${where}: error: ${wish.input}: ${errorMessage(error)}\n`);
          }
        }
      }
      out(`${checkSummary(file, wishlist, flags.offline ? undefined : { resolved: resolvedImages, unresolved })}\n`);
      process.exitCode = hasErrors(wishlist) || unresolved > 0 ? 1 : 0;
    });

  program
    .command('serve')
    .description('run the GitOps bot: webhooks from GitHub, GitLab and registries, commit statuses, MR reports')
    .option(
      '--config <file>',
      'bot configuration (default $DUCC_CONFIG); see config/ducc.example.yaml (state: SQLite, or PostgreSQL for several replicas: state.kind postgres, or DUCC_STATE_URL)',
    )
    .option('--shutdown-deadline <seconds>', 'on SIGTERM, how long the running conversion may take to finish before it is requeued', '600')
    .action(async (flags: { config?: string; shutdownDeadline: string }) => {
      const { loadBotConfig } = await import('../config/load-bot-config.ts');
      const { readSettings } = await import('../config/settings.ts');
      const { startServer } = await import('../bot/serve.ts');
      const logger = createLogger();
      const file = flags.config ?? process.env['DUCC_CONFIG'];
      const config = loadBotConfig({ ...(file === undefined ? {} : { file }), env: process.env });
      const running = await startServer(config, process.env, logger, VERSION, { settings: readSettings(process.env) });
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          logger.info({ signal }, 'shutting down: no new webhooks, finishing the running job');
          running.stop(Number(flags.shutdownDeadline) * 1000).then(resolve, resolve);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
    });

  addGcCommands(program, out);

  program
    .command('list-remote')
    .description('list the repositories and tags of a dogestry remote named in the config (as `dogestry list`)')
    .argument('<name>', 'a name from dogestryRemotes, e.g. central')
    .option('--config <file>', 'config file with dogestryRemotes (default $DUCC_CONFIG)')
    .action(async (name: string, flags: { config?: string }) => {
      const { listDogestryImages } = await import('../sources/dogestry.ts');
      const sources = await createSources(flags.config, process.env, createLogger({ level: 'warn' }));
      const rows = (await listDogestryImages(sources.dogestryStore(name))).map(({ repository, tag }) => [repository, tag] as const);
      const width = Math.max('REPOSITORY'.length, ...rows.map(([repository]) => repository.length)) + 2;
      out(`${'REPOSITORY'.padEnd(width)}TAG\n`);
      for (const [repository, tag] of rows) out(`${repository.padEnd(width)}${tag}\n`);
    });

  program
    .command('download-manifest')
    .alias('get-manifest')
    .description('print the manifest an image reference resolves to (platform manifest for an index)')
    .argument('<image>', 'image reference with a tag or digest')
    .option('--platform <os/arch[/variant]>', 'platform to take from multi-platform images', 'linux/amd64')
    .option('--config <file>', 'config file with dogestryRemotes and cacheDir (default $DUCC_CONFIG)')
    .action(async (image: string, flags: { platform: string; config?: string }) => {
      const ref = parseImageReference(image);
      const sources = await createSources(flags.config, process.env, createLogger({ level: 'warn' }));
      const resolved = await sources.forImage(ref).resolveManifest(manifestReference(ref), { platform: parsePlatform(flags.platform) });
      out(`${JSON.stringify(resolved.manifest, null, 2)}\n`);
    });

  return program;
}

/** The last line of `ducc check`: `wishlist.yaml: 3 entries, 4 resolved, 0 failed to resolve, 0 errors, 1 warning`. */
export function checkSummary(file: string, wishlist: Wishlist, resolution: { resolved: number; unresolved: number } | undefined): string {
  const count = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const errors = wishlist.problems.filter((p) => p.severity === 'error').length;
  const warnings = wishlist.problems.length - errors;
  const resolved = resolution === undefined ? 'not resolved (--offline)' : `${resolution.resolved} resolved, ${resolution.unresolved} failed to resolve`;
  return `${file}: ${wishlist.wishes.length} ${wishlist.wishes.length === 1 ? 'entry' : 'entries'}, ${resolved}, ${count(errors, 'error')}, ${count(warnings, 'warning')}`;
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
