/**
 * The inventory: which hosts to check and install, how to reach each, where its install
 * root is, and the groups `--limit` selects by. One zod schema validates the YAML at the
 * boundary and gives editors the JSON Schema; errors name the file, the YAML path and the
 * line, as recipes do.
 *
 *   apiVersion: apertus.dev/v1
 *   kind: Inventory
 *   defaults: { user: root, identity: ~/.ssh/id_ed25519, knownHosts: ./known_hosts }
 *   groups:
 *     rack-a: [gpu-01, gpu-02]
 *   hosts:
 *     - { name: gpu-01, address: 10.0.0.5 }
 *     - { name: gpu-02, address: 10.0.0.6, user: admin, port: 2222, root: /srv/apertus, become: true }
 *
 * Groups are one map at the top (not a list on each host) so that a group's members are
 * read in one place, and a typo in a member is an error at its line instead of a new group.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { homedir } from 'node:os';
import path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { ApertusError } from '../errors.js';
import { formatHostAddress, parseHostAddress } from '../host/host-address.js';
import { parseJumpList } from '../host/jump-list.js';
import type { CheckTarget } from '../operations/check.js';
import { DEFAULT_HOST_ROOT } from '../target/layout.js';
import { locateIssue, type RecipeProblem } from './load-recipe.js';
import { RECIPE_API_VERSION } from './recipe-schema.js';

export const INVENTORY_KIND = 'Inventory';

/** `--limit all` selects every host, so no group may take the name. */
const ALL = 'all';
const NAME_RULE = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,62})$/;
const NAME_MESSAGE = 'use letters, digits, dots, dashes and underscores (max 63)';

const hostName = z.string().regex(NAME_RULE, NAME_MESSAGE);

/** Parses `[USER@]ADDRESS[:PORT]` and says which parts the text itself named. */
function addressParts(value: string): { user?: string; host: string; port?: number } {
  const parsed = parseHostAddress(value, { defaultUser: '', defaultPort: -1 });
  return {
    host: parsed.host,
    ...(parsed.user === '' ? {} : { user: parsed.user }),
    ...(parsed.port === -1 ? {} : { port: parsed.port }),
  };
}

