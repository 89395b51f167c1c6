import { readFileSync } from "node:fs";
import { createSecureContext, rootCertificates, type SecureContext } from "node:tls";

/**
 * TLS contexts built once per CA file. Passing `ca` to every connect makes Node build a new
 * context each time (re-parsing every root certificate: ~19 ms of CPU per connection with the
 * system roots); a shared context costs nothing per connection.
 */
const cache = new Map<string, SecureContext>();

function cached(key: string, make: () => SecureContext): SecureContext {
  let ctx = cache.get(key);
  if (!ctx) {
    ctx = make();
    cache.set(key, ctx);
  }
  return ctx;
}

/** The system roots plus a private CA (a broker or identity provider behind a private CA). */
export function contextTrusting(caFile: string): SecureContext {
  return cached(`roots+${caFile}`, () =>
    createSecureContext({ ca: [...rootCertificates, readFileSync(caFile, "utf8")] }),
  );
}

/** Only the given CA, as libpq's sslrootcert does (a database target's own CA). */
export function contextTrustingOnly(caFile: string): SecureContext {
  return cached(`only+${caFile}`, () => createSecureContext({ ca: readFileSync(caFile) }));
}
