/**
 * ssh command policy through the whole data path: the real ssh client, `gw connect`'s tunnel,
 * the broker and a real sshd, with people deciding held commands through the real CLI.
 *
 * A blocked command never reaches the target (the file it would create does not appear), the
 * client gets the reason on stderr and exit status 1. A held command waits, with the client
 * told which request to approve, until another person approves it in `gw approve` (the
 * terminal UI, in tmux): then it runs and its output arrives. A denied one gets the approver's
 * reason and never runs; the requester cannot approve their own. Every decision is a
 * statement row.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApprovalRequest } from "../../src/store/types.js";
import { GW_BIN, runGw } from "../helpers/cli.js";
import {
  clientOptions,
  endedSession,
  eventually,
  pinBroker,
  secretFile,
  ssh,
  sshEventsOf,
  watchedTunnel,
  type BrokerPin,
  type WatchedTunnel,
} from "../helpers/ssh-e2e.js";
import { startSshd, type SshdServer } from "../helpers/sshd.js";
import { GROUP_AUDIT, GROUP_DBA, startStack, type Stack } from "../helpers/stack.js";
import { TmuxServer } from "../helpers/tmux.js";

let sshd: SshdServer;
let stack: Stack;
let dir: string;
let pin: BrokerPin;
let box: WatchedTunnel;
let tmux: TmuxServer;
let brokerUrl: string;

const BLOCK_REASON = "creating files by hand is not allowed here";
const HOLD_REASON = "a release directory needs a second pair of eyes";

beforeAll(async () => {
  tmux = TmuxServer.start();
  sshd = await startSshd();
  dir = mkdtempSync(join(tmpdir(), "gw-e2e-ssh-policy-"));
  const key = secretFile(dir, "target_key", sshd.privateKey);
  stack = await startStack({
    connections: {
      box: {
        type: "ssh",
        target: {
          host: sshd.host,
          port: sshd.port,
          user: sshd.user,
          privateKey: { file: key },
          knownHosts: sshd.knownHostsFile,
        },
        allow: [`group:${GROUP_DBA}`],
        policy: {
          approvers: [`group:${GROUP_AUDIT}`],
          timeout: "120s",
          rules: [
            {
              name: "no-touch",
              match: { command: "touch *" },
              action: "block",
              reason: BLOCK_REASON,
            },
            {
              name: "releases",
              match: { regex: "^mkdir \\S+/release-" },
              action: "hold",
              reason: HOLD_REASON,
            },
          ],
        },
      },
    },
  });
  brokerUrl = stack.broker.url.replace("127.0.0.1", "localhost");
  pin = await pinBroker(stack, dir);
  box = await watchedTunnel(stack, "box");
});

afterAll(async () => {
  await tmux?.stop();
  await stack?.stop();
  await sshd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The pending request for `command`, as the store has it. */
function pendingFor(command: string): Promise<ApprovalRequest> {
  return eventually(`a pending request for ${command}`, async () =>
    (await stack.store.listApprovals({ status: "pending", limit: 20 })).find(
      (a) => a.sql === command,
    ),
  );
}

async function rowsOf(before: number) {
  const id = await eventually("the session", () =>
    box.sessions.length > before ? box.sessions[box.sessions.length - 1] : undefined,
  );
  await endedSession(stack.store, id);
  return { id, rows: await stack.store.listStatements(id) };
}

const cli = (token: string, ...args: string[]) =>
  runGw([...args, "--broker", brokerUrl, "--ca-file", stack.ca.caCert], {
    env: { GW_TOKEN: token, GW_CONFIG_DIR: join(dir, "cli-config") },
  });

