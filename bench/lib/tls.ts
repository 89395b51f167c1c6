/**
 * A throwaway CA and one server certificate (localhost and 127.0.0.1), made with the openssl
 * CLI. EC P-256 keys: generating them takes milliseconds.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface BenchCerts {
  /** Paths of PEM files. */
  caCert: string;
  cert: string;
  key: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`openssl ${args[0]} failed: ${stderr || String(err)}`, { cause: err });
  }
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

export function makeCerts(dir: string): BenchCerts {
  mkdirSync(dir, { recursive: true });
  const caCert = join(dir, "ca.crt");
  const caKey = join(dir, "ca.key");
  const cert = join(dir, "server.crt");
  const key = join(dir, "server.key");
  openssl(
    ["req", "-x509", ...EC, "-keyout", caKey, "-out", caCert, "-days", "30"]
      .concat(["-subj", "/CN=gw bench CA", "-addext", "basicConstraints=critical,CA:TRUE"])
      .concat(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
    dir,
  );
  const ext = join(dir, "server.ext");
  writeFileSync(
    ext,
    "basicConstraints=critical,CA:FALSE\n" +
      "keyUsage=critical,digitalSignature\n" +
      "extendedKeyUsage=serverAuth\n" +
      "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
  );
  openssl(
    ["req", "-new", ...EC, "-keyout", key, "-out", "server.csr", "-subj", "/CN=localhost"],
    dir,
  );
  openssl(
    [
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      caCert,
      "-CAkey",
      caKey,
      "-set_serial",
      "1",
    ].concat(["-days", "30", "-sha256", "-extfile", ext, "-out", cert]),
    dir,
  );
  chmodSync(caKey, 0o600);
  chmodSync(key, 0o600);
  return { caCert, cert, key };
}
