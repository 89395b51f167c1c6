import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { AuditClient } from "../../audit/client.js";
import {
  brokerSource,
  offlineSource,
  parseTimeFilter,
  type AuditSource,
} from "../../audit/source.js";
import { verified, type VerifyResult } from "../../audit/verify.js";
import { ExitCode, GwError } from "../../errors.js";
import { brokerUrl, caFile, currentToken, type BrokerFlags } from "../context.js";
import { dim, green, printJson, red, yellow } from "../output.js";

export interface SourceFlags extends BrokerFlags {
  db?: string;
  publicKey?: string;
}

/** The broker's API, or with --db a copy of its SQLite file (read only). */
export async function openAuditSource(flags: SourceFlags): Promise<AuditSource> {
  if (flags.db) return offlineSource(flags.db, flags.publicKey);
  if (flags.publicKey) {
    throw new GwError("usage", "--public-key goes with --db (the broker checks with its own key)", {
      exitCode: ExitCode.usage,
    });
  }
  return brokerSource(
    new AuditClient({
      url: brokerUrl(flags),
      token: await currentToken(flags),
      caFile: caFile(flags),
    }),
  );
}

function statusText(r: VerifyResult): string {
  switch (r.status) {
    case "intact":
      return green("intact");
    case "pruned":
      return green("pruned");
    case "open":
      return yellow("open");
    case "unsealed":
      return yellow("unsealed");
    case "broken":
      return red("BROKEN");
  }
}

export function registerAudit(program: Command): void {
  const audit = program
    .command("audit")
    .description("Check recorded sessions for tampering, and get the broker's audit key");

  audit
    .command("verify")
    .description(
      "Verify sessions' hash chains and signed digests: intact, or exactly which event was edited, deleted or reordered",
    )
    .argument(
      "[session...]",
      "session ids (or unique prefixes); default: every session you may see",
    )
    .option("--connection <name>", "without session ids: only this connection's sessions")
    .option("--since <when>", "without session ids: sessions started since (2h, 7d, or a date)")
    .option("-n, --limit <n>", "without session ids: at most this many (newest first)", "100")
    .option("--db <file>", "verify a copy of the broker's SQLite file offline, not via the broker")
    .option("--public-key <file>", "with --db: the broker's public key (gw audit public-key --out)")
    .option("--broker <url>", "broker URL (or GW_BROKER)")
    .option("--ca-file <file>", "PEM file of a private CA (or GW_CA_FILE)")
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      "\nExit status: 0 when every session is intact (or open, or pruned with its digest intact), 1 otherwise." +
        "\n\nExamples:\n  gw audit verify\n  gw audit verify 3f2c9a1e --json\n" +
        "  gw audit verify --db ./gw.db --public-key broker-audit.pub",
    )
    .action(
      async (
        ids: string[],
        opts: SourceFlags & { connection?: string; since?: string; limit: string; json?: boolean },
      ) => {
        const source = await openAuditSource(opts);
        try {
          const results = await source.verify(ids, {
            connection: opts.connection,
            since: opts.since === undefined ? undefined : parseTimeFilter("--since", opts.since),
            limit: Number(opts.limit) || 100,
          });
          const ok = results.every(verified);
          if (opts.json) printJson({ ok, results });
          else if (results.length === 0) process.stdout.write("no sessions to verify\n");
          else {
            for (const r of results) {
              process.stdout.write(`${r.sessionId}  ${statusText(r)}  ${r.summary}\n`);
              if (
                r.problems.length > 1 ||
                (r.problems.length === 1 && r.summary !== r.problems[0]!.message)
              ) {
                for (const p of r.problems) {
                  process.stdout.write(
                    `  ${dim(p.seq === null ? "—" : p.seq === 0 ? "session" : `event ${p.seq}`)}: ${p.message}\n`,
                  );
                }
              }
            }
            const bad = results.filter((r) => !verified(r)).length;
            process.stdout.write(
              bad === 0
                ? `${results.length} session${results.length === 1 ? "" : "s"} verified\n`
                : `${bad} of ${results.length} session${results.length === 1 ? "" : "s"} not verified\n`,
            );
          }
          if (!ok) process.exitCode = ExitCode.failure;
        } finally {
          await source.close();
        }
      },
    );

  audit
    .command("public-key")
    .description("Print the broker's audit public key (Ed25519, PEM), for offline verification")
    .option("--out <file>", "write it to this file instead")
    .option("--broker <url>", "broker URL (or GW_BROKER)")
    .option("--ca-file <file>", "PEM file of a private CA (or GW_CA_FILE)")
    .option("--json", "print JSON ({ algorithm, keyId, publicKey })")
    .action(async (opts: BrokerFlags & { out?: string; json?: boolean }) => {
      const source = await openAuditSource(opts);
      try {
        const key = await source.publicKey();
        if (opts.out) {
          writeFileSync(opts.out, key.publicKey, { mode: 0o644 });
          process.stderr.write(`wrote the broker's audit key ${key.keyId} to ${opts.out}\n`);
        }
        if (opts.json) printJson(key);
        else if (!opts.out) process.stdout.write(key.publicKey);
      } finally {
        await source.close();
      }
    });
}
