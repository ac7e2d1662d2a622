import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { computeCapabilityFromName } from '../../src/core/gpu/compute-capability.js';
import { readGpuInventory } from '../../src/core/gpu/gpu-inventory.js';
import {
  NVIDIA_SMI_COMMANDS,
  parseDriverVersionFile,
  parseGpuList,
  parseQueryGpu,
  QUERY_GPU_FIELDS,
} from '../../src/core/gpu/nvidia-smi.js';
import { parseNvidiaSmiXml } from '../../src/core/gpu/nvidia-smi-xml.js';
import { MIB } from '../../src/core/gpu/units.js';
import { parseTranscript, transcriptOutputs } from '../../src/core/target/transcript.js';
import { GPU_FIXTURES, gpuFixture, gpuFixtureSections } from '../fixtures/gpu/gpu-fixture.js';

const H100_DIR = path.join(GPU_FIXTURES, 'h100-80gb-hbm3');

describe('the real H100 capture', () => {
  it('parses as a transcript, including the section cut short by SIGPIPE', () => {
    const sections = parseTranscript(readFileSync(path.join(H100_DIR, 'gpu-facts.txt'), 'utf8'));
    const byCommand = transcriptOutputs(sections);
    expect(byCommand(NVIDIA_SMI_COMMANDS.query)).toEqual({
      command: NVIDIA_SMI_COMMANDS.query,
      output:
        '0, GPU-3162c830-50d3-002a-0265-11a013bc5c54, NVIDIA H100 80GB HBM3, 00000000:00:06.0, 580.159.04, 9.0, 81559, 0, 81079, Disabled',
      exitCode: 0,
    });
    expect(byCommand('nvidia-smi --query-gpu=bogus.field --format=csv')).toMatchObject({
      output: 'Field "bogus.field" is not a valid field to query.',
      exitCode: 2,
    });
    const ldconfig = byCommand('ldconfig -p');
    expect(ldconfig?.exitCode).toBe(141);
    expect(ldconfig?.output.endsWith('libmlx5.so (')).toBe(true);
    expect(byCommand('nvidia-container-cli info')?.exitCode).toBe(127);
    // The section header without "$ " (a file, not a command) is read too.
    expect(byCommand('/proc/driver/nvidia/gpus/0000:00:06.0/information')?.output).toContain('Bus Location');
  });

  it('reads one H100 with every field from --query-gpu', () => {
    const inventory = gpuFixture('h100-80gb-hbm3');
    expect(inventory).toEqual({
      state: 'ok',
      driverVersion: '580.159.04',
      driverCudaVersion: '13.0',
      notes: [],
      gpus: [
        {
          index: 0,
          uuid: 'GPU-3162c830-50d3-002a-0265-11a013bc5c54',
          name: 'NVIDIA H100 80GB HBM3',
          pciBusId: '00000000:00:06.0',
          memoryTotalBytes: 81559 * MIB,
          memoryUsedBytes: 0,
          memoryFreeBytes: 81079 * MIB,
          computeCapability: '9.0',
          computeCapabilitySource: 'nvidia-smi',
          migMode: 'disabled',
          migDevices: [],
        },
      ],
    });
  });

  it('reads the same facts from nvidia-smi -q -x', () => {
    const xml = parseNvidiaSmiXml(readFileSync(path.join(H100_DIR, 'nvidia-smi-q.xml'), 'utf8'));
    expect(xml).toEqual({
      driverVersion: '580.159.04',
      cudaVersion: '13.0',
      gpus: [
        {
          index: 0,
          pciBusId: '00000000:00:06.0',
          name: 'NVIDIA H100 80GB HBM3',
          uuid: 'GPU-3162c830-50d3-002a-0265-11a013bc5c54',
          memoryTotalMiB: 81559,
          memoryUsedMiB: 0,
          memoryFreeMiB: 81079,
          migCurrent: 'Disabled',
          migDevices: [],
        },
      ],
    });
  });

  it('falls back to -q -x for every field when the query answers nothing', () => {
    const sections = gpuFixtureSections('h100-80gb-hbm3').filter(
      (s) => s.command !== NVIDIA_SMI_COMMANDS.query,
    );
    const inventory = readGpuInventory(transcriptOutputs(sections));
    expect(inventory.state).toBe('ok');
    if (inventory.state !== 'ok') return;
    expect(inventory.gpus[0]).toMatchObject({
      name: 'NVIDIA H100 80GB HBM3',
      memoryTotalBytes: 81559 * MIB,
      migMode: 'disabled',
      computeCapability: '9.0',
      computeCapabilitySource: 'name table',
    });
    expect(inventory.notes.join('; ')).toMatch(/GPUs read from nvidia-smi -q -x/);
  });

  it('reads the driver from /proc/driver/nvidia/version, open and proprietary wording', () => {
    expect(
      parseDriverVersionFile(
        'NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (nixbld@)  \nGCC version:  gcc 15',
      ),
    ).toBe('580.159.04');
    expect(
      parseDriverVersionFile(
        'NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.182.03  Fri Feb 24 03:29:56 UTC 2023',
      ),
    ).toBe('470.182.03');
    expect(
      parseDriverVersionFile('cat: /proc/driver/nvidia/version: No such file or directory'),
    ).toBeUndefined();
  });
});

