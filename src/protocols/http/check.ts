import { readFileSync } from "node:fs";
import { readSecret } from "../../config/secrets.js";
import type { SecretRef } from "../../config/schema.js";
import type { HttpTargetConfig } from "./config.js";

/**
 * What `gw broker check` can find wrong with an http target before anyone connects: secrets
 * that cannot be read, TLS files that are missing. Messages never hold secrets.
 */
export function checkHttpTarget(
  name: string,
  t: HttpTargetConfig,
  secrets: (ref: SecretRef, what: string) => string = readSecret,
): string[] {
  const problems: string[] = [];
  const at = `connections.${name}.target`;
  const secret = (ref: SecretRef | undefined, field: string) => {
    if (!ref) return;
    try {
      secrets(ref, `${at}.${field}`);
    } catch (err) {
      problems.push((err as Error).message);
    }
  };
  for (const [h, ref] of Object.entries(t.headers ?? {})) secret(ref, `headers.${h}`);
  secret(t.bearer, "bearer");
  secret(t.basic?.password, "basic.password");
  const file = (path: string | undefined, field: string) => {
    if (!path) return;
    try {
      readFileSync(path);
    } catch (err) {
      problems.push(
        `${at}.${field}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
      );
    }
  };
  file(t.ca, "ca");
  file(t.clientCert?.cert, "clientCert.cert");
  file(t.clientCert?.key, "clientCert.key");
  return problems;
}
