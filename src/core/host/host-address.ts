import { isIP, isIPv6 } from 'node:net';
import { userInfo } from 'node:os';
import { ApertusError } from '../errors.js';

/** Where to reach a host over SSH: `user@host:port`, already validated. */
export interface HostAddress {
  user: string;
  /** Hostname, IPv4, or IPv6 without brackets (a zone such as `%veth0` is kept). */
  host: string;
  port: number;
}

export interface ParseHostAddressOptions {
  /**
   * User when the text names none. Default: the local user running apertus, as `ssh`
   * does, so `apertus install 10.0.0.5` means what `ssh 10.0.0.5` means.
   */
  defaultUser?: string;
  /** Default 22. */
  defaultPort?: number;
}

const EXAMPLE = 'root@10.0.0.5, admin@gpu-01.lab:2222 or root@[fe80::1%eth0]:22';

/**
 * Parse `[USER@]ADDR[:PORT]`. IPv6 goes in brackets when a port follows (`[fe80::1]:2222`);
 * a bare IPv6 without a port is accepted too. The user is split at the last `@`, as ssh
 * does, so directory users such as `alice@corp@host` work.
 */
export function parseHostAddress(text: string, options: ParseHostAddressOptions = {}): HostAddress {
  const input = text.trim();
  const fail = (why: string): never => {
    throw new ApertusError('host-address-invalid', `Invalid host address '${text}': ${why}.`, {
      hint: `Write it as USER@ADDRESS[:PORT], e.g. ${EXAMPLE}.`,
    });
  };
  if (input === '') fail('it is empty');

  const at = input.lastIndexOf('@');
  let user: string;
  if (at === -1) {
    user = options.defaultUser ?? currentUser();
  } else {
    user = input.slice(0, at);
    if (user === '') fail('the user before @ is empty');
  }
  // A user starting with '-' would be read as an option by anything that passes it on.
  if (/[\s/:]|[\p{Cc}]/u.test(user) || user.startsWith('-')) fail(`'${user}' is not a valid user name`);

  const rest = input.slice(at + 1);
  let host: string;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close === -1) fail("the '[' around the IPv6 address is not closed");
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) fail(`unexpected '${after}' after ']'`);
      portText = after.slice(1);
    }
    if (!isIPv6(stripZone(host))) fail(`'${host}' in brackets is not an IPv6 address`);
  } else if ((rest.match(/:/g) ?? []).length > 1) {
    // Two or more colons and no brackets: only a bare IPv6 address without a port makes sense.
    if (!isIPv6(stripZone(rest))) {
      fail('an IPv6 address with a port must be in brackets, e.g. [fe80::1]:2222');
    }
    host = rest;
  } else {
    const colon = rest.indexOf(':');
    host = colon === -1 ? rest : rest.slice(0, colon);
    if (colon !== -1) portText = rest.slice(colon + 1);
    if (host === '') fail('the address is empty');
    if (isIP(host) === 0 && !isHostname(host)) fail(`'${host}' is neither an IP address nor a host name`);
  }

  let port = options.defaultPort ?? 22;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText)) fail(`port '${portText}' is not a number`);
    port = Number(portText);
    if (port < 1 || port > 65535) fail(`port ${port} is outside 1-65535`);
  }
  return { user, host, port };
}

/** `user@host:port`, with brackets around IPv6; parses back to the same address. */
export function formatHostAddress(address: HostAddress): string {
  return `${address.user}@${bracketHost(address.host)}:${address.port}`;
}

/** The host as it goes before `:port`: IPv6 in brackets. */
export function bracketHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function stripZone(host: string): string {
  const percent = host.indexOf('%');
  return percent === -1 ? host : host.slice(0, percent);
}

function isHostname(host: string): boolean {
  if (host.length > 253) return false;
  return host
    .replace(/\.$/, '')
    .split('.')
    .every((label) => /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(label));
}

function currentUser(): string {
  try {
    return userInfo().username;
  } catch (cause) {
    // No passwd entry for our uid (some containers): there is no user to default to.
    throw new ApertusError(
      'host-address-no-user',
      'The host address names no user and the local user is unknown.',
      {
        hint: `Name the user in the address, e.g. ${EXAMPLE}.`,
        cause,
      },
    );
  }
}