describe("ssh command policy", () => {
  it("a blocked command never runs: exit 1, the reason on stderr, a blocked row", async () => {
    const marker = join(sshd.filesDir, "blocked-marker");
    const before = box.sessions.length;
    const r = await ssh(pin, box.port, [`touch ${marker}`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(
      `gw: blocked by rule no-touch of the ssh policy of box: ${BLOCK_REASON}`,
    );
    expect(existsSync(marker)).toBe(false);
    const { id, rows } = await rowsOf(before);
    expect(rows).toEqual([
      expect.objectContaining({
        sql: `touch ${marker}`,
        protocol: "exec",
        decision: "blocked",
        errorMessage: expect.stringContaining(BLOCK_REASON),
      }),
    ]);
    const events = await sshEventsOf(stack.store, id);
    expect(events.some((e) => e.kind === "exit" || e.kind === "output")).toBe(false);

    // The connection is still usable: the next command runs.
    const ok = await ssh(pin, box.port, [`echo still-here`]);
    expect(ok.stdout).toBe("still-here\n");
  });

  it("a held command waits until another person approves it in gw approve (tmux), then runs", async () => {
    const release = join(sshd.filesDir, "release-42");
    const command = `mkdir ${release} && echo created release-42`;
    const held = box.events.length;
    const before = box.sessions.length;
    const running = ssh(pin, box.port, [command]);
    const req = await pendingFor(command);
    expect(req).toMatchObject({
      connection: "box",
      requester: { name: "Dana DBA", type: "user" },
      reason: expect.stringContaining(HOLD_REASON),
      approvers: [`group:${GROUP_AUDIT}`],
    });
    // The tunnel (what `gw connect` prints from) is told which request waits.
    await eventually("the held notice on the tunnel", () =>
      box.events
        .slice(held)
        .find((e) => e.type === "statement_held" && e.request === req.id && e.sql === command),
    );
    // Held: the target has not run it.
    expect(existsSync(release)).toBe(false);

    const term = await tmux.run(
      [process.execPath, GW_BIN, "approve"],
      {
        GW_BROKER: brokerUrl,
        GW_CA_FILE: stack.ca.caCert,
        GW_TOKEN: stack.tokens.auditor,
        GW_CONFIG_DIR: join(dir, "approver-config"),
      },
      { width: 100, height: 30 },
    );
    const screen = await term.waitFor(
      "the held command on the approver's screen",
      (s) => s.includes(`› ${req.id}`) && s.includes(`mkdir ${release}`),
    );
    expect(screen).toContain("Dana DBA");
    expect(screen).toContain(HOLD_REASON);
    expect(existsSync(release)).toBe(false);
    await term.keys("a");

    const r = await running;
    expect(r.stderr).toContain(`gw: waiting for approval of request ${req.id}`);
    expect(r.stdout).toBe("created release-42\n");
    expect(r.code).toBe(0);
    expect(existsSync(release)).toBe(true);
    await term.waitFor("the confirmation", (s) => s.includes(`Approved ${req.id}`));
    await term.keys("q");
    expect(await term.waitForExit()).toBe(0);

    const decided = await stack.store.getApproval(req.id);
    expect(decided).toMatchObject({
      status: "approved",
      decisions: [
        expect.objectContaining({
          decision: "approve",
          by: expect.objectContaining({ name: "Avery Auditor" }),
        }),
      ],
    });
    const { rows } = await rowsOf(before);
    expect(rows).toEqual([
      expect.objectContaining({ sql: command, decision: "approved", commandTag: "exit 0" }),
    ]);
  });

  it("a client that leaves while its command is held cancels the request; the command never runs", async () => {
    const release = join(sshd.filesDir, "release-44");
    const command = `mkdir ${release} && echo created release-44`;
    const child = spawn(
      "ssh",
      [...clientOptions(pin), "-p", String(box.port), "anyone@127.0.0.1", command],
      { stdio: "ignore" },
    );
    const gone = new Promise((r) => child.on("close", r));
    const req = await pendingFor(command);
    child.kill("SIGTERM");
    await gone;
    const after = await eventually("the request to be cancelled", async () => {
      const a = await stack.store.getApproval(req.id);
      return a && a.status !== "pending" ? a : undefined;
    });
    expect(after.status).toBe("cancelled");
    const late = await cli(stack.tokens.auditor, "approvals", "approve", req.id);
    expect(late.code).not.toBe(0);
    expect(existsSync(release)).toBe(false);
  });

  it("a denied command never runs and the client gets the approver's reason; the requester cannot approve", async () => {
    const release = join(sshd.filesDir, "release-43");
    const command = `mkdir ${release} && echo created release-43`;
    const before = box.sessions.length;
    const running = ssh(pin, box.port, [command]);
    const req = await pendingFor(command);

    const self = await cli(stack.tokens.dba, "approvals", "approve", req.id);
    expect(self.code).toBe(5);
    expect(self.stderr).toContain(`you cannot approve your own statement (request ${req.id})`);
    expect(existsSync(release)).toBe(false);

    const deny = await cli(
      stack.tokens.auditor,
      "approvals",
      "deny",
      req.id,
      "--reason",
      "not during the freeze",
    );
    expect(deny.stderr).toBe("");
    expect(deny.code).toBe(0);

    const r = await running;
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`gw: waiting for approval of request ${req.id}`);
    expect(r.stderr).toContain(
      `gw: request ${req.id} was denied by Avery Auditor: not during the freeze`,
    );
    expect(existsSync(release)).toBe(false);
    const { rows } = await rowsOf(before);
    expect(rows).toEqual([
      expect.objectContaining({
        sql: command,
        decision: "denied",
        errorMessage: expect.stringContaining("not during the freeze"),
      }),
    ]);
  });
});
