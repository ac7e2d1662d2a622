/**
 * `npm run bench -- --only transfer [--size 2GiB]`: the verified install of a bundle holding
 * one large model file against `scp` of the same file on the same cipher, into a demo host
 * (a network namespace with its own sshd); then the same install onto N such hosts at once
 * (one fleet batch) against one host. Both ratios are printed with their goals.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeBundle } from '../core/bundle/write-bundle.js';
import { createDemoHost, type DemoHost } from '../core/demo-host/demo-host.js';
import { connectSsh } from '../core/host/ssh-transport.js';
import { generateKeyPair, readSecretKey } from '../core/sign/keys.js';
import { describeMachine } from './machine.js';
import { findGnuTime, measureCommand, measureWorker, runProcess } from './measure.js';
import { opensshCipher, opensshTarget } from './openssh.js';
import { type BenchReport, formatSize, statisticOf } from './report.js';
import { type Measurement, runGroup } from './run-group.js';
import { type BenchHost, benchPlan } from './worker.js';

export interface TransferScenarioOptions {
  sizeBytes: number;
  runs: number;
  /** Hosts of the fleet install. */
  hosts: number;
  /** The temp dir the harness made and removes. */
  work: string;
  /** run.js, started as `run.js --worker JOB` for the apertus rows. */
  entry: string;
  signal: AbortSignal;
  log: (line: string) => void;
  writeRandomFile: (path: string, size: number, signal: AbortSignal) => Promise<void>;
}

/** The goals of issue 10: a verified install no slower than scp, N hosts within 1.2x of one. */
const GOALS = { scp: 1.0, fleet: 1.2 } as const;

