/**
 * Where registry credentials come from, first match wins:
 *
 * 1. the options (a library caller passing them);
 * 2. APERTUS_REGISTRY_USERNAME + APERTUS_REGISTRY_PASSWORD, for every registry, or only for
 *    the registry named in APERTUS_REGISTRY_HOST when that is set (so a Docker Hub token is
 *    not offered to an internal registry the recipe also names);
 * 3. the login files podman and docker write (containers-auth.json(5)): REGISTRY_AUTH_FILE,
 *    else $XDG_RUNTIME_DIR/containers/auth.json, $XDG_CONFIG_HOME/containers/auth.json
 *    (~/.config/…), $DOCKER_CONFIG/config.json or ~/.docker/config.json; entries keyed by
 *    `registry/namespace/…` (longest match) or by registry, with `auth` = base64("user:pass").
 *    Credential helpers (`credsStore`, `credHelpers`) are not run.
 *
 * Credentials are read, never written anywhere; the registry client scrubs them from every
 * text it produces.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApertusError } from '../../errors.js';
import type { SourceContext } from '../types.js';
import { DOCKER_HUB } from './parse-oci-reference.js';

export interface RegistryCredentials {
  username: string;
  password: string;
}

type Env = SourceContext['env'];

export const USERNAME_VARIABLE = 'APERTUS_REGISTRY_USERNAME';
export const PASSWORD_VARIABLE = 'APERTUS_REGISTRY_PASSWORD';
export const HOST_VARIABLE = 'APERTUS_REGISTRY_HOST';

/** What docker login writes for Docker Hub, besides the plain registry name. */
const DOCKER_HUB_KEYS = [
  'docker.io',
  'index.docker.io',
  'registry-1.docker.io',
  'https://index.docker.io/v1/',
];

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

export async function findRegistryCredentials(
  reference: { registry: string; repository: string },
  env: Env,
  explicit?: RegistryCredentials,
): Promise<RegistryCredentials | undefined> {
  if (explicit !== undefined) return explicit;
  const username = nonEmpty(env[USERNAME_VARIABLE]);
  const password = nonEmpty(env[PASSWORD_VARIABLE]);
  if ((username === undefined) !== (password === undefined)) {
    throw new ApertusError(
      'oci-credentials-incomplete',
      `Only one of ${USERNAME_VARIABLE} and ${PASSWORD_VARIABLE} is set.`,
      { hint: `Set both (the password may be an access token), or neither.` },
    );
  }
  const onlyFor = nonEmpty(env[HOST_VARIABLE]);
  if (username !== undefined && password !== undefined) {
    if (onlyFor === undefined || sameRegistry(onlyFor, reference.registry)) return { username, password };
  }
  for (const path of authFilePaths(env)) {
    const found = await credentialsFromAuthFile(path, reference);
    if (found !== undefined) return found;
  }
  return undefined;
}

function sameRegistry(a: string, b: string): boolean {
  const norm = (value: string) => {
    const host = value
      .toLowerCase()
      .replace(/^https?:\/\//, '')
      .replace(/\/.*$/, '');
    return DOCKER_HUB_KEYS.includes(host) ? DOCKER_HUB : host;
  };
  return norm(a) === norm(b);
}

function authFilePaths(env: Env): string[] {
  const explicit = nonEmpty(env.REGISTRY_AUTH_FILE);
  if (explicit !== undefined) return [explicit];
  const paths: string[] = [];
  const runtimeDir = nonEmpty(env.XDG_RUNTIME_DIR);
  if (runtimeDir !== undefined) paths.push(join(runtimeDir, 'containers', 'auth.json'));
  const home = nonEmpty(env.HOME);
  const configHome =
    nonEmpty(env.XDG_CONFIG_HOME) ?? (home === undefined ? undefined : join(home, '.config'));
  if (configHome !== undefined) paths.push(join(configHome, 'containers', 'auth.json'));
  const dockerConfig =
    nonEmpty(env.DOCKER_CONFIG) ?? (home === undefined ? undefined : join(home, '.docker'));
  if (dockerConfig !== undefined) paths.push(join(dockerConfig, 'config.json'));
  return paths;
}

/** Keys to look up, most specific first: registry/ns/name, registry/ns, registry (and Hub aliases). */
function lookupKeys(reference: { registry: string; repository: string }): string[] {
  const parts = reference.repository.split('/');
  const hosts = reference.registry === DOCKER_HUB ? DOCKER_HUB_KEYS : [reference.registry];
  const keys: string[] = [];
  for (let n = parts.length; n >= 1; n--) keys.push(`${reference.registry}/${parts.slice(0, n).join('/')}`);
  for (const host of hosts) keys.push(host, `https://${host}`, `http://${host}`);
  return keys;
}

async function credentialsFromAuthFile(
  path: string,
  reference: { registry: string; repository: string },
): Promise<RegistryCredentials | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  let auths: Record<string, unknown>;
  try {
    const parsed = JSON.parse(text) as { auths?: unknown };
    if (typeof parsed.auths !== 'object' || parsed.auths === null) return undefined;
    auths = parsed.auths as Record<string, unknown>;
  } catch {
    // Never quote the file: it holds secrets.
    throw new ApertusError('oci-auth-file-invalid', `The registry login file ${path} is not valid JSON.`, {
      hint: 'Log in again with `podman login` or `docker login`, or point REGISTRY_AUTH_FILE at a valid file.',
    });
  }
  for (const key of lookupKeys(reference)) {
    const entry = auths[key] ?? auths[`${key}/`];
    const auth = (entry as { auth?: unknown } | undefined)?.auth;
    if (typeof auth !== 'string' || auth === '') continue;
    const decoded = Buffer.from(auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) continue;
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  return undefined;
}