describe('derived fixture cases', () => {
  it('4x H100: four GPUs in index order', () => {
    const inventory = gpuFixture('4x-h100-80gb-hbm3');
    expect(inventory.state).toBe('ok');
    if (inventory.state !== 'ok') return;
    expect(inventory.gpus.map((g) => [g.index, g.pciBusId, g.computeCapability])).toEqual([
      [0, '00000000:00:06.0', '9.0'],
      [1, '00000000:00:07.0', '9.0'],
      [2, '00000000:00:08.0', '9.0'],
      [3, '00000000:00:09.0', '9.0'],
    ]);
  });

  it('MIG enabled: the mode, and the slices from -L with their memory from -q -x', () => {
    const inventory = gpuFixture('h100-mig-enabled');
    expect(inventory.state).toBe('ok');
    if (inventory.state !== 'ok') return;
    const [gpu] = inventory.gpus;
    expect(gpu?.migMode).toBe('enabled');
    expect(gpu?.migDevices).toEqual([
      {
        profile: '3g.40gb',
        index: 0,
        uuid: 'MIG-5c1e3a9e-5b7a-5d2c-9a3f-1f0e7d6c2b01',
        memoryBytes: 40192 * MIB,
        memorySource: 'nvidia-smi -q -x',
      },
      {
        profile: '3g.40gb',
        index: 1,
        uuid: 'MIG-5c1e3a9e-5b7a-5d2c-9a3f-1f0e7d6c2b02',
        memoryBytes: 40192 * MIB,
        memorySource: 'nvidia-smi -q -x',
      },
    ]);
    // memory.total still shows the whole GPU (runtime-facts 4.3).
    expect(gpu?.memoryTotalBytes).toBe(81559 * MIB);
  });

  it('MIG slices without -q -x are sized from the profile name', () => {
    const list = readFileSync(path.join(GPU_FIXTURES, 'h100-mig-enabled', 'gpu-facts.txt'), 'utf8');
    const inventory = readGpuInventory(transcriptOutputs(parseTranscript(list)));
    if (inventory.state !== 'ok') throw new Error(inventory.state);
    expect(inventory.gpus[0]?.migDevices[0]).toMatchObject({
      memoryBytes: 40e9,
      memorySource: 'profile name',
    });
  });

  it('old R470 driver: the fallback query answers, compute capability comes from the name', () => {
    const inventory = gpuFixture('a100-40gb-r470-no-compute-cap');
    expect(inventory).toMatchObject({
      state: 'ok',
      driverVersion: '470.182.03',
      driverCudaVersion: '11.4',
      gpus: [
        {
          name: 'NVIDIA A100-SXM4-40GB',
          memoryTotalBytes: 40960 * MIB,
          computeCapability: '8.0',
          computeCapabilitySource: 'name table',
          migMode: 'disabled',
        },
      ],
    });
    if (inventory.state === 'ok') expect(inventory.notes[0]).toMatch(/no compute_cap query field/);
  });

  it('24 GB L4: its usable memory, compute capability 8.9, no MIG support', () => {
    const inventory = gpuFixture('l4-24gb');
    expect(inventory).toMatchObject({
      state: 'ok',
      gpus: [
        {
          name: 'NVIDIA L4',
          memoryTotalBytes: 23034 * MIB,
          computeCapability: '8.9',
          migMode: 'unsupported',
        },
      ],
    });
  });

  it('driver 575: version and CUDA from the query and --version', () => {
    expect(gpuFixture('h100-driver-575')).toMatchObject({
      state: 'ok',
      driverVersion: '575.57.08',
      driverCudaVersion: '12.9',
    });
  });

  it('no driver: nvidia-smi missing (exit 127, command not found)', () => {
    expect(gpuFixture('no-driver-nvidia-smi-missing')).toEqual({
      state: 'no-nvidia-smi',
      detail: 'no NVIDIA driver: nvidia-smi is not installed and /proc/driver/nvidia/version does not exist',
    });
  });

  it('no driver: nvidia-smi cannot communicate with the driver', () => {
    expect(gpuFixture('no-driver-not-loaded')).toEqual({
      state: 'driver-not-loaded',
      detail:
        "the NVIDIA driver is not loaded: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.",
    });
  });
});

