import type { Command } from "commander";
import { ExitCode, GwError } from "../../errors.js";
import { rememberedPort } from "../../tunnel/port-memory.js";
import { brokerClient, type BrokerFlags } from "../context.js";
import { printJson } from "../output.js";
import { pinBrokerSshKey, sshConfigStanza } from "../ssh-host-pin.js";

export function registerSshConfig(program: Command): void {
  program
    .command("ssh-config")
    .description(
      "Print a ~/.ssh/config stanza for an ssh connection, with the broker's host key pinned",
    )
    .argument("<name>", "an ssh connection (see gw connect)")
    .option("--port <port>", "the tunnel's local port (default: the one gw connect remembers)")
    .option("--host-alias <alias>", "the Host name in the stanza (default: the connection name)")
    .option("--accept-new-host-key", "accept a broker host key that differs from the pinned one")
    .option("--json", "print the stanza's parts as JSON")
    .option("--broker <url>", "broker URL (or GW_BROKER)")
    .option("--ca-file <file>", "PEM file of a private CA (or GW_CA_FILE)")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  gw ssh-config prod-box >> ~/.ssh/config",
        "  gw connect prod-box --detach && ssh prod-box",
        "",
        "The broker signs in to the target with its own credential: the stanza turns off every",
        "way ssh could offer yours, and makes ssh check the broker's pinned host key.",
      ].join("\n"),
    )
    .action(
      async (
        name: string,
        opts: BrokerFlags & {
          port?: string;
          hostAlias?: string;
          acceptNewHostKey?: boolean;
          json?: boolean;
        },
      ) => {
        const client = await brokerClient(opts);
        const conn = (await client.connections()).find((c) => c.name === name);
        if (!conn)
          throw new GwError("connection_not_found", `no connection "${name}" that you may use`, {
            exitCode: ExitCode.failure,
            hint: "gw connect lists yours when given a wrong name; ask the broker's operators for access.",
          });
        if (conn.type !== "ssh")
          throw new GwError("connection_not_ssh", `${name} is a ${conn.type} connection, not ssh`, {
            exitCode: ExitCode.usage,
          });
        const port = opts.port !== undefined ? Number(opts.port) : rememberedPort(name);
        if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535)
          throw new GwError("port_unknown", `no local port known for ${name}`, {
            exitCode: ExitCode.usage,
            hint: `Run gw connect ${name} once (it remembers the port), or pass --port.`,
          });
        const pin = await pinBrokerSshKey(client, { accept: opts.acceptNewHostKey === true });
        const parts = {
          name,
          host: "127.0.0.1",
          port,
          user: conn.user ?? null,
          pin,
          ...(opts.hostAlias ? { hostAlias: opts.hostAlias } : {}),
        };
        if (opts.json)
          return printJson({
            connection: name,
            host: parts.host,
            port,
            user: parts.user,
            hostKeyAlias: pin.alias,
            knownHostsFile: pin.knownHostsFile,
            fingerprint: pin.fingerprint,
            stanza: sshConfigStanza(parts),
          });
        process.stdout.write(sshConfigStanza(parts));
      },
    );
}
