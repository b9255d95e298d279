/**
 * Polls `condition` until it holds (a throwing condition counts as "not yet"); fails after `timeoutMs`
 * naming `what`, with `detail()` appended (e.g. a child process's output). `abortIf` ends the wait early
 * with its message when waiting is pointless (the process being watched has exited).
 */
export async function waitFor(
  condition: () => Promise<boolean | undefined> | boolean | undefined,
  timeoutMs: number,
  what: string,
  options: { intervalMs?: number; detail?: () => string; abortIf?: () => string | undefined } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const detail = () => (options.detail ? `\n${options.detail()}` : '');
  for (;;) {
    if (
      await Promise.resolve()
        .then(condition)
        .catch(() => false)
    )
      return;
    const abort = options.abortIf?.();
    if (abort !== undefined) throw new Error(`${abort} before ${what}${detail()}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail()}`);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 20));
  }
}
