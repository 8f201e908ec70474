// Where this process sits in a distributed job, read from the environment of
// whichever launcher started it:
//   detseg3d launch / torchrun   RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
//   mpirun (Open MPI)            OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK, ..._LOCAL_SIZE
//   srun (SLURM)                 SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE,
//                                master from MASTER_ADDR or SLURM_LAUNCH_NODE_IPADDR
// Explicit RANK/WORLD_SIZE win over MPI, which wins over SLURM (mpirun inside
// an allocation sets both). MPI and SLURM do not set a master: MASTER_ADDR
// (or, under SLURM, the launch node's address) and MASTER_PORT (default 29500,
// torchrun's) complete them.

export type DistSource = 'single' | 'torchrun' | 'mpi' | 'slurm';

export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  source: DistSource;
  /**
   * Where the rendezvous store lives: true when a launcher (detseg3d launch)
   * already serves it on masterAddr:storePort, false when rank 0 must host it.
   */
  agentStore: boolean;
  /** The store's port: MASTER_PORT, or MASTER_PORT + 1 under torchrun (its agent owns MASTER_PORT). */
  storePort: number;
}

export const DEFAULT_MASTER_PORT = 29500;

type Env = Record<string, string | undefined>;

function intVar(env: Env, name: string, min: number): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  if (!/^\s*-?\d+\s*$/.test(v)) throw new Error(`detseg3d distributed: ${name}=${JSON.stringify(v)} is not an integer`);
  const n = Number(v);
  if (n < min) throw new Error(`detseg3d distributed: ${name}=${n} must be >= ${min}`);
  return n;
}

/** Parses the launcher variables (default: process.env). Throws on inconsistent values. */
export function readDistEnv(env: Env = process.env): DistEnv {
  let source: DistSource;
  let rank: number | undefined;
  let worldSize: number | undefined;
  let localRank: number | undefined;
  let localWorldSize: number | undefined;
  let masterAddr = env.MASTER_ADDR || undefined;

  if (env.RANK !== undefined || env.WORLD_SIZE !== undefined) {
    source = 'torchrun';
    rank = intVar(env, 'RANK', 0);
    worldSize = intVar(env, 'WORLD_SIZE', 1);
    if (rank === undefined || worldSize === undefined)
      throw new Error('detseg3d distributed: RANK and WORLD_SIZE must be set together');
    localRank = intVar(env, 'LOCAL_RANK', 0);
    localWorldSize = intVar(env, 'LOCAL_WORLD_SIZE', 1);
  } else if (env.OMPI_COMM_WORLD_RANK !== undefined) {
    source = 'mpi';
    rank = intVar(env, 'OMPI_COMM_WORLD_RANK', 0);
    worldSize = intVar(env, 'OMPI_COMM_WORLD_SIZE', 1);
    localRank = intVar(env, 'OMPI_COMM_WORLD_LOCAL_RANK', 0);
    localWorldSize = intVar(env, 'OMPI_COMM_WORLD_LOCAL_SIZE', 1);
    if (worldSize === undefined) throw new Error('detseg3d distributed: OMPI_COMM_WORLD_SIZE is not set');
  } else if (env.SLURM_PROCID !== undefined && env.SLURM_NTASKS !== undefined) {
    source = 'slurm';
    rank = intVar(env, 'SLURM_PROCID', 0);
    worldSize = intVar(env, 'SLURM_NTASKS', 1);
    localRank = intVar(env, 'SLURM_LOCALID', 0);
    // SLURM_NTASKS_PER_NODE may look like "4" or "4(x2)"; the first count is this layout's.
    const perNode = env.SLURM_NTASKS_PER_NODE?.match(/^\d+/)?.[0];
    localWorldSize = perNode ? Number(perNode) : undefined;
    masterAddr = masterAddr ?? (env.SLURM_LAUNCH_NODE_IPADDR || undefined);
  } else {
    return {
      rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1,
      masterAddr: masterAddr ?? '127.0.0.1',
      masterPort: intVar(env, 'MASTER_PORT', 1) ?? DEFAULT_MASTER_PORT,
      source: 'single', agentStore: false,
      storePort: intVar(env, 'DETSEG3D_STORE_PORT', 1) ?? intVar(env, 'MASTER_PORT', 1) ?? DEFAULT_MASTER_PORT,
    };
  }
  rank = rank!;
  worldSize = worldSize!;
  if (rank >= worldSize)
    throw new Error(`detseg3d distributed: rank ${rank} is not below the world size ${worldSize} (source: ${source})`);
  localRank = localRank ?? 0;
  localWorldSize = Math.max(localWorldSize ?? 1, localRank + 1);
  if (!masterAddr) {
    if (worldSize === 1 || source === 'torchrun') masterAddr = '127.0.0.1';
    else
      throw new Error(
        `detseg3d distributed: ${source === 'mpi' ? 'mpirun' : 'srun'} started ${worldSize} processes but MASTER_ADDR ` +
          'is not set: export MASTER_ADDR=<address of the node running rank 0> (and optionally MASTER_PORT) before launching',
      );
  }
  const masterPort = intVar(env, 'MASTER_PORT', 1) ?? DEFAULT_MASTER_PORT;
  if (masterPort > 65535) throw new Error(`detseg3d distributed: MASTER_PORT=${masterPort} is not a TCP port`);
  const agentStore = env.DETSEG3D_AGENT_STORE === '1';
  // torchrun's elastic agent already serves its own store on MASTER_PORT.
  const torchAgent = env.TORCHELASTIC_USE_AGENT_STORE !== undefined && !agentStore;
  const storePort = intVar(env, 'DETSEG3D_STORE_PORT', 1) ?? (torchAgent ? masterPort + 1 : masterPort);
  return { rank, worldSize, localRank, localWorldSize, masterAddr, masterPort, source, agentStore, storePort };
}

/** True when the environment describes more than one process. */
export function isDistributed(env: Env = process.env): boolean {
  return readDistEnv(env).worldSize > 1;
}
