/**
 * What `gw login` remembers between runs, in <config dir>/signin.json: which broker, how to
 * reach it, and how to get tokens for it. Never a token and never a secret: a service
 * principal's secret is remembered by the NAME of the environment variable that holds it, a
 * certificate or a federated token by its path. Tokens live in the token cache (keychain).
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { configDir } from "../config/paths.js";
import { ExitCode, GwError } from "../errors.js";

export const spMethod = z.discriminatedUnion("type", [
  /** The secret is read from this environment variable at every acquisition. */
  z.object({ type: z.literal("secret"), env: z.string().min(1) }).strict(),
  /** PEM file with the certificate and its private key. */
  z.object({ type: z.literal("certificate"), path: z.string().min(1) }).strict(),
  /** A file holding a federated (workload identity) token, re-read at every acquisition. */
  z.object({ type: z.literal("federated"), tokenFile: z.string().min(1) }).strict(),
]);
export type SpMethod = z.infer<typeof spMethod>;

const common = {
  version: z.literal(1),
  broker: z.string().min(1),
  caFile: z.string().min(1).optional(),
  /** https://host/tenant */
  authority: z.string().min(1),
  clientId: z.string().min(1),
  scopes: z.array(z.string().min(1)).min(1),
  signedInAt: z.string(),
};

export const signInState = z.discriminatedUnion("kind", [
  z
    .object({
      ...common,
      kind: z.literal("user"),
      /** MSAL's key for the account in the token cache. */
      homeAccountId: z.string().min(1),
      username: z.string().optional(),
    })
    .strict(),
  z
    .object({
      ...common,
      kind: z.literal("service-principal"),
      tenantId: z.string().min(1),
      method: spMethod,
    })
    .strict(),
]);
export type SignInState = z.infer<typeof signInState>;
export type UserSignIn = Extract<SignInState, { kind: "user" }>;
export type ServicePrincipalSignIn = Extract<SignInState, { kind: "service-principal" }>;

export function signInPath(): string {
  return join(configDir(), "signin.json");
}

/** The remembered sign-in, or null when there is none. A damaged file is an error that says so. */
export function readSignIn(): SignInState | null {
  const path = signInPath();
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new GwError("signin_unreadable", `cannot read ${path}: ${(err as Error).message}`, {
      exitCode: ExitCode.config,
      cause: err,
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const r = signInState.safeParse(parsed);
  if (!r.success) {
    throw new GwError("signin_invalid", `${path} is damaged or from another gw version`, {
      exitCode: ExitCode.config,
      hint: "Run `gw logout`, then `gw login` again.",
    });
  }
  return r.data;
}

export function writeSignIn(state: SignInState): void {
  const checked = signInState.parse(state);
  const dir = configDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = signInPath();
  const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify(checked, null, 2) + "\n", { mode: 0o600, flag: "wx" });
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new GwError("signin_unwritable", `cannot save ${path}: ${(err as Error).message}`, {
      exitCode: ExitCode.config,
      cause: err,
    });
  }
}

/** Forgets the sign-in; true when there was one. */
export function removeSignIn(): boolean {
  try {
    rmSync(signInPath());
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}
