import { describe, expect, it } from 'vitest';
import {
  cutBatches,
  defaultSerial,
  overMaxFail,
  parseMaxFail,
  parseSerial,
  planBatches,
} from '../../src/core/operations/fleet-batches.js';
import { runPool } from '../../src/core/operations/fleet-hosts.js';

describe('fleet batches', () => {
  it('defaults to one canary host, then batches of --forks', () => {
    expect(planBatches(12, defaultSerial(5))).toEqual([1, 5, 5, 1]);
    expect(planBatches(1, defaultSerial(5))).toEqual([1]);
    expect(planBatches(4, defaultSerial(2))).toEqual([1, 2, 1]);
  });

  it('reads --serial as counts, percentages and lists whose last item repeats', () => {
    expect(planBatches(10, parseSerial('3'))).toEqual([3, 3, 3, 1]);
    expect(planBatches(10, parseSerial('25%'))).toEqual([2, 2, 2, 2, 2]);
    expect(planBatches(10, parseSerial('1,30%,50%'))).toEqual([1, 3, 5, 1]);
    // A percentage rounds down, but a batch never holds fewer than one host.
    expect(planBatches(3, parseSerial('10%'))).toEqual([1, 1, 1]);
    expect(planBatches(4, parseSerial('100%'))).toEqual([4]);
    expect(planBatches(2, parseSerial('50'))).toEqual([2]);
    expect(cutBatches(['a', 'b', 'c', 'd'], [1, 2, 1])).toEqual([['a'], ['b', 'c'], ['d']]);
  });

  it('refuses a --serial that is not sizes, naming the bad item', () => {
    for (const bad of ['0', '-1', '0%', '101%', 'two', '1,,2', '', '1.5', '5%%', '1e3'])
      expect(() => parseSerial(bad), bad).toThrow(expect.objectContaining({ code: 'usage', kind: 'user' }));
    expect(() => parseSerial('1,x')).toThrow(/"x" is neither a count/);
  });

  it('reads --max-fail as a percentage from 0 to 100', () => {
    expect(parseMaxFail('0')).toBe(0);
    expect(parseMaxFail('25%')).toBe(25);
    expect(parseMaxFail('12.5%')).toBe(12.5);
    expect(parseMaxFail('100%')).toBe(100);
    for (const bad of ['-1%', '101%', 'a lot', '', '%', '25%%', '0x10'])
      expect(() => parseMaxFail(bad), bad).toThrow(expect.objectContaining({ code: 'usage' }));
  });

  it('stops when the failures so far exceed --max-fail of the hosts, not when they reach it', () => {
    expect(overMaxFail(0, 4, 0)).toBe(false);
    expect(overMaxFail(1, 4, 0)).toBe(true);
    expect(overMaxFail(1, 4, 25)).toBe(false);
    expect(overMaxFail(2, 4, 25)).toBe(true);
    expect(overMaxFail(4, 4, 100)).toBe(false);
  });

  it('runs at most --forks hosts at once, and keeps the results in host order', async () => {
    let running = 0;
    let most = 0;
    const results = await runPool([30, 10, 20, 5, 1], 2, async (ms, i) => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, ms));
      running--;
      return i;
    });
    expect(results).toEqual([0, 1, 2, 3, 4]);
    expect(most).toBe(2);
  });
});
