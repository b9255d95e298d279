import { readFile } from 'node:fs/promises';
import { CredentialStore } from './credentials.ts';

/**
 * The credentials images are pulled with: DUCC_AUTH_REGISTRIES variables, plus a docker-style
 * config.json when DOCKER_CONFIG/~/.docker has one. Used by every command that reads a registry.
 */
export async function pullCredentials(env: NodeJS.ProcessEnv): Promise<CredentialStore> {
  const store = CredentialStore.fromEnvironment(env);
  const dockerConfig = env['DOCKER_CONFIG'] ? `${env['DOCKER_CONFIG']}/config.json` : env['HOME'] ? `${env['HOME']}/.docker/config.json` : undefined;
  if (dockerConfig) {
    const text = await readFile(dockerConfig, 'utf8').catch(() => undefined);
    if (text !== undefined) store.addDockerConfig(text, dockerConfig);
  }
  return store;
}
