/**
 * The config of agents: `agents.<name>.identity` says who may be the agent, a connection's
 * `via` must name a configured agent (reported at its path, with the agents there are), and a
 * connection without `via` is reached directly.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../src/config/load.js";

const base = (extra: string) => `
identity: { issuer: "https://login.microsoftonline.com/t/v2.0", audience: api }
store: { memory: true }
connections:
  db-edge:
    type: postgres
    via: edge
    target: { host: db.internal, database: app, user: gw }
    allow: ["group:dba"]
  db-direct:
    type: postgres
    target: { host: 10.0.0.5, database: app, user: gw }
    allow: ["group:dba"]
${extra}`;

function problems(yaml: string): Array<{ path: string; message: string }> {
  try {
    parseConfig(yaml);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe("agents in the config", () => {
  it("a connection goes through a configured agent", () => {
    const cfg = parseConfig(base('agents: { edge: { identity: ["app:1234"] } }'));
    expect(cfg.agents).toEqual({ edge: { identity: ["app:1234"] } });
    expect(cfg.connections["db-edge"]).toMatchObject({ via: "edge" });
    expect(cfg.connections["db-direct"]).not.toHaveProperty("via");
  });

  it("via must name an agent", () => {
    expect(problems(base(""))).toEqual([
      {
        path: "connections.db-edge.via",
        message: 'no agent named "edge": the config has no agents section',
      },
    ]);
    expect(problems(base('agents: { core: { identity: ["app:1"] } }'))).toEqual([
      { path: "connections.db-edge.via", message: 'no agent named "edge"; the agents are: core' },
    ]);
  });

  it("an agent names who it is", () => {
    expect(problems(base("agents: { edge: { identity: [] } }"))).toEqual([
      {
        path: "agents.edge.identity",
        message: "an agent must name the identity it signs in as",
      },
    ]);
    expect(problems(base('agents: { edge: { identity: ["edge-vm"] } }'))[0]?.path).toBe(
      "agents.edge.identity.0",
    );
  });
});
