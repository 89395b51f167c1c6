// Writes the generated configuration reference: the reference section of docs/configuration.md
// and schema/broker-config.schema.json, from the compiled config schema. Run it as
// `npm run docs:config` (which builds first); test/config/reference.test.ts fails until the
// committed files are what this writes.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { stdout } from "node:process";
import { fileURLToPath } from "node:url";
import * as prettier from "prettier";
import { configDocsFiles } from "../dist/src/config/reference.js";

const root = dirname(dirname(fileURLToPath(import.meta.url)));

/** Formatted as `npm run format` would (the drift test formats the same way). */
async function format(text, file) {
  const options = (await prettier.resolveConfig(file)) ?? {};
  return prettier.format(text, { ...options, filepath: file });
}

for (const { file, content } of await configDocsFiles(root, format)) {
  mkdirSync(dirname(join(root, file)), { recursive: true });
  writeFileSync(join(root, file), content);
  stdout.write(`wrote ${file}\n`);
}
