/**
 * Proof that the installed stack stays offline: the packets a host sent through an
 * interface while its services started and were verified. On the test hosts every route
 * but the local link leads into a sink interface (src/core/demo-host/network-namespace.ts),
 * so any attempt to reach out, even one that could never succeed, is counted there.
 */
import { ApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';

const INTERFACE_NAME = /^[A-Za-z0-9_.:-]{1,15}$/;

export async function readTxPackets(
  transport: Transport,
  iface: string,
  signal?: AbortSignal,
): Promise<number> {
  if (!INTERFACE_NAME.test(iface)) {
    throw new ApertusError('usage', `"${iface}" is not a network interface name.`, {
      hint: 'Pass --count-egress with the name `ip link` shows for the interface, e.g. eth1.',
    });
  }
  const file = `/sys/class/net/${iface}/statistics/tx_packets`;
  const result = await transport.exec(shellQuote(['cat', file]), { reject: false, signal });
  const packets = Number.parseInt(result.stdout.trim(), 10);
  if (result.exitCode !== 0 || !Number.isSafeInteger(packets)) {
    throw new ApertusError(
      'egress-interface-missing',
      `${transport.description} has no interface ${iface} (${file}: ${result.stderr.trim() || 'unreadable'}).`,
      {
        hint: 'Check the name with `ip link` on the host, or leave out --count-egress.',
      },
    );
  }
  return packets;
}
