#!/usr/bin/env node
// Plain JavaScript on purpose: it must run, and say something useful, on any Node version.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const [major] = process.versions.node.split('.').map(Number);
if (major < 20) {
  process.stderr.write(`apertus needs Node.js 20 or newer; this is ${process.version}.\n`);
  process.exit(2);
}
// A source checkout runs from dist/, which `npm run build` writes (`npm ci` runs it too,
// through the prepare script, unless scripts are off): say so instead of a stack trace.
const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  process.stderr.write(
    `error[not-built]: apertus is not built: ${fileURLToPath(entry)} is missing.\nhint: Run \`npm run build\` in ${root}, then run apertus again.\n`,
  );
  process.exit(1);
}
// A reader that stops early (`apertus --help | head`) closes the pipe: not an error of ours.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? 0);
  });
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
