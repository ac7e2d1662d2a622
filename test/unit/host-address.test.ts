import { userInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ApertusError } from '../../src/core/errors.js';
import { formatHostAddress, parseHostAddress } from '../../src/core/host/host-address.js';

describe('parseHostAddress', () => {
  it.each([
    ['root@10.0.0.5', { user: 'root', host: '10.0.0.5', port: 22 }],
    ['admin@gpu-01.lab:2222', { user: 'admin', host: 'gpu-01.lab', port: 2222 }],
    ['root@[fe80::1]:2222', { user: 'root', host: 'fe80::1', port: 2222 }],
    ['root@[fe80::1%veth0]', { user: 'root', host: 'fe80::1%veth0', port: 22 }],
    ['root@fe80::1', { user: 'root', host: 'fe80::1', port: 22 }],
    ['alice@corp.example@host-7', { user: 'alice@corp.example', host: 'host-7', port: 22 }],
    ['  root@169.254.3.2:22 ', { user: 'root', host: '169.254.3.2', port: 22 }],
  ])('parses %s', (text, expected) => {
    expect(parseHostAddress(text)).toEqual(expected);
  });

  it('defaults the user to the local user, as ssh does', () => {
    expect(parseHostAddress('10.0.0.5:2200')).toEqual({
      user: userInfo().username,
      host: '10.0.0.5',
      port: 2200,
    });
    expect(parseHostAddress('10.0.0.5', { defaultUser: 'ops' }).user).toBe('ops');
  });

  it.each([
    ['', 'empty'],
    ['root@', 'address is empty'],
    ['@host', 'user before @ is empty'],
    ['root@host:0', 'outside 1-65535'],
    ['root@host:65536', 'outside 1-65535'],
    ['root@host:ssh', 'not a number'],
    ['root@fe80::1:2222x', 'in brackets'],
    ['root@[fe80::1', 'not closed'],
    ['root@[10.0.0.1]:22', 'not an IPv6'],
    ['root@[fe80::1]2222', "after ']'"],
    ['-oProxyCommand=x@host', 'not a valid user'],
    ['ro ot@host', 'not a valid user'],
    ['root@bad_host!', 'neither an IP'],
  ])('rejects %j (%s)', (text, why) => {
    let error: unknown;
    try {
      parseHostAddress(text);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ApertusError);
    const apertusError = error as ApertusError;
    expect(apertusError.code).toBe('host-address-invalid');
    expect(apertusError.kind).toBe('user');
    expect(apertusError.message).toContain(why);
    expect(apertusError.hint).toContain('USER@ADDRESS[:PORT]');
  });

  it('formats addresses that parse back to themselves', () => {
    for (const text of ['root@10.0.0.5:22', 'root@[fe80::1]:2222', 'a@h.example:1']) {
      expect(formatHostAddress(parseHostAddress(text))).toBe(text);
    }
  });
});
