import { errorMessage } from '../util/errors.ts';
import type { GcReport } from './collect.ts';

/** The last garbage collection of one repository, as `/metrics`, `/status` and the status page show it. */
export interface GcRunSummary {
  /** `cvmfs_repo`. */
  repository: string;
  /** When it ended (milliseconds since the epoch). */
  at: number;
  ok: boolean;
  error?: string;
  /** Items and bytes it removed. */
  removed: number;
  removedBytes: number;
  /** Garbage left in its grace period, and its bytes. */
  pending: number;
  pendingBytes: number;
  /** Bytes of every layer of the repository (the repository's content). */
  repositoryBytes: number;
}

/** The last gc of each repository, in memory (the bot's gc jobs write it; the HTTP face reads it). */
export class GcRunLog {
  readonly #last = new Map<string, GcRunSummary>();

  record(repository: string, outcome: { report: GcReport; at: number } | { error: unknown; at: number }): void {
    const previous = this.#last.get(repository);
    if ('report' in outcome) {
      const { report } = outcome;
      this.#last.set(repository, {
        repository,
        at: outcome.at,
        ok: true,
        removed: report.removed.length,
        removedBytes: report.removedBytes,
        pending: report.pending.length,
        pendingBytes: report.pendingBytes,
        repositoryBytes: report.layerBytes,
      });
    } else {
      // A failed run changed nothing it could report: the sizes are those of the last run that finished.
      this.#last.set(repository, {
        repository,
        at: outcome.at,
        ok: false,
        error: errorMessage(outcome.error),
        removed: 0,
        removedBytes: 0,
        pending: previous?.pending ?? 0,
        pendingBytes: previous?.pendingBytes ?? 0,
        repositoryBytes: previous?.repositoryBytes ?? 0,
      });
    }
  }

  list(): GcRunSummary[] {
    return [...this.#last.values()].sort((a, b) => a.repository.localeCompare(b.repository));
  }
}
