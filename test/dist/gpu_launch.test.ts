// `detseg3d train --gpus N` without GPUs: the argument checks against the
// visible GPUs (a build without CUDA, no GPU, too few GPUs — each message
// names what exists), and the exact per-process command line the launcher
// would run (`launch --nproc_per_node N -- train --device cuda ...`).
import { describe, expect, it } from 'vitest';
import { insideDistributedJob, planGpuTraining, trainArgsOf, type GpuVisibility } from '../../src/dist/gpu_launch.js';
import { relaunchTrainForGpus, resolveCommand } from '../../src/dist/launcher.js';
import { ConfigError } from '../../src/train/config.js';

const gpu = (index: number) => ({ index, name: 'NVIDIA H100', totalMemory: 80e9, computeCapability: '9.0', multiprocessors: 132 });
const machine = (n: number): GpuVisibility => ({ cudaCompiled: true, gpus: Array.from({ length: n }, (_, i) => gpu(i)), gpuNote: n ? '' : 'no CUDA-capable device is detected' });
const noCuda: GpuVisibility = { cudaCompiled: false, gpus: [], gpuNote: 'built without CUDA' };

describe('train --gpus N', () => {
  it('N > 1: the launcher runs `train --device cuda <the other arguments>` as N processes', () => {
    const args = ['--image_dir', 'data/img', '--gpus', '4', '--lr', '0.010', '--amp'];
    const plan = planGpuTraining(args, 4, machine(8));
    expect(plan).toEqual({ nprocPerNode: 4, launch: true, command: ['train', '--device', 'cuda', '--image_dir', 'data/img', '--lr', '0.010', '--amp'] });
    // The full argv of each rank: this node binary, bin/detseg3d.js, then the command (values verbatim: '0.010' stays a string).
    const argv = resolveCommand(plan.command);
    expect(argv[0]).toBe(process.execPath);
    expect(argv[1]).toMatch(/bin[/\\]detseg3d\.js$/);
    expect(argv.slice(2)).toEqual(['train', '--device', 'cuda', '--image_dir', 'data/img', '--lr', '0.010', '--amp']);
  });

  it('drops --gpus=N and a redundant --device cuda in either spelling; keeps everything after --', () => {
    expect(planGpuTraining(['--gpus=2', '--device=cuda', '--epochs', '3'], 2, machine(2)).command).toEqual(['train', '--device', 'cuda', '--epochs', '3']);
    expect(planGpuTraining(['--device', 'cuda', '--gpus', '2'], 2, machine(2)).command).toEqual(['train', '--device', 'cuda']);
    expect(planGpuTraining(['--epochs', '1', '--', '--gpus', '9'], 2, machine(2)).command).toEqual(['train', '--device', 'cuda', '--epochs', '1', '--', '--gpus', '9']);
  });

  it('N = 1 trains in this process on the GPU (no launcher)', () => {
    expect(planGpuTraining(['--gpus', '1'], 1, machine(1))).toEqual({ nprocPerNode: 1, launch: false, command: ['train', '--device', 'cuda'] });
  });

  it('refuses --device cpu together with --gpus', () => {
    expect(() => planGpuTraining(['--device', 'cpu', '--gpus', '2'], 2, machine(2))).toThrow(/--gpus 2 trains on GPUs \(--device cuda\) but --device cpu was given/);
    expect(() => planGpuTraining(['--gpus', '2', '--device=cpu'], 2, machine(2))).toThrow(ConfigError);
  });

  it('explains a build without CUDA, pointing to CPU data parallelism', () => {
    expect(() => planGpuTraining([], 2, noCuda)).toThrow(/--gpus 2: this build of detseg3d has no CUDA support.*detseg3d launch --nproc_per_node 2 -- train --device cpu/);
    expect(() => planGpuTraining([], 1, noCuda)).toThrow(/--gpus 1: this build of detseg3d has no CUDA support.*train on the CPU with --device cpu instead of --gpus$/);
  });

  it('explains missing GPUs, naming how many are visible', () => {
    expect(() => planGpuTraining([], 2, machine(0))).toThrow(/--gpus 2: no GPU is visible \(no CUDA-capable device is detected\)/);
    expect(() => planGpuTraining([], 4, machine(1))).toThrow(/--gpus 4: only 1 GPU is visible \(0: NVIDIA H100\); use --gpus 1 or fewer/);
    expect(() => planGpuTraining([], 8, machine(2))).toThrow(/only 2 GPUs are visible \(0: NVIDIA H100, 1: NVIDIA H100\); use --gpus 2 or fewer/);
  });

  it('rejects N that is not a positive whole number', () => {
    for (const n of [0, -1, 1.5, Number.NaN]) expect(() => planGpuTraining([], n, machine(8))).toThrow(/--gpus must be a positive whole number/);
  });

  it('inside a rank of a job started by a launcher / mpirun / srun it never relaunches', async () => {
    expect(insideDistributedJob({ RANK: '1' })).toBe(true);
    expect(insideDistributedJob({ OMPI_COMM_WORLD_RANK: '0' })).toBe(true);
    expect(insideDistributedJob({ SLURM_PROCID: '0' })).toBe(true);
    expect(insideDistributedJob({})).toBe(false);
    // Even with no GPU visible: the rank itself then reports the device problem when it trains.
    expect(await relaunchTrainForGpus(['--gpus', '4'], 4, { RANK: '0', WORLD_SIZE: '4' }, machine(0))).toBeNull();
    await expect(relaunchTrainForGpus(['--gpus', '2'], 2, {}, noCuda)).rejects.toThrow(/no CUDA support/);
    expect(await relaunchTrainForGpus(['--gpus', '1'], 1, {}, machine(1))).toBeNull();
  });

  it('finds the train arguments in a command line', () => {
    expect(trainArgsOf(['train', '--gpus', '2', '--lr', '0.1'])).toEqual(['--gpus', '2', '--lr', '0.1']);
    expect(trainArgsOf(['info'])).toEqual([]);
  });
});
