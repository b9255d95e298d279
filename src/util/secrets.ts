import { readFileSync } from 'node:fs';
import { DuccError } from './errors.ts';

/**
 * A secret from the environment: `NAME` itself, or the contents of the file named by `NAME_FILE`
 * (systemd credentials, Docker/Kubernetes secrets), without its trailing newline. Undefined when neither
 * is set. Secrets never come from YAML files.
 */
export function secretFromEnv(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const direct = env[name];
  if (direct !== undefined) return direct;
  const file = env[`${name}_FILE`];
  if (file === undefined) return undefined;
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    throw new DuccError('BOT_ERR_CONFIG', `cannot read ${name}_FILE (${file}): ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}
