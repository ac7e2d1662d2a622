import type { Command } from 'commander';
import { existingBundle } from '../flag-values.js';
import { withExamples } from '../help-text.js';
import type { CliIO } from '../io.js';
import { formatBytes } from '../output/format.js';
import { writeJson } from '../output/json-output.js';

export function registerInspect(program: Command, io: CliIO): void {
  const command = program
    .command('inspect')
    .description('Show what a bundle holds: components, services, requirements, signature')
    .argument(
      '<bundle>',
      'bundle tar, split bundle (its .tar.parts.json index) or directory',
      existingBundle(),
    )
    .option('--json', 'print only JSON on stdout')
    .option('--sbom', 'print the CycloneDX 1.6 SBOM the bundle carries (JSON) instead')
    .action(async (bundlePath: string, flags: { json?: boolean; sbom?: boolean }) => {
      if (flags.sbom) {
        const { readBundleSbom } = await import('../../core/bundle/read-bundle-sbom.js');
        // Byte for byte as stored: the digest in the bundle manifest covers these bytes.
        io.stdout.write((await readBundleSbom(bundlePath)).bytes);
        return;
      }
      const [{ inspectBundle }, { serviceSummary }] = await Promise.all([
        import('../../core/bundle/inspect-bundle.js'),
        import('../../core/runtimes/registry.js'),
      ]);
      const summary = await inspectBundle(bundlePath);
      if (flags.json) {
        writeJson(io, summary);
        return;
      }
      const lines = [
        `${summary.name} ${summary.version}  (format ${summary.formatVersion}, ${formatBytes(summary.totalSize)})`,
        `  manifest   ${summary.manifestDigest}`,
        `  signature  ${summary.signed ? `minisign key ${summary.keyId}` : 'none'}`,
        `  sbom       ${summary.sbom === null ? 'none (written before SBOMs; rebuild to get one)' : `CycloneDX 1.6, ${summary.sbom.digest} (inspect --sbom prints it)`}`,
        `  cli        ${summary.cli === null ? 'none (bundled with --no-cli, or a delta)' : `apertus/ (apertus ${summary.cli.version ?? '?'}, ${summary.cli.files} files, ${formatBytes(summary.cli.bytes)}): tar -xf the bundle apertus/`}`,
        ...(summary.delta === null
          ? []
          : [
              `  delta      since ${summary.delta.base ? `${summary.delta.base.name} ${summary.delta.base.version} (${summary.delta.base.manifestDigest})` : 'a list of digests'}; leaves out ${summary.delta.omittedBlobs} blobs (${formatBytes(summary.delta.omittedBytes)}) the host must already hold`,
            ]),
        ...summary.components.map(
          (c) =>
            `  component  ${c.name.padEnd(10)} ${c.kind.padEnd(8)} ${String(c.layers).padStart(4)} layers ${formatBytes(c.bytes).padStart(10)}`,
        ),
        ...summary.services.map(
          (s) => `  service    ${s.name.padEnd(10)} ${s.runtime} ${serviceSummary(s)} on port ${s.port}`,
        ),
      ];
      io.stdout.write(`${lines.join('\n')}\n`);
    });
  withExamples(command, [
    { run: 'inspect out/demo-0.1.0.tar', does: 'components, services, requirements, signature' },
    { run: 'inspect out/demo-0.1.0.tar --sbom > sbom.json', does: "the bundle's CycloneDX SBOM" },
  ]);
}
