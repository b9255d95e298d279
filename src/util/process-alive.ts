/**
 * Whether a process of this machine is still running: staging directories and test repositories are
 * named after the pid that made them, and what a dead process left is cleaned up. EPERM means the
 * process exists but belongs to another user.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
