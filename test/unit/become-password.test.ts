import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { becomeOptions } from '../../src/cli/become-password.js';
import type { CliIO } from '../../src/cli/io.js';

/** A terminal as the prompt sees one: keystrokes in, raw mode switched, what it draws out. */
function terminal(keys: string, env: NodeJS.ProcessEnv = { TERM: 'xterm' }) {
  const stdin = Object.assign(new PassThrough(), { isTTY: true, raw: [] as boolean[] });
  Object.assign(stdin, { setRawMode: (raw: boolean) => stdin.raw.push(raw) });
  const stderr = new PassThrough();
  let drawn = '';
  stderr.on('data', (chunk: Buffer) => {
    drawn += chunk.toString();
  });
  const io: CliIO = { stdout: new PassThrough(), stderr, isTTY: true, env, stdin };
  // Typed after the prompt is up, one keystroke per chunk as a terminal sends them.
  setImmediate(() => {
    for (const key of keys) stdin.write(key);
  });
  return { io, stdin, drawn: () => drawn };
}

describe('the become password', () => {
  it('comes from APERTUS_BECOME_PASSWORD without asking, also under --json', async () => {
    const { io, drawn } = terminal('', { TERM: 'xterm', APERTUS_BECOME_PASSWORD: 's3cret' });
    expect(await becomeOptions(io, { json: true })).toEqual({ password: 's3cret' });
    expect(drawn()).toBe('');
  });

  it('is never asked for under --json, in CI or off a terminal: sudo -n is tried instead', async () => {
    for (const [env, json] of [
      [{ TERM: 'xterm' }, true],
      [{ TERM: 'xterm', CI: 'true' }, false],
    ] as const) {
      const { io, drawn } = terminal('typed\r', env);
      expect(await becomeOptions(io, { json })).toEqual({});
      expect(drawn()).toBe('');
    }
    const { io } = terminal('typed\r');
    expect(await becomeOptions({ ...io, stdin: undefined }, {})).toEqual({});
  });

  it('is asked for on a terminal without echo, backspace honoured; Enter alone means passwordless sudo', async () => {
    const asked = terminal('pw-x\u007fy\r');
    expect(await becomeOptions(asked.io, {})).toEqual({ password: 'pw-y' });
    expect(asked.drawn()).toBe('sudo password on the host (Enter for passwordless sudo): \n');
    expect(asked.stdin.raw).toEqual([true, false]);
    const empty = terminal('\r');
    expect(await becomeOptions(empty.io, {})).toEqual({});
  });

  it('stops on Ctrl-C at the prompt', async () => {
    const { io } = terminal('pw\u0003');
    await expect(becomeOptions(io, {})).rejects.toMatchObject({ name: 'CommandInterrupted' });
  });
});
