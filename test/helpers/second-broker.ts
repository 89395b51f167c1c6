/**
 * Another replica of a stack's broker (test/helpers/stack.ts), run the way operators run one:
 * `gw broker start --config FILE` in a child process (the built CLI: run `npm run build`
 * first), on the same identity server, PostgreSQL target and SQLite store file. A test can
 * then SIGKILL it: a real crash, not an in-process close.
 *
 * The child recovers orphans when it starts (the default for SQLite: it closes sessions and
 * approvals a dead broker left open in the store), so start it while the stack's own broker
 * has no sessions open.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { startGwUntil, type CliResult } from "./cli.js";
import { APP_AGENT, GROUP_AUDIT, GROUP_DBA, type Stack } from "./stack.js";

export interface BrokerProcess {
  /** https://127.0.0.1:PORT */
  url: string;
  pid: number;
  /** Sends SIGKILL and resolves once the process is gone. */
  kill(): Promise<CliResult>;
  /** Everything it printed (stderr: its log). */
  output(): string;
}

export async function startBrokerProcess(stack: Stack): Promise<BrokerProcess> {
  const config = {
    listen: "127.0.0.1:0",
    tls: { cert: stack.brokerCert.cert, key: stack.brokerCert.key },
    identity: { issuer: stack.entra.issuer, audience: stack.entra.audience, ca: stack.ca.caCert },
    store: { sqlite: join(stack.dir, "gw.db") },
    auditors: [`group:${GROUP_AUDIT}`],
    connections: {
      "db-test": {
        type: "postgres",
        description: "Test database",
        target: {
          host: stack.pg.host,
          port: stack.pg.port,
          database: stack.pg.database,
          user: stack.pg.user,
          password: { env: stack.passwordEnv },
          tls: "disable",
        },
        allow: [`group:${GROUP_DBA}`, `app:${APP_AGENT}`],
      },
    },
  };
  // JSON is YAML.
  const file = join(stack.dir, `broker-${randomBytes(4).toString("hex")}.yaml`);
  writeFileSync(file, JSON.stringify(config, null, 2));
  const p = await startGwUntil(
    ["broker", "start", "--config", file],
    /gw broker listening on (https:\/\/\S+)/,
    // The CLI helper drops GW_* variables; the target password is one.
    { env: { [stack.passwordEnv]: stack.pg.password }, timeoutMs: 600_000 },
  );
  return {
    url: p.json[1]!,
    pid: p.pid,
    kill: () => p.stop("SIGKILL"),
    output: () => p.stdout() + p.stderr(),
  };
}
