/**
 * Who is who in `gw demo`: the directory of the demo's local identity server.
 *
 * - Erin Engineer: signs in with the device code (approved automatically), opens the tunnel.
 * - Alex Approver: in the approvers group; approves held statements (`gw approve`) and, as an
 *   auditor, sees everyone's sessions.
 * - The demo MCP agent: a service principal (client credentials), for agent traffic.
 */
import type { DirectoryUser } from "../identity/local-entra/server.js";

export const DEMO_TENANT = "d3e00000-0000-4000-8000-00000000d3e0";
/** The demo broker's API (the `aud` of its tokens) and the gw CLI's client id. */
export const DEMO_AUDIENCE = "d3e00000-0000-4000-8000-0000000000a1";
export const DEMO_CLI_CLIENT = "d3e00000-0000-4000-8000-0000000000c1";

export const DEMO_GROUP_IDS = {
  engineers: "d3e00000-0000-4000-8000-0000000000e1",
  approvers: "d3e00000-0000-4000-8000-0000000000e2",
} as const;

export const DEMO_ENGINEER: DirectoryUser = {
  oid: "d3e00000-0000-4000-8000-000000000001",
  name: "Erin Engineer",
  preferred_username: "erin@demo.gw.test",
  groups: [DEMO_GROUP_IDS.engineers],
};

export const DEMO_APPROVER: DirectoryUser = {
  oid: "d3e00000-0000-4000-8000-000000000002",
  name: "Alex Approver",
  preferred_username: "alex@demo.gw.test",
  groups: [DEMO_GROUP_IDS.approvers],
};

export const DEMO_MCP_AGENT = {
  clientId: "d3e00000-0000-4000-8000-0000000000b1",
  objectId: "d3e00000-0000-4000-8000-0000000000b2",
  displayName: "Demo MCP agent",
  roles: ["gw.connect"],
} as const;

export const DEMO_CONNECTION = "demo-db";
