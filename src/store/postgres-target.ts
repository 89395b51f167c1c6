import pg from "pg";
import type { GwError } from "../errors.js";
import { storeUnavailable } from "./errors.js";

/**
 * What gw may say about a store.postgres URL: where it points ("database gw on db.internal:5432"),
 * never the password, and the secrets to scrub from driver messages before they reach a user.
 */
export interface PostgresTarget {
  /** "database gw on db.internal:5432", for messages. */
  where: string;
  host: string;
  port: string;
  database: string;
  /** Strings that must never appear in a message: the password, raw and decoded, and the URL. */
  secrets: string[];
}

const SCHEMES = new Set(["postgres:", "postgresql:"]);

/** Parses the URL (postgres:// or postgresql://); throws store_unavailable, without echoing it. */
export function postgresTarget(url: string): PostgresTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw storeUnavailable("store.postgres is not a valid URL", {
      hint: "Use postgres://USER:PASSWORD@HOST:PORT/DATABASE (percent-encode special characters in the password).",
    });
  }
  if (!SCHEMES.has(u.protocol)) {
    throw storeUnavailable(
      `store.postgres must be a postgres:// or postgresql:// URL, not ${u.protocol}//`,
      { hint: "Use postgres://USER:PASSWORD@HOST:PORT/DATABASE." },
    );
  }
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  const user = decode(u.username) || process.env["PGUSER"] || "";
  const host = u.searchParams.get("host") ?? (decode(u.hostname) || "localhost");
  const port = u.searchParams.get("port") ?? (u.port || "5432");
  const database = decode(u.pathname.replace(/^\//, "")) || user || "postgres";
  const secrets = [url];
  for (const p of [u.password, decode(u.password), u.searchParams.get("password") ?? ""]) {
    if (p !== "") secrets.push(p);
  }
  const at = host.startsWith("/") ? `socket ${host}` : `${host}:${port}`;
  return { where: `database ${database} on ${at}`, host, port, database, secrets };
}

/** The message with every secret of the target replaced; the longest first. */
export function scrubSecrets(text: string, target: PostgresTarget): string {
  let out = text;
  for (const s of [...target.secrets].sort((a, b) => b.length - a.length)) {
    if (out.includes(s)) out = out.split(s).join("[redacted]");
  }
  return out;
}

export function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The SQLSTATE of a server error, or the errno code of a socket error. */
export function pgCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Why the store cannot be opened, with what to do about it. */
export function connectFailed(err: unknown, target: PostgresTarget): GwError {
  const code = pgCode(err);
  const why = scrubSecrets(errMessage(err), target);
  let hint: string;
  if (code === "28P01" || code === "28000") {
    hint = "Check the user and password in store.postgres, and that pg_hba.conf lets this host in.";
  } else if (code === "3D000") {
    hint = `Create the database first (createdb ${target.database}), owned by the user gw signs in as.`;
  } else if (code === "42501") {
    hint =
      "The user needs to create tables on its first start: make it the owner of the database (or of its public schema).";
  } else if (code?.startsWith("08") === true || code === "57P03") {
    hint = "The server refused or dropped the connection; check its log, and retry.";
  } else {
    hint = `Check that PostgreSQL runs at ${target.host}:${target.port}, that this host can reach it, and the URL in store.postgres.`;
  }
  return storeUnavailable(`cannot open the session store (${target.where}): ${why}`, {
    hint,
    cause: err,
  });
}

/**
 * bigint columns (epoch ms, byte counts) come back as numbers: every value gw stores fits a
 * double exactly. Only for the store's own connections, not pg's global parsers.
 */
export const storeTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === pg.types.builtins.INT8 && format !== "binary"
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
};