const address = z
  .string()
  .min(1)
  .superRefine((value, ctx) => {
    try {
      addressParts(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
    }
  })
  .describe('[USER@]ADDRESS[:PORT], e.g. 10.0.0.5, root@10.0.0.5 or admin@[fe80::1%eth0]:2222');

const user = z
  .string()
  .min(1)
  .superRefine((value, ctx) => {
    try {
      // The same rule as a user inside an address: no blanks, ':', '/', control characters or leading '-'.
      parseHostAddress(`${value}@localhost`);
    } catch {
      ctx.addIssue({ code: 'custom', message: `'${value}' is not a valid user name` });
    }
  })
  .describe('SSH user (default root)');

const port = z.number().int().min(1).max(65535).describe('SSH port (default 22)');

const filePath = z.string().min(1).describe('a path, relative to the inventory file, or starting with ~/');

const root = z
  .string()
  .regex(/^\//, 'the install root is an absolute path on the host')
  .refine((value) => value !== '/' && !value.split('/').includes('..'), {
    message: "the install root is a directory of its own: not / and without '..'",
  })
  .describe(`install root on the host (default ${DEFAULT_HOST_ROOT})`);

const connection = {
  user: user.optional(),
  port: port.optional(),
  identity: filePath.optional().describe('SSH private key (default: the SSH agent, then ~/.ssh/id_*)'),
  knownHosts: filePath
    .optional()
    .describe('known_hosts file to verify host keys with (default ~/.ssh/known_hosts)'),
  root: root.optional(),
  acceptNewHostKey: z.boolean().optional().describe('trust and record a host key seen for the first time'),
  jump: z
    .string()
    .min(1)
    .superRefine((value, ctx) => {
      try {
        parseJumpList(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
      }
    })
    .optional()
    .describe('jump hosts, USER@HOST[:PORT][,...] in order (as ssh -J), or none; beats ProxyJump'),
  become: z
    .boolean()
    .optional()
    .describe(
      'run every command as root through sudo: the user is not root (sudo -n, or APERTUS_BECOME_PASSWORD)',
    ),
};

/** What the host's gateway takes from the operator: never bundled, given per host. */
const gateway = {
  tlsCert: filePath
    .optional()
    .describe("the gateway's TLS certificate for this host (PEM; install uploads it 0600, as --tls-cert)"),
  tlsKey: filePath.optional().describe('its private key (PEM, unencrypted; as --tls-key)'),
  exposeAddress: z
    .string()
    .refine((value) => isIP(value) !== 0, { message: 'an IPv4 or IPv6 address, e.g. 10.0.0.5' })
    .optional()
    .describe("the address the gateway binds on this host, instead of the recipe's (as --expose-address)"),
};

const inventoryHost = z
  .object({ name: hostName.optional(), address, ...connection, ...gateway })
  .strict()
  .refine((host) => (host.tlsCert === undefined) === (host.tlsKey === undefined), {
    message: 'tlsCert and tlsKey go together',
    path: ['tlsKey'],
  });

export const inventorySchema = z
  .object({
    apiVersion: z.literal(RECIPE_API_VERSION),
    kind: z.literal(INVENTORY_KIND),
    defaults: z.object(connection).strict().optional(),
    groups: z
      .record(z.string().regex(NAME_RULE, NAME_MESSAGE), z.array(z.string()).min(1, 'list at least one host'))
      .optional()
      .describe('group name -> the names of its hosts; `--limit GROUP` selects them'),
    hosts: z.array(inventoryHost).min(1, 'list at least one host'),
  })
  .strict()
  .superRefine((inventory, ctx) => {
    const seen = new Map<string, number>();
    inventory.hosts.forEach((host, i) => {
      const name = host.name ?? host.address;
      const first = seen.get(name);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['hosts', i, host.name ? 'name' : 'address'],
          message: `"${name}" is already hosts[${first}]; give each host its own name`,
        });
      }
      seen.set(name, i);
      let parts: ReturnType<typeof addressParts>;
      try {
        parts = addressParts(host.address);
      } catch {
        return; // reported by the address rule
      }
      // Said twice is said ambiguously: which one would an operator expect to win?
      if (parts.user !== undefined && host.user !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['hosts', i, 'user'],
          message: `the address already names user "${parts.user}"; name the user once`,
        });
      if (parts.port !== undefined && host.port !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['hosts', i, 'port'],
          message: `the address already names port ${parts.port}; name the port once`,
        });
    });
    for (const [group, members] of Object.entries(inventory.groups ?? {})) {
      if (group === ALL)
        ctx.addIssue({
          code: 'custom',
          path: ['groups', group],
          message: '"all" always means every host; name the group otherwise',
        });
      else if (seen.has(group))
        ctx.addIssue({
          code: 'custom',
          path: ['groups', group],
          message: `"${group}" is also a host name; --limit ${group} would be ambiguous`,
        });
      members.forEach((member, j) => {
        if (!seen.has(member))
          ctx.addIssue({
            code: 'custom',
            path: ['groups', group, j],
            message: `no host is named "${member}"`,
          });
        else if (members.indexOf(member) !== j)
          ctx.addIssue({
            code: 'custom',
            path: ['groups', group, j],
            message: `"${member}" is listed twice`,
          });
      });
    }
  });

export type Inventory = z.infer<typeof inventorySchema>;

export interface InventoryHost {
  name: string;
  /** `user@host:port`, every part filled in. */
  address: string;
  user: string;
  port: number;
  /** Absolute on this machine. */
  identity?: string;
  knownHosts?: string;
  root: string;
  acceptNewHostKey: boolean;
  /** Jump hosts, `USER@HOST[:PORT][,...]` or `none`. */
  jump?: string;
  /** Run every command as root through sudo. */
  become: boolean;
  /** The groups the host is in, in the order the inventory lists them. */
  groups: string[];
  /** The gateway's TLS files on this machine (absolute), and the address it binds on this host. */
  gateway?: { tls?: { certPath: string; keyPath: string }; exposeAddress?: string };
}

