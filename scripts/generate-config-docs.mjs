#!/usr/bin/env node
// Writes schema/config.schema.json and docs/configuration.md from the configuration
// schema, as compiled in dist/ (`npm run schema:generate` builds first). A test
// regenerates both in memory and fails when a committed file is stale.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { configJsonSchemaText, configurationMarkdown } = await import(join(root, 'dist/config/docs.js'));

const outputs = [
  ['schema/config.schema.json', configJsonSchemaText()],
  ['docs/configuration.md', configurationMarkdown()],
];
for (const [file, text] of outputs) {
  mkdirSync(dirname(join(root, file)), { recursive: true });
  writeFileSync(join(root, file), text);
  console.log(`wrote ${file}`);
}
