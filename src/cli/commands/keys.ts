import type { Command } from 'commander';
import { parseKeyName, parseScopes } from '../../core/runtimes/gateway/api-key-names.js';
import { outputPrefix } from '../flag-values.js';
import { withExamples } from '../help-text.js';
import { runInterruptible } from '../interrupt.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../output/json-output.js';
import { type HostTargetFlags, hostTarget, withHostTargetOptions } from './host-target.js';

export function registerKeys(program: Command, io: CliIO): void {
  const keys = program
    .command('keys')
    .description('Manage bundle signing keys (minisign format) and gateway API keys');
  const generate = keys
    .command('generate')
    .description('Generate an Ed25519 key pair: PREFIX.key (secret, mode 0600) and PREFIX.pub')
    .requiredOption(
      '-o, --out <prefix>',
      'path prefix of the two files, e.g. keys/release',
      outputPrefix('--out'),
    )
    .option('--json', 'print only JSON on stdout')
    .action(async (flags: { out: string; json?: boolean }) => {
      const { generateKeyPair } = await import('../../core/sign/keys.js');
      const pair = await generateKeyPair(flags.out);
      if (flags.json) writeJson(io, pair);
      else {
        io.stdout.write(`secret key ${pair.secretKeyPath} (keep it off the bundle media)\n`);
        io.stdout.write(`public key ${pair.publicKeyPath} (key id ${pair.keyId})\n`);
        io.stdout.write(`verify with: minisign -Vm SHA256SUMS -p ${pair.publicKeyPath}\n`);
      }
    });
  withExamples(generate, [
    {
      run: 'keys generate -o keys/release',
      does: 'keys/release.key signs bundles (bundle --sign), keys/release.pub checks them (verify --key)',
    },
  ]);
  registerApiKeys(keys, io);
}

interface ApiKeyFlags extends HostTargetFlags {
  json?: boolean;
}

/** `keys api create|list|revoke`: the gateway's API keys on a host (core/operations/api-keys.ts). */
function registerApiKeys(keys: Command, io: CliIO): void {
  const api = keys
    .command('api')
    .description("The gateway's API keys on a host: the host keeps only their hashes");
  const withFlags = (command: Command) =>
    withHostTargetOptions(command, { local: 'this machine' }).option('--json', 'print only JSON on stdout');
  const hint = 'Run `apertus keys api list` to see what the host holds, then the command again.';

  const create = withFlags(
    api
      .command('create')
      .description('Make a key, store its hash on the host and print the key once')
      .argument('<name>', 'the name audit logs record for this key (never reused)', parseKeyName)
      .option(
        '--scope <list>',
        'comma-separated: chat, embeddings, rag, rag:COLLECTION, admin',
        parseScopes,
        ['chat', 'embeddings'],
      ),
  ).action(async (name: string, flags: ApiKeyFlags & { scope: string[] }) => {
    const { createApiKey } = await import('../../core/operations/api-keys.js');
    const target = await hostTarget(flags, io);
    const made = await runInterruptible(io, hint, (signal) =>
      createApiKey({ target, root: flags.root, name, scopes: flags.scope, signal }),
    );
    if (flags.json) writeJson(io, made);
    else {
      io.stdout.write(`${made.key}\n`);
      io.stderr.write(
        `key "${made.name}" (${made.scopes.join(',')}, fingerprint ${made.fingerprint}) created on ${made.host}.\n` +
          'The key is shown this once and stored nowhere: give it to its user now.\n',
      );
    }
  });
  withExamples(create, [
    {
      run: 'keys api create analytics --scope chat,rag:contracts --host root@10.0.0.5',
      does: 'a key for one app',
    },
  ]);

  const list = withFlags(
    api.command('list').description('List the keys a host holds: names, scopes, fingerprints'),
  ).action(async (flags: ApiKeyFlags) => {
    const { listApiKeys } = await import('../../core/operations/api-keys.js');
    const target = await hostTarget(flags, io);
    const list = await runInterruptible(io, hint, (signal) =>
      listApiKeys({ target, root: flags.root, signal }),
    );
    if (flags.json) writeJson(io, list);
    else if (list.keys.length === 0) io.stdout.write(`No API keys on ${list.host}.\n`);
    else
      for (const k of list.keys)
        io.stdout.write(
          `${k.name}  ${k.scopes.join(',')}  ${k.fingerprint}  created ${k.created}${k.revoked ? `  REVOKED ${k.revoked}` : ''}\n`,
        );
  });

  const revoke = withFlags(
    api
      .command('revoke')
      .description('Revoke a key; the running gateway refuses it from the next request on')
      .argument('<name>', 'the key name', parseKeyName),
  ).action(async (name: string, flags: ApiKeyFlags) => {
    const { revokeApiKey } = await import('../../core/operations/api-keys.js');
    const target = await hostTarget(flags, io);
    const revoked = await runInterruptible(io, hint, (signal) =>
      revokeApiKey({ target, root: flags.root, name, signal }),
    );
    if (flags.json) writeJson(io, revoked);
    else
      io.stdout.write(
        `key "${revoked.name}" ${revoked.changed ? 'revoked' : 'was already revoked'} (${revoked.revoked}).\n`,
      );
  });
  withExamples(list, [
    { run: 'keys api list --host root@10.0.0.5 --json', does: 'names, scopes and fingerprints, no keys' },
  ]);
  withExamples(revoke, [
    {
      run: 'keys api revoke analytics --host root@10.0.0.5',
      does: 'the gateway refuses the key from its next request on',
    },
  ]);
}