export interface LoadedInventory {
  file: string;
  hosts: InventoryHost[];
  groups: Record<string, string[]>;
}

function resolvePath(file: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value === '~' || value.startsWith('~/')) return path.join(homedir(), value.slice(1));
  return path.resolve(path.dirname(file), value);
}

function inventoryError(file: string, problems: RecipeProblem[], what: string): ApertusError {
  const lines = problems.map(
    (p) => `  ${p.file}:${p.line}:${p.column}${p.path ? ` ${p.path}` : ''}: ${p.message}`,
  );
  return new ApertusError('inventory-invalid', `The inventory ${file} ${what}:\n${lines.join('\n')}`, {
    hint: `Write it as apiVersion: ${RECIPE_API_VERSION}, kind: ${INVENTORY_KIND}, groups: { NAME: [hosts] }, and hosts: a list of { name, address, user, port, identity, knownHosts, jump, root, become, tlsCert, tlsKey, exposeAddress }.`,
    details: { problems },
  });
}

export async function loadInventory(inventoryPath: string): Promise<LoadedInventory> {
  const file = path.resolve(inventoryPath);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ApertusError(
      'inventory-not-found',
      `Cannot read the inventory ${inventoryPath}: ${(error as Error).message}.`,
      {
        hint: 'Pass the path of a YAML file listing the hosts (apiVersion: apertus.dev/v1, kind: Inventory).',
        cause: error,
      },
    );
  }
  return parseInventory(file, text);
}

/** Validate inventory text; `file` is where it came from, for errors and relative paths. */
export function parseInventory(file: string, text: string): LoadedInventory {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const problems = doc.errors.map((error) => {
      const pos = lineCounter.linePos(error.pos[0]);
      return { file, path: '', line: pos.line, column: pos.col, message: error.message.split('\n')[0] ?? '' };
    });
    throw inventoryError(file, problems, 'is not valid YAML');
  }
  const parsed = inventorySchema.safeParse(doc.toJS());
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => locateIssue(file, doc, lineCounter, issue));
    throw inventoryError(
      file,
      problems,
      `does not match the inventory schema (${RECIPE_API_VERSION}, kind ${INVENTORY_KIND})`,
    );
  }
  const { defaults = {}, hosts, groups = {} } = parsed.data;
  return {
    file,
    groups,
    hosts: hosts.map((host): InventoryHost => {
      const name = host.name ?? host.address;
      const parts = addressParts(host.address);
      const reach = {
        user: parts.user ?? host.user ?? defaults.user ?? 'root',
        host: parts.host,
        port: parts.port ?? host.port ?? defaults.port ?? 22,
      };
      const identity = resolvePath(file, host.identity ?? defaults.identity);
      const knownHosts = resolvePath(file, host.knownHosts ?? defaults.knownHosts);
      const jump = host.jump ?? defaults.jump;
      const certPath = resolvePath(file, host.tlsCert);
      const keyPath = resolvePath(file, host.tlsKey);
      const gateway = {
        ...(certPath && keyPath ? { tls: { certPath, keyPath } } : {}),
        ...(host.exposeAddress ? { exposeAddress: host.exposeAddress } : {}),
      };
      return {
        name,
        address: formatHostAddress(reach),
        user: reach.user,
        port: reach.port,
        ...(identity ? { identity } : {}),
        ...(knownHosts ? { knownHosts } : {}),
        root: host.root ?? defaults.root ?? DEFAULT_HOST_ROOT,
        acceptNewHostKey: host.acceptNewHostKey ?? defaults.acceptNewHostKey ?? false,
        ...(jump ? { jump } : {}),
        become: host.become ?? defaults.become ?? false,
        groups: Object.keys(groups).filter((group) => groups[group]?.includes(name)),
        ...(Object.keys(gateway).length > 0 ? { gateway } : {}),
      };
    }),
  };
}

/**
 * `*` and `?` as a shell reads them, everything else literal. Matched with the linear
 * two-pointer walk, not a regular expression: `*a*a*a*...b` from a command line must not
 * backtrack for minutes.
 */
