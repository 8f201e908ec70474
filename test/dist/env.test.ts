// Launcher environments: torchrun / detseg3d launch, Open MPI and SLURM.
import { describe, expect, it } from 'vitest';
import { readDistEnv } from '../../src/dist/env.js';

describe('readDistEnv', () => {
  it('no launcher: a single process', () => {
    const e = readDistEnv({});
    expect(e).toMatchObject({ rank: 0, worldSize: 1, localRank: 0, source: 'single', masterPort: 29500 });
  });

  it('torchrun / detseg3d launch variables', () => {
    const e = readDistEnv({ RANK: '5', WORLD_SIZE: '8', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '4', MASTER_ADDR: '10.0.0.7', MASTER_PORT: '1234' });
    expect(e).toMatchObject({ rank: 5, worldSize: 8, localRank: 1, localWorldSize: 4, masterAddr: '10.0.0.7', masterPort: 1234, source: 'torchrun' });
    // Our launcher serves the store itself on MASTER_PORT.
    expect(readDistEnv({ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '1234', DETSEG3D_AGENT_STORE: '1' })).toMatchObject({ agentStore: true, storePort: 1234 });
    // Under torchrun its agent owns MASTER_PORT, so rank 0 hosts our store on the next port.
    expect(readDistEnv({ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '1234', TORCHELASTIC_USE_AGENT_STORE: 'True' })).toMatchObject({ agentStore: false, storePort: 1235 });
  });

  it('Open MPI (mpirun) variables, master from MASTER_ADDR', () => {
    const e = readDistEnv({ OMPI_COMM_WORLD_RANK: '3', OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_LOCAL_RANK: '1', OMPI_COMM_WORLD_LOCAL_SIZE: '2', MASTER_ADDR: 'node0' });
    expect(e).toMatchObject({ rank: 3, worldSize: 4, localRank: 1, localWorldSize: 2, masterAddr: 'node0', masterPort: 29500, source: 'mpi' });
    expect(() => readDistEnv({ OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '4' })).toThrow(/MASTER_ADDR is not set/);
  });

  it('SLURM (srun) variables, master from SLURM_LAUNCH_NODE_IPADDR unless MASTER_ADDR is set', () => {
    const s = { SLURM_PROCID: '6', SLURM_NTASKS: '8', SLURM_LOCALID: '2', SLURM_NTASKS_PER_NODE: '4(x2)', SLURM_LAUNCH_NODE_IPADDR: '192.168.1.5' };
    expect(readDistEnv(s)).toMatchObject({ rank: 6, worldSize: 8, localRank: 2, localWorldSize: 4, masterAddr: '192.168.1.5', source: 'slurm' });
    expect(readDistEnv({ ...s, MASTER_ADDR: 'head', MASTER_PORT: '4000' })).toMatchObject({ masterAddr: 'head', masterPort: 4000 });
  });

  it('precedence: explicit RANK over MPI over SLURM', () => {
    const mpiInSlurm = { OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '2', SLURM_PROCID: '0', SLURM_NTASKS: '1', MASTER_ADDR: 'a' };
    expect(readDistEnv(mpiInSlurm).source).toBe('mpi');
    expect(readDistEnv({ ...mpiInSlurm, RANK: '0', WORLD_SIZE: '1' }).source).toBe('torchrun');
  });

  it('rejects inconsistent values with the variable named', () => {
    expect(() => readDistEnv({ RANK: '2', WORLD_SIZE: '2' })).toThrow(/rank 2 is not below the world size 2/);
    expect(() => readDistEnv({ RANK: 'x', WORLD_SIZE: '2' })).toThrow(/RANK="x" is not an integer/);
    expect(() => readDistEnv({ RANK: '0' })).toThrow(/RANK and WORLD_SIZE must be set together/);
    expect(() => readDistEnv({ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '70000' })).toThrow(/not a TCP port/);
  });
});
