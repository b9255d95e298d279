import type { Delivery } from '../forge/events.ts';

/** What became of a verified webhook delivery. */
export type IntakeResult =
  /** New work was queued (or merged into queued work). */
  | { outcome: 'queued'; jobs: number[] }
  /** The delivery id was seen before: nothing done. */
  | { outcome: 'duplicate' }
  /** Nothing in it concerns a watched wish list or image (an unwatched branch, an edited comment...). */
  | { outcome: 'ignored'; reason: string }
  /** The queue is full: the sender should retry later. */
  | { outcome: 'overloaded' };

/**
 * The front door of the job queue: turns a verified delivery into durable jobs. It must be fast (no
 * network but the state database's, no conversion) because it runs inside the webhook request. The HTTP face (src/http) calls it;
 * the bot (src/bot) implements it.
 */
export interface Intake {
  accept(delivery: Delivery): Promise<IntakeResult>;
}