export function globMatches(glob: string, name: string): boolean {
  let g = 0;
  let n = 0;
  let star = -1;
  let resume = 0;
  while (n < name.length) {
    if (g < glob.length && (glob[g] === '?' || glob[g] === name[n])) {
      g++;
      n++;
    } else if (g < glob.length && glob[g] === '*') {
      star = g++;
      resume = n;
    } else if (star !== -1) {
      g = star + 1;
      n = ++resume;
    } else return false;
  }
  while (g < glob.length && glob[g] === '*') g++;
  return g === glob.length;
}

/**
 * The hosts `--limit` selects, in inventory order. PATTERN is a comma-separated list; each
 * item is a host name, a group name, `all`, or a glob (`gpu-*`) over host and group names;
 * an item starting with `!` removes what it matches. An item that matches nothing is an
 * error, not an empty run: a typo must not install on fewer hosts than meant.
 */
export function selectHosts(inventory: LoadedInventory, pattern: string | undefined): InventoryHost[] {
  if (pattern === undefined) return inventory.hosts;
  const items = pattern.split(',').map((item) => item.trim());
  const fail = (message: string): never => {
    throw new ApertusError('limit-no-match', message, {
      hint: `--limit takes host names, group names, all, or globs (gpu-*), comma-separated; !NAME excludes. Hosts: ${inventory.hosts.map((h) => h.name).join(', ')}${Object.keys(inventory.groups).length ? `; groups: ${Object.keys(inventory.groups).join(', ')}` : ''}.`,
    });
  };
  if (items.some((item) => item === '' || item === '!'))
    fail(`--limit ${JSON.stringify(pattern)} has an empty item.`);
  const matching = (item: string): Set<string> => {
    const names = new Set<string>();
    if (item === ALL) for (const host of inventory.hosts) names.add(host.name);
    const glob = /[*?]/.test(item);
    const hit = (name: string) => (glob ? globMatches(item, name) : name === item);
    for (const host of inventory.hosts) if (hit(host.name)) names.add(host.name);
    for (const [group, members] of Object.entries(inventory.groups))
      if (hit(group)) for (const member of members) names.add(member);
    if (names.size === 0)
      fail(`--limit ${JSON.stringify(item)} matches no host or group of ${inventory.file}.`);
    return names;
  };
  const include = items.filter((item) => !item.startsWith('!'));
  const chosen = include.length === 0 ? new Set(inventory.hosts.map((h) => h.name)) : new Set<string>();
  for (const item of include) for (const name of matching(item)) chosen.add(name);
  for (const item of items.filter((i) => i.startsWith('!')))
    for (const name of matching(item.slice(1))) chosen.delete(name);
  const selected = inventory.hosts.filter((host) => chosen.has(host.name));
  if (selected.length === 0) fail(`--limit ${JSON.stringify(pattern)} leaves no host.`);
  return selected;
}

/** The check (and install) targets of inventory hosts. */
export function inventoryTargets(inventory: LoadedInventory | readonly InventoryHost[]): CheckTarget[] {
  const hosts = Array.isArray(inventory) ? inventory : (inventory as LoadedInventory).hosts;
  return hosts.map((host: InventoryHost) => ({
    name: host.name,
    root: host.root,
    ...(host.gateway ? { gateway: host.gateway } : {}),
    target: {
      kind: 'ssh',
      address: host.address,
      identityFile: host.identity,
      knownHostsFile: host.knownHosts,
      acceptNewHostKey: host.acceptNewHostKey,
      jump: host.jump,
      ...(host.become ? { become: {} } : {}),
    },
  }));
}

export function inventoryJsonSchema(): Record<string, unknown> {
  return {
    $id: 'https://apertus.dev/schema/inventory.v1.json',
    title: `apertus inventory (${RECIPE_API_VERSION}, kind ${INVENTORY_KIND})`,
    ...z.toJSONSchema(inventorySchema, { io: 'input', unrepresentable: 'any' }),
  };
}
