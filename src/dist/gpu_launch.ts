// `detseg3d train --gpus N`: the shorthand for
//   detseg3d launch --nproc_per_node N -- train --device cuda <the other arguments>
// planGpuTraining is the pure part (argument checks against the GPUs this
// build can see, and the child command line), so it is tested without GPUs;
// relaunchTrainForGpus (launcher.ts) runs the plan.
import { ConfigError } from '../train/config.js';
import type { GpuVisibility } from '../train/device.js';

/** What --gpus needs to know about the machine (from `info()`): the type the --device cuda checks take. */
export type { GpuVisibility };

export interface GpuTrainPlan {
  /** N: processes to start on this node, one per GPU (process i trains on cuda:i). */
  nprocPerNode: number;
  /** True when N > 1: run `command` under the launcher; false: train in this process on cuda:0. */
  launch: boolean;
  /** The detseg3d arguments each process runs: ['train', '--device', 'cuda', ...the others without --gpus / --device]. */
  command: string[];
}

/** The option names a yargs command line may spell --gpus / --device with. */
function optionName(arg: string): string | null {
  const m = /^--([A-Za-z0-9_-]+)(=.*)?$/.exec(arg);
  return m ? m[1] : null;
}

/**
 * Checks `--gpus N` against the machine and builds the per-process command.
 * `trainArgs` are the arguments after `train` as typed (values verbatim).
 * Throws ConfigError: N not a positive integer, --device cpu given as well, a
 * build without CUDA, or fewer than N visible GPUs (the message says how many
 * there are).
 */
export function planGpuTraining(trainArgs: string[], gpus: number, machine: GpuVisibility): GpuTrainPlan {
  if (!Number.isInteger(gpus) || gpus < 1) throw new ConfigError(`--gpus must be a positive whole number of GPUs, got ${gpus}`);
  const rest: string[] = [];
  for (let i = 0; i < trainArgs.length; i++) {
    const a = trainArgs[i];
    const name = optionName(a);
    if (name === 'gpus' || name === 'device') {
      const inline = a.includes('=');
      const value = inline ? a.slice(a.indexOf('=') + 1) : trainArgs[i + 1];
      if (!inline) i++;
      if (name === 'device' && value !== 'cuda')
        throw new ConfigError(`--gpus ${gpus} trains on GPUs (--device cuda) but --device ${value ?? '(missing)'} was given as well; drop one of them`);
      continue;
    }
    if (a === '--') {
      rest.push(...trainArgs.slice(i));
      break;
    }
    rest.push(a);
  }
  const cpuHint =
    gpus === 1
      ? 'train on the CPU with --device cpu instead of --gpus'
      : `for data-parallel training on the CPU run \`detseg3d launch --nproc_per_node ${gpus} -- train --device cpu ...\` ` +
        '(set --workers and DETSEG3D_NUM_THREADS so the processes together do not oversubscribe the cores)';
  if (!machine.cudaCompiled)
    throw new ConfigError(
      `--gpus ${gpus}: this build of detseg3d has no CUDA support; rebuild the native addon on a machine with the CUDA toolkit ` +
        `(nvcc on the PATH, DETSEG3D_CUDA not OFF: \`node scripts/build.js --native-only\`), or ${cpuHint}`,
    );
  const visible = machine.gpus.length;
  if (visible === 0)
    throw new ConfigError(
      `--gpus ${gpus}: no GPU is visible (${machine.gpuNote || 'no CUDA device found'}); run on a machine with ${gpus} NVIDIA GPU${gpus === 1 ? '' : 's'} ` +
        `and a driver, check CUDA_VISIBLE_DEVICES, or ${cpuHint}`,
    );
  if (visible < gpus)
    throw new ConfigError(
      `--gpus ${gpus}: only ${visible} GPU${visible === 1 ? ' is' : 's are'} visible (${machine.gpus.map((g) => `${g.index}: ${g.name}`).join(', ')}); ` +
        `use --gpus ${visible} or fewer, or check CUDA_VISIBLE_DEVICES`,
    );
  return { nprocPerNode: gpus, launch: gpus > 1, command: ['train', '--device', 'cuda', ...rest] };
}

/** True when this process is already a rank of a distributed job (launcher, torchrun, mpirun, srun). */
export function insideDistributedJob(env: NodeJS.ProcessEnv): boolean {
  return env.RANK !== undefined || env.OMPI_COMM_WORLD_RANK !== undefined || env.SLURM_PROCID !== undefined;
}

/** The arguments after the `train` command word of a detseg3d command line (process.argv without node and the script). */
export function trainArgsOf(argv: string[]): string[] {
  const i = argv.indexOf('train');
  return i >= 0 ? argv.slice(i + 1) : [];
}