describe('defensive parsing', () => {
  it('keeps a name with a comma, drops short lines, and treats [N/A] as missing', () => {
    const rows = parseQueryGpu(
      [
        '0, GPU-a, NVIDIA Foo, Rev 2, 00000000:01:00.0, 580.1, 8.9, 1000, 0, 1000, [N/A]',
        'garbage',
        '1, GPU-b, NVIDIA Bar, 00000000:02:00.0, 580.1, 8.9, [Not Supported], 0, 1000, Disabled',
      ].join('\n'),
      QUERY_GPU_FIELDS,
    );
    expect(rows).toHaveLength(2);
    expect(rows[0]?.name).toBe('NVIDIA Foo, Rev 2');
    expect(rows[0]?.['mig.mode.current']).toBeUndefined();
    expect(rows[1]?.['memory.total']).toBeUndefined();
  });

  it('reads the MIG lines of nvidia-smi -L under their GPU', () => {
    expect(
      parseGpuList(
        'GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5b)\n  MIG 1g.5gb      Device  0: (UUID: MIG-c6d4)\n  MIG 1g.5gb      Device  1: (UUID: MIG-cba6)\nGPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-77aa)',
      ),
    ).toEqual([
      {
        index: 0,
        name: 'NVIDIA A100-SXM4-40GB',
        uuid: 'GPU-5d5b',
        mig: [
          { profile: '1g.5gb', index: 0, uuid: 'MIG-c6d4' },
          { profile: '1g.5gb', index: 1, uuid: 'MIG-cba6' },
        ],
      },
      { index: 1, name: 'NVIDIA A100-SXM4-40GB', uuid: 'GPU-77aa', mig: [] },
    ]);
  });

  it('tells nested product names apart in the compute capability table', () => {
    expect(computeCapabilityFromName('NVIDIA A100-SXM4-40GB')).toBe('8.0');
    expect(computeCapabilityFromName('NVIDIA A10')).toBe('8.6');
    expect(computeCapabilityFromName('NVIDIA A10G')).toBe('8.6');
    expect(computeCapabilityFromName('NVIDIA L4')).toBe('8.9');
    expect(computeCapabilityFromName('NVIDIA L40S')).toBe('8.9');
    expect(computeCapabilityFromName('Tesla T4')).toBe('7.5');
    expect(computeCapabilityFromName('Tesla V100-SXM2-16GB')).toBe('7.0');
    expect(computeCapabilityFromName('NVIDIA GH200 480GB')).toBe('9.0');
    expect(computeCapabilityFromName('NVIDIA B200')).toBe('10.0');
    expect(computeCapabilityFromName('NVIDIA GeForce RTX 5090')).toBe('12.0');
    expect(computeCapabilityFromName('Quadro P4000')).toBeUndefined();
  });

  it('reports a hung nvidia-smi (timeout, exit 124) as an error', () => {
    const inventory = readGpuInventory(
      transcriptOutputs([{ command: NVIDIA_SMI_COMMANDS.query, output: '', exitCode: 124 }]),
    );
    expect(inventory).toEqual({
      state: 'error',
      detail: 'nvidia-smi did not answer within 20 s: the driver is hung or a GPU fell off the bus',
    });
  });
});