export async function runTransferScenario(options: TransferScenarioOptions): Promise<BenchReport> {
  const { work, signal, log } = options;
  const machine = await describeMachine();
  const gnuTime = await findGnuTime();
  const shown = (text: string) => text.replaceAll(work, '$BENCH');
  const report: BenchReport = {
    sizeBytes: options.sizeBytes,
    runs: options.runs,
    statistic: statisticOf(options.runs),
    machine,
    results: [],
    skipped: [],
    upload: { demoHost: null, apertusCipher: null, opensshCipher: null, scpProtocol: null },
    notes: [],
    ratios: [],
  };
  const uid = process.getuid?.() ?? -1;
  if (uid !== 0) {
    report.skipped.push({
      group: 'transfer',
      reason: `not running as root (uid ${uid}): the demo hosts are network namespaces, which need root. Run it as root: sudo npm run bench -- --only transfer`,
    });
    return report;
  }

  const hosts: DemoHost[] = [];
  try {
    // The model, written once; the bundle holds it as one file layer, signed.
    const model = join(work, 'model', 'data.bin');
    await mkdir(join(work, 'model'), { recursive: true });
    const generated = performance.now();
    await options.writeRandomFile(model, options.sizeBytes, signal);
    const keys = await generateKeyPair(join(work, 'key', 'bench'));
    const written = await writeBundle(benchPlan(model), {
      outDir: join(work, 'bundle'),
      secretKey: await readSecretKey(keys.secretKeyPath),
    });
    log(
      `  data: ${((performance.now() - generated) / 1000).toFixed(2)} s to write the model and its bundle (${written.size} bytes)`,
    );

    hosts.push(
      ...(await Promise.all(
        Array.from({ length: options.hosts }, (_, i) =>
          createDemoHost({ workDir: join(work, `host${i + 1}`), mode: 'netns', signal }),
        ),
      )),
    );
    const benchHosts: BenchHost[] = hosts.map((host) => {
      if (!host.address || !host.identityFile || !host.knownHostsFile)
        throw new Error(`the demo host has no sshd (${host.reason})`);
      return {
        address: host.address,
        identityFile: host.identityFile,
        knownHostsFile: host.knownHostsFile,
        root: join(host.root, 'apertus'),
      };
    });
    const first = benchHosts[0] as BenchHost;
    report.upload.demoHost = hosts[0]?.reason ?? null;
    const transport = await connectSsh({ ...first, signal });
    report.upload.apertusCipher = transport.cipher;
    await transport.close();
    const openssh = opensshTarget(first);
    const sshArgs = [...openssh.options, '-p', openssh.port, openssh.destination];
    report.upload.opensshCipher = await opensshCipher(sshArgs, signal);
    report.upload.scpProtocol = 'sftp';

    const scpTarget = join(hosts[0]?.root ?? work, 'scp.bin');
    const scpArgv = [
      'scp',
      ...openssh.options,
      ...['-c', transport.cipher],
      ...['-P', openssh.port, model, `${openssh.destination}:${scpTarget}`],
    ];
    const fresh =
      (...paths: string[]) =>
      async () => {
        await runProcess(['rm', '-rf', ...paths], { signal });
        await runProcess(['sync'], { signal });
      };
    const install = (on: BenchHost[]) => () =>
      measureWorker(
        options.entry,
        { op: 'install', bundlePath: written.path, trustKeyPath: keys.publicKeyPath, hosts: on },
        signal,
      );
    const parts: Measurement['parts'] = (best) => [
      {
        operation: 'of which verify bundle (metadata, signed list)',
        seconds: Number(best.detail.verifySeconds),
        bytes: 0,
      },
      {
        operation: 'of which transfer (read+hash, send, host hash+write)',
        seconds: Number(best.detail.transferSeconds),
        bytes: options.sizeBytes,
      },
      {
        operation: 'of which connect, probe, lock, stage, switch, record',
        seconds: Number(best.detail.otherSeconds),
        bytes: 0,
      },
    ];
    const trueArgv = ['ssh', ...sshArgs, 'true'];
    const measurements: Measurement[] = [
      {
        // What every host command costs before it does anything: install runs about 16.
        tool: 'OpenSSH',
        operation: 'ssh host true (connect + one command, no data)',
        command: shown(trueArgv.join(' ')),
        bytes: 0,
        run: () => measureCommand(trueArgv, { signal, gnuTime, scratchDir: work }),
      },
      {
        tool: 'apertus',
        operation: 'install, 1 host (verified: hashed on both ends)',
        command: 'install({ bundlePath, target: host1, root, trustKeyPath })',
        bytes: options.sizeBytes,
        prepare: fresh(first.root),
        run: install([first]),
        parts,
      },
      {
        tool: 'OpenSSH',
        operation: `scp -c ${transport.cipher} (nothing verified)`,
        command: shown(scpArgv.join(' ')),
        bytes: options.sizeBytes,
        prepare: fresh(scpTarget),
        run: () => measureCommand(scpArgv, { signal, gnuTime, scratchDir: work }),
      },
    ];
    if (benchHosts.length > 1) {
      measurements.push({
        tool: 'apertus',
        operation: `install, ${benchHosts.length} hosts (fleet, one batch)`,
        command: `fleetInstall({ bundlePath, hosts: host1..host${benchHosts.length}, serial: 100%, forks: ${benchHosts.length} })`,
        bytes: options.sizeBytes * benchHosts.length,
        prepare: fresh(...benchHosts.map((h) => h.root)),
        run: install(benchHosts),
        parts,
      });
    }
    report.results = await runGroup('transfer', measurements, { runs: options.runs, signal, log });
    const seconds = (operation: string) =>
      report.results.find((row) => row.partOf === null && row.operation.startsWith(operation))?.seconds ??
      null;
    const one = seconds('install, 1 host');
    const scp = seconds('scp ');
    const fleet = seconds(`install, ${benchHosts.length} hosts`);
    const ratio = (a: number | null, b: number | null) => (a === null || b === null ? null : a / b);
    report.ratios = [
      {
        name: `verified install / scp (${formatSize(options.sizeBytes).split(' (')[0]}, ${transport.cipher})`,
        value: ratio(one, scp),
        goal: GOALS.scp,
      },
      ...(benchHosts.length > 1
        ? [{ name: `${benchHosts.length} hosts / 1 host`, value: ratio(fleet, one), goal: GOALS.fleet }]
        : []),
    ];
    report.notes.push(
      `Demo hosts: ${report.upload.demoHost}. Client, the hosts' sshd and their hashing all run on this machine's ${machine.cores} cores: the fleet row pays every host's decryption and hashing on the same CPUs, so it measures CPU, not a network link.`,
      `The install is the whole command: the bundle's metadata and signed checksum list are checked first (its model blob is hashed as it is sent, --full-verify hashes it before), then connect, probe, lock, one host command that receives every missing blob (hashed on this side as it is read and on the host as it arrives, stored only when both match), stage, switch, audit record. scp checks nothing on the host.`,
      `Ciphers: apertus (ssh2) negotiated ${report.upload.apertusCipher}; scp was given the same (-c); OpenSSH's default here is ${report.upload.opensshCipher}.`,
    );
    return report;
  } finally {
    await Promise.all(hosts.map((host) => host.teardown()));
    await rm(join(work, 'model'), { recursive: true, force: true });
  }
}
