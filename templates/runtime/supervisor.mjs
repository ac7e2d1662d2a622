#!/usr/bin/env node
// apertus's minimal supervisor, for hosts where systemd is not PID 1 (containers, test
// hosts, minimal installs). It keeps one command running:
//
//   node supervisor.mjs --name NAME --pid-file P --log-file L -- CMD ARGS...
//
// - writes its own pid to P (the caller detaches it with setsid/nohup; it detaches nothing),
// - runs CMD with stdout and stderr appended to L, and notes its own events there too,
// - restarts CMD whenever it exits, waiting 0.5 s doubling up to 10 s between tries; the
//   wait starts again at 0.5 s once a run has stayed up for 30 s,
// - except after exit status 2, which our servers use for a configuration that cannot work
//   (bad arguments, a collection locked to another embedding model): it notes that, removes
//   P and exits 2, as systemd's RestartPreventExitStatus=2 does,
// - on SIGTERM or SIGINT forwards SIGTERM to CMD, waits up to 10 s (then SIGKILL), removes
//   P and exits 0.
//
// The child stays in our process group, so `kill -- -PGID` reaches both if this process
// itself is ever killed hard.

import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 10_000;
const STABLE_UPTIME_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const CONFIGURATION_ERROR_EXIT = 2;

function usageError(message) {
  process.stderr.write(`supervisor.mjs: ${message}\n`);
  process.stderr.write('usage: node supervisor.mjs --name NAME --pid-file P --log-file L -- CMD ARGS...\n');
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      name: { type: 'string' },
      'pid-file': { type: 'string' },
      'log-file': { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
} catch (error) {
  usageError(error.message);
}
const { name, 'pid-file': pidFile, 'log-file': logFile } = parsed.values;
const command = parsed.positionals;
if (name === undefined || pidFile === undefined || logFile === undefined) {
  usageError('--name, --pid-file and --log-file are required');
}
if (command.length === 0) usageError('the command to supervise goes after --');

/** A pid file naming a live supervisor means this service already runs: do not start twice. */
function runningSupervisorPid() {
  let pid;
  try {
    pid = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return null;
  try {
    // A recycled pid belongs to some other program; only our own command line counts.
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('supervisor.mjs') ? pid : null;
  } catch {
    return null;
  }
}

const logFd = openSync(logFile, 'a');

function note(message) {
  writeSync(logFd, `${new Date().toISOString()} [supervisor ${name}] ${message}\n`);
}

const existing = runningSupervisorPid();
if (existing !== null) {
  note(`not starting: supervisor pid ${existing} already runs this service (${pidFile})`);
  process.stderr.write(`supervisor.mjs: ${name} already runs under supervisor pid ${existing}\n`);
  process.exit(1);
}

// Written atomically so a reader never sees an empty or half-written pid file.
const pidTemp = `${pidFile}.${process.pid}.tmp`;
writeFileSync(pidTemp, `${process.pid}\n`);
renameSync(pidTemp, pidFile);

let child = null;
let childStartedAt = 0;
let delay = FIRST_DELAY_MS;
let restartTimer = null;
let stopping = false;

function start() {
  restartTimer = null;
  if (stopping) return;
  childStartedAt = Date.now();
  const current = spawn(command[0], command.slice(1), { stdio: ['ignore', logFd, logFd] });
  child = current;
  let settled = false;
  const onEnd = (description) => {
    if (settled) return;
    settled = true;
    if (child === current) child = null;
    if (stopping) return;
    const uptime = Date.now() - childStartedAt;
    if (uptime >= STABLE_UPTIME_MS) delay = FIRST_DELAY_MS;
    note(
      `${description} after ${(uptime / 1000).toFixed(1)} s; restarting in ${(delay / 1000).toFixed(1)} s`,
    );
    restartTimer = setTimeout(start, delay);
    delay = Math.min(delay * 2, MAX_DELAY_MS);
  };
  current.on('spawn', () => note(`started pid ${current.pid}: ${command.join(' ')}`));
  current.on('error', (error) => onEnd(`cannot start ${command[0]}: ${error.message}`));
  current.on('exit', (code, signal) => {
    if (code === CONFIGURATION_ERROR_EXIT && !stopping) {
      settled = true;
      child = null;
      note(`pid ${current.pid} exited ${code} (its configuration cannot work): not restarting`);
      finish(CONFIGURATION_ERROR_EXIT);
      return;
    }
    onEnd(signal ? `pid ${current.pid} killed by ${signal}` : `pid ${current.pid} exited ${code}`);
  });
}

function finish(status = 0) {
  note('stopped');
  try {
    // Only our own pid file: a new supervisor may have taken over the path meanwhile.
    if (readFileSync(pidFile, 'utf8').trim() === String(process.pid)) rmSync(pidFile, { force: true });
  } catch {
    // Already gone.
  }
  closeSync(logFd);
  process.exit(status);
}

function stop(signal) {
  if (stopping) return;
  stopping = true;
  note(`${signal} received; stopping`);
  if (restartTimer !== null) clearTimeout(restartTimer);
  const current = child;
  if (current === null || current.exitCode !== null || current.signalCode !== null) {
    finish();
    return;
  }
  const killTimer = setTimeout(() => {
    note(`pid ${current.pid} still running after ${STOP_TIMEOUT_MS / 1000} s; sending SIGKILL`);
    current.kill('SIGKILL');
  }, STOP_TIMEOUT_MS);
  current.once('exit', () => {
    clearTimeout(killTimer);
    finish();
  });
  current.kill('SIGTERM');
}

process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
// nohup already ignores SIGHUP; ignoring it here too keeps a closing terminal harmless.
process.on('SIGHUP', () => {});

note(`supervisor pid ${process.pid} starting`);
start();
