/**
 * Issue 17 point 12: after a merge is published, the merge request's report says for every converted
 * image where it is (the /cvmfs path, with an `apptainer exec` line), the thin image pushed
 * (`name@digest`, with the line that runs it), the flat tree's digest, and its new and reused layers with
 * their bytes.
 */
import { it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildTar } from '../../support/build-tar.ts';
import { createGitRepo } from '../../support/git-repo.ts';
import { startApiDouble, githubRepoDouble } from '../../support/forge-api-double.ts';
import { pushOciLayout, writeOciLayout } from '../../support/oci-image.ts';
import { startRegistry, type TestRegistry } from '../../support/registry.ts';
import { tempDir } from '../../support/tmp-dir.ts';
import { botConfig, githubPush, postGitHub, startTestBot } from '../../support/bot-harness.ts';

/** Pushes an image of `layers` (one file each) and returns its config digest and layer sizes. */
async function pushImage(t: TestContext, registry: TestRegistry, repository: string, layers: string[]) {
  const layout = join(await tempDir(t), 'layout');
  const tars = await Promise.all(layers.map((content, i) => buildTar([{ name: `file-${i}`, content }])));
  const written = await writeOciLayout(layout, '1', [{ layers: tars, config: { Cmd: ['/bin/sh'] } }]);
  await pushOciLayout(layout, '1', { host: registry.host, repository, tag: '1' });
  return written.manifests[0]!;
}

/** The manifest digest the registry has for `repository:tag`. */
async function digestOf(registry: TestRegistry, repository: string, tag: string): Promise<string> {
  const response = await fetch(`http://${registry.host}/v2/${repository}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
  });
  return response.headers.get('docker-content-digest')!;
}

it('the report of a merged pull request says where each converted image is and how to run it', async (t) => {
  const registry = await startRegistry(t);
  const base = await pushImage(t, registry, 'sci/base', ['shared base layer']);
  const app = await pushImage(t, registry, 'sci/app', ['shared base layer', 'the application']);
  const list = (images: string[]) =>
    [
      'version: 1',
      'user: pusher',
      'cvmfs_repo: unpacked.example.org',
      `output_format: 'http://${registry.host}/thin/$(image)'`,
      'input:',
      ...images.map((i) => `  - 'http://${registry.host}/${i}'`),
      '',
    ].join('\n');
  const repo = await createGitRepo(t);
  const first = await repo.commit({ 'recipe.yaml': list(['sci/base:1']) });
  const merge = await repo.commit({ 'recipe.yaml': list(['sci/base:1', 'sci/app:1']) });
  const api = await startApiDouble(t);
  const github = githubRepoDouble(api, { owner: 'cern', repo: 'wishlist', pulls: [{ number: 9, headSha: merge, state: 'merged', mergeCommitSha: merge }] });
  const bot = await startTestBot(t, (root) =>
    botConfig(root, [{ apiUrl: api.url, cloneUrl: repo.url }], { convert: { skipThinImage: false, multiArch: false } }),
  );
  await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', first));
  await bot.worker.onIdle();

  await postGitHub(bot, 'push', githubPush('cern/wishlist', 'main', merge, first));
  await bot.worker.onIdle();

  const reports = github.comments.filter((c) => c.issueNumber === 9);
  assert.equal(reports.length, 1);
  const report = reports[0]!.body;
  const path = `/cvmfs/unpacked.example.org/${registry.host}/sci/app:1`;
  const thin = `${registry.host}/thin/sci/app:1@${await digestOf(registry, 'thin/sci/app', '1')}`;
  const sizeOf = async (digest: string) =>
    Number((await fetch(`http://${registry.host}/v2/sci/app/blobs/${digest}`, { method: 'HEAD' })).headers.get('content-length'));
  const [sharedSize, appSize] = await Promise.all(app.layerDigests.map(sizeOf));
  assert.match(report, /1 converted, 1 up to date, 0 failed/);
  assert.ok(report.includes(`- Path: \`${path}\``), report);
  assert.ok(report.includes(`apptainer exec ${path} /bin/sh`), report);
  assert.ok(report.includes(`- Thin image: \`${thin}\``), report);
  assert.ok(report.includes(`docker run --rm -it ${thin}`), report);
  assert.ok(report.includes(`- Flat tree: \`${app.configDigest}\``), report);
  assert.ok(report.includes(`- Layers: 1 new (${appSize} B), 1 reused (${sharedSize} B)`), report);
  assert.ok(!report.includes('sci/base:1`\n'), 'up-to-date images are not detailed');
  assert.equal(base.layerDigests[0], app.layerDigests[0], 'the two images share their first layer');
});
