import type { Command } from 'commander';
import { ApertusError } from '../../core/errors.js';
import { withExamples } from '../help-text.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../output/json-output.js';

interface TlsFlags {
  json?: boolean;
  days?: string;
}

function days(value: string): number {
  if (!/^[0-9]{1,5}$/.test(value) || Number(value) < 1)
    throw new ApertusError('usage', `--days must be a whole number of days, got "${value}".`, {
      hint: 'Pass --days 825 for a host certificate, --days 3650 for a CA.',
    });
  return Number(value);
}

/** `tls ca|cert`: an offline CA and the gateway's per-host certificates (core/tls/openssl-ca.ts). */
export function registerTls(program: Command, io: CliIO): void {
  const tls = program
    .command('tls')
    .description(
      "An offline CA and per-host certificates for the gateway, made with openssl (or bring your own PKI's)",
    );
  const ca = tls
    .command('ca')
    .description('Make a CA: DIR/ca.key (0600, keep it offline) and DIR/ca.pem (give it to the clients)')
    .requiredOption('--out <dir>', 'an existing directory; existing files are never overwritten')
    .option('--name <cn>', 'the CA common name', 'apertus offline CA')
    .option('--days <n>', 'validity', days, 3650)
    .option('--json', 'print only JSON on stdout')
    .action(async (flags: TlsFlags & { out: string; name: string; days: number }) => {
      const { createCa } = await import('../../core/tls/openssl-ca.js');
      const files = await createCa({ dir: flags.out, name: flags.name, days: flags.days });
      if (flags.json) writeJson(io, files);
      else
        io.stdout.write(`CA key ${files.key} (0600; keep it off the hosts)\nCA certificate ${files.cert}\n`);
    });
  withExamples(ca, [{ run: 'tls ca --out lab-ca', does: 'lab-ca/ca.key and lab-ca/ca.pem' }]);
  const cert = tls
    .command('cert')
    .description("Issue a host's certificate: PREFIX.key (0600) and PREFIX.pem, signed by the CA")
    .requiredOption('--ca <dir>', 'the directory `tls ca` wrote')
    .requiredOption('--name <dns-or-ip...>', 'a DNS name or IP address clients use (repeat for more)')
    .requiredOption('--out <prefix>', 'path prefix of the two files, e.g. certs/gpu1')
    .option('--days <n>', 'validity', days, 825)
    .option('--json', 'print only JSON on stdout')
    .action(async (flags: TlsFlags & { ca: string; name: string[]; out: string; days: number }) => {
      const { issueCertificate } = await import('../../core/tls/openssl-ca.js');
      const issued = await issueCertificate({
        caDir: flags.ca,
        names: flags.name,
        out: flags.out,
        days: flags.days,
      });
      if (flags.json) writeJson(io, issued);
      else
        io.stdout.write(
          `key ${issued.key} (0600)\ncertificate ${issued.cert} for ${issued.names.join(', ')}\n`,
        );
    });
  withExamples(cert, [
    {
      run: 'tls cert --ca lab-ca --name gpu1.lab --name 10.0.0.5 --out certs/gpu1',
      does: "gpu1's gateway certificate",
    },
  ]);
}
