/**
 * Preloaded into the test runner and every test file's process (run.ts). A test file's results reach
 * the runner over its stdout, a pipe; with --test-force-exit the file's process exits as soon as its
 * tests are done, and on Linux a non-blocking pipe can lose what is still buffered then: the last
 * tests' verdicts, so a file looks as if it ended early (nodejs/node#64833; seen here once in nine
 * full runs). Blocking writes leave nothing buffered at exit.
 */
const handle = (process.stdout as unknown as { _handle?: { setBlocking?: (on: boolean) => unknown } })._handle;
handle?.setBlocking?.(true);
