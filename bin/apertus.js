#!/usr/bin/env node
// Plain JavaScript on purpose: it must run, and say something useful, on any Node version.
const [major] = process.versions.node.split('.').map(Number);
if (major < 20) {
  process.stderr.write(`apertus needs Node.js 20 or newer; this is ${process.version}.\n`);
  process.exit(2);
}
const { main } = await import('../dist/cli/main.js');
process.exitCode = await main(process.argv.slice(2));
