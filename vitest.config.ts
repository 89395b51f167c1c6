import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Tests start real PostgreSQL servers and TLS endpoints: slower than unit tests, on purpose.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Forks, not threads: each file gets its own process, so a server a file leaks dies with it
    // (see the exit hook in test/helpers/postgres.ts), and native modules stay out of workers.
    pool: "forks",
    // CI has 2 cores; more workers than that only makes initdb runs fight for CPU.
    maxWorkers: 2,
    // ink renders only the final frame when it thinks it runs in CI (is-in-ci reads CI at
    // import); the terminal UIs are tested frame by frame, so the code under test is told it
    // is not. Vitest's own reporter runs in the main process and still sees the real CI.
    env: { CI: "false" },
  },
});
