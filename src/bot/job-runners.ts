import type { JobPayload } from '../state/types.ts';
import type { JobRunner } from './bot-context.ts';
import { checkChangeRequest } from './runners/check-change-request.ts';
import { gc } from './runners/gc.ts';
import { reconcile } from './runners/reconcile.ts';
import { reconvert } from './runners/reconvert.ts';
import { registryPush } from './runners/registry-push.ts';
import { syncBranch } from './runners/sync-branch.ts';

/** The runner of each kind of job (Atlantis keeps its command runners in such a table). */
export const JOB_RUNNERS: { readonly [Kind in JobPayload['kind']]: JobRunner<Kind> } = {
  'sync-branch': syncBranch,
  reconcile,
  'check-change-request': checkChangeRequest,
  reconvert,
  'registry-push': registryPush,
  gc,
};
