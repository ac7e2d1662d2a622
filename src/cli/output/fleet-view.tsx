/**
 * The live view of a fleet install on a terminal (ink): one row per host with its phase,
 * bytes, rate, ETA and result, and a summary line, redrawn at most every 100 ms. Drawn on
 * stderr, so stdout keeps only the result. Only on a TTY outside CI; elsewhere
 * fleet-lines.ts prints plain lines.
 */
import { Box, render, Text } from 'ink';
import type { ProgressEvent } from '../../core/progress.js';
import type { CliIO } from '../io.js';
import type { FleetProgressLines } from './fleet-lines.js';
import { FleetViewState, type HostRow } from './fleet-view-state.js';
import { formatBytes, formatDuration } from './format.js';

const COLOUR: Record<HostRow['result'], string> = {
  waiting: 'gray',
  running: 'cyan',
  ok: 'green',
  failed: 'red',
};

function FleetView({ state }: { state: FleetViewState }) {
  const rows = state.rows();
  const width = Math.max(4, ...rows.map((r) => r.host.length));
  return (
    <Box flexDirection="column">
      <Text>{state.bundle}</Text>
      {rows.map((row) => (
        <Box key={row.host}>
          <Box width={width + 2}>
            <Text>{row.host}</Text>
          </Box>
          <Box width={18}>
            <Text>{row.phase}</Text>
          </Box>
          <Box width={24}>
            <Text>{row.bytes ? `${formatBytes(row.bytes.done)} / ${formatBytes(row.bytes.total)}` : ''}</Text>
          </Box>
          <Box width={12}>
            <Text>{row.bytesPerSecond ? `${formatBytes(row.bytesPerSecond)}/s` : ''}</Text>
          </Box>
          <Box width={10}>
            <Text>{row.etaMs !== undefined ? `ETA ${formatDuration(row.etaMs)}` : ''}</Text>
          </Box>
          <Text color={COLOUR[row.result]}>
            {row.result}
            {row.detail ? ` ${row.detail}` : ''}
          </Text>
        </Box>
      ))}
      <Text bold>{state.summary()}</Text>
    </Box>
  );
}

export interface FleetLiveView extends FleetProgressLines {
  /** Draw the last frame and let go of the terminal. */
  done(): void;
}

export function fleetLiveView(io: CliIO, hosts: readonly string[]): FleetLiveView {
  const state = new FleetViewState(hosts);
  const stream = io.stderr as NodeJS.WriteStream;
  const instance = render(<FleetView state={state} />, { stdout: stream, patchConsole: false });
  let timer: NodeJS.Timeout | undefined;
  const redraw = () => {
    timer ??= setTimeout(() => {
      timer = undefined;
      instance.rerender(<FleetView state={state} />);
    }, 100);
  };
  return {
    run(event: ProgressEvent) {
      state.applyRun(event);
      redraw();
    },
    host(host: string, event: ProgressEvent) {
      state.applyHost(host, event);
      redraw();
    },
    done() {
      if (timer) clearTimeout(timer);
      instance.rerender(<FleetView state={state} />);
      instance.unmount();
    },
  };
}
