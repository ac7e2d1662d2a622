/**
 * The inventory: which hosts to check (and install), how to reach each, and where its
 * install root is. One zod schema validates the YAML at the boundary and gives editors
 * the JSON Schema; errors name the file, the YAML path and the line, as recipes do.
 *
 *   apiVersion: apertus.dev/v1
 *   kind: Inventory
 *   defaults: { identity: ~/.ssh/id_ed25519, knownHosts: ./known_hosts, root: /var/lib/apertus }
 *   hosts:
 *     - { name: gpu-01, address: root@10.0.0.5 }
 *     - { name: gpu-02, address: admin@10.0.0.6:2222, root: /srv/apertus }
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { ApertusError } from '../errors.js';
import { parseHostAddress } from '../host/host-address.js';
import type { CheckTarget } from '../operations/check.js';
import { locateIssue, type RecipeProblem } from '../spec/load-recipe.js';
import { RECIPE_API_VERSION } from '../spec/recipe-schema.js';
import { DEFAULT_HOST_ROOT } from '../target/layout.js';

export const INVENTORY_KIND = 'Inventory';

const hostName = z
  .string()
  .regex(/^[A-Za-z0-9]([A-Za-z0-9._-]{0,62})$/, 'use letters, digits, dots, dashes and underscores (max 63)');

const address = z
  .string()
  .min(1)
  .superRefine((value, ctx) => {
    try {
      parseHostAddress(value, { defaultUser: 'root' });
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
    }
  })
  .describe('USER@ADDRESS[:PORT], e.g. root@10.0.0.5 or admin@[fe80::1%eth0]:2222');

const filePath = z.string().min(1).describe('a path, relative to the inventory file, or starting with ~/');

const root = z
  .string()
  .regex(/^\//, 'the install root is an absolute path on the host')
  .describe(`install root on the host (default ${DEFAULT_HOST_ROOT})`);

const connection = {
  identity: filePath.optional().describe('SSH private key (default: the SSH agent, then ~/.ssh/id_*)'),
  knownHosts: filePath
    .optional()
    .describe('known_hosts file to verify host keys with (default ~/.ssh/known_hosts)'),
  root: root.optional(),
  acceptNewHostKey: z.boolean().optional().describe('trust and record a host key seen for the first time'),
};

const inventoryHost = z.object({ name: hostName.optional(), address, ...connection }).strict();

export const inventorySchema = z
  .object({
    apiVersion: z.literal(RECIPE_API_VERSION),
    kind: z.literal(INVENTORY_KIND),
    defaults: z.object(connection).strict().optional(),
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
    });
  });

export type Inventory = z.infer<typeof inventorySchema>;

export interface InventoryHost {
  name: string;
  address: string;
  /** Absolute on this machine. */
  identity?: string;
  knownHosts?: string;
  root: string;
  acceptNewHostKey: boolean;
}

export interface LoadedInventory {
  file: string;
  hosts: InventoryHost[];
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
    hint: `Write it as apiVersion: ${RECIPE_API_VERSION}, kind: ${INVENTORY_KIND}, and hosts: a list of { name, address, identity, knownHosts, root }.`,
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
  const { defaults = {}, hosts } = parsed.data;
  return {
    file,
    hosts: hosts.map((host): InventoryHost => {
      const identity = resolvePath(file, host.identity ?? defaults.identity);
      const knownHosts = resolvePath(file, host.knownHosts ?? defaults.knownHosts);
      return {
        name: host.name ?? host.address,
        address: host.address,
        ...(identity ? { identity } : {}),
        ...(knownHosts ? { knownHosts } : {}),
        root: host.root ?? defaults.root ?? DEFAULT_HOST_ROOT,
        acceptNewHostKey: host.acceptNewHostKey ?? defaults.acceptNewHostKey ?? false,
      };
    }),
  };
}

/** The check (and install) targets of an inventory. */
export function inventoryTargets(inventory: LoadedInventory): CheckTarget[] {
  return inventory.hosts.map((host) => ({
    name: host.name,
    root: host.root,
    target: {
      kind: 'ssh',
      address: host.address,
      identityFile: host.identity,
      knownHostsFile: host.knownHosts,
      acceptNewHostKey: host.acceptNewHostKey,
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
