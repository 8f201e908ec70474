// The launcher and failure handling with real processes: 2 ranks through
// `launch`, a rank that exits mid-training (the launcher stops the others and
// names it), a rank killed with SIGKILL when started without our launcher (as
// mpirun would: the survivor fails naming it), and a wrong master address.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { launch, parseLaunchArgs, relaunchTrainForGpus, resolveCommand } from '../../src/dist/launcher.js';
import { childEnv, freePort, jsRoot, multiProcessSkipReason, spawnRank, until, workerScript } from './helpers.js';

describe('launcher arguments', () => {
  it('parses torchrun-style options and the command after --', () => {
    expect(parseLaunchArgs(['--nproc_per_node', '4', '--nnodes=2', '--node_rank', '1', '--master_addr', 'n0', '--master_port=1234', '--', 'train', '--lr', '0.10'])).toEqual({
      nprocPerNode: 4, nnodes: 2, nodeRank: 1, masterAddr: 'n0', masterPort: 1234, command: ['train', '--lr', '0.10'],
    });
    expect(() => parseLaunchArgs(['--nnodes', '2', '--', 'train'])).toThrow(/--nproc_per_node is required/);
    expect(() => parseLaunchArgs(['--nproc_per_node', '2', '--bogus', '1'])).toThrow(/unknown option --bogus/);
  });

  it('runs detseg3d subcommands, scripts with node, and programs as given', () => {
    const [node, bin, ...rest] = resolveCommand(['train', '--data', 'x']);
    expect(node).toBe(process.execPath);
    expect(bin).toMatch(/bin[/\\]detseg3d\.js$/);
    expect(rest).toEqual(['train', '--data', 'x']);
    expect(resolveCommand(['w.mjs', 'a'])).toEqual([process.execPath, 'w.mjs', 'a']);
    expect(resolveCommand(['/usr/bin/env', 'true'])).toEqual(['/usr/bin/env', 'true']);
    expect(() => resolveCommand([])).toThrow(/nothing to run/);
  });

  it('rejects bad sizes before starting anything', async () => {
    await expect(launch({ nprocPerNode: 0, command: ['x.mjs'] })).rejects.toThrow(/--nproc_per_node must be a positive integer/);
    await expect(launch({ nprocPerNode: 2, nnodes: 2, nodeRank: 2, command: ['x.mjs'] })).rejects.toThrow(/--node_rank 2 is not in \[0, 2\)/);
  });

  it('train --gpus 1 (or inside a launched rank) trains in this process', async () => {
    const twoGpus = { cudaCompiled: true, gpus: [0, 1].map((index) => ({ index, name: 'GPU', totalMemory: 1, computeCapability: '9.0', multiprocessors: 1 })), gpuNote: '' };
    expect(await relaunchTrainForGpus(['--gpus', '1'], 1, {}, twoGpus)).toBeNull();
    expect(await relaunchTrainForGpus(['--gpus', '4'], 4, { RANK: '0', WORLD_SIZE: '4' })).toBeNull();
  });
});

const skip = multiProcessSkipReason();
if (skip) console.warn(`test/dist/launcher: multi-process tests skipped: ${skip}`);

describe.skipIf(!!skip)('launcher and failures with 2 processes', () => {
  it('launch: 2 ranks get RANK/WORLD_SIZE/LOCAL_RANK/MASTER_*, rendezvous through the launcher, and succeed', async () => {
    const out: string[] = ['', ''];
    const port = await freePort();
    const code = await launch({
      nprocPerNode: 2, masterPort: port, command: [workerScript, 'collectives'], env: childEnv() as Record<string, string>,
      onOutput: (r, s, chunk) => (out[r] += chunk), log: () => {},
    });
    expect(code, out.join('\n')).toBe(0);
    for (const r of [0, 1]) expect(out[r]).toContain(`RESULT {"rank":${r},`);
  });

  it('launch: a rank exiting mid-training stops the others; the launcher exits non-zero naming it', async () => {
    const logs: string[] = [];
    const port = await freePort();
    const code = await launch({
      nprocPerNode: 2, masterPort: port, command: [workerScript, 'die'], killGraceMs: 2000,
      env: childEnv({ TEST_EXIT_CODE: '7', TEST_TIMEOUT_MS: '20000' }) as Record<string, string>,
      onOutput: () => {}, log: (l) => logs.push(l),
    });
    expect(code).toBe(7);
    expect(logs.join('\n')).toMatch(/rank 1 \(local rank 1, pid \d+\) exited with code 7; stopping the other ranks/);
  });

  it('without our launcher (as mpirun): SIGKILL of rank 1 makes rank 0 exit non-zero naming rank 1', async () => {
    const port = await freePort();
    const extra = { TEST_TIMEOUT_MS: '20000' };
    const r0 = spawnRank(0, 2, port, ['die'], extra);
    const r1 = spawnRank(1, 2, port, ['die'], extra);
    await until(() => r1.output().includes('STEP 2'), 30_000);
    r1.proc.kill('SIGKILL');
    const [a, b] = await Promise.all([r0.done, r1.done]);
    expect(b.signal).toBe('SIGKILL');
    expect(a.code).toBe(1);
    // The collective's own error, plus the store's account of who died (not a timeout).
    expect(a.stderr).toMatch(/rank 0: gloo allReduce failed on rank 0 of 2/);
    expect(a.stderr).toMatch(/cause: rank 1 disconnected from the rendezvous store \(its process exited or was killed\)/);
  });

  it('SIGTERM to the launcher is forwarded: every rank stops and the launcher exits 143', async () => {
    const port = await freePort();
    const url = pathToFileURL(join(jsRoot, 'dist', 'launcher.js')).href;
    const code = `import(${JSON.stringify(url)}).then((m) => m.runLaunch(['--nproc_per_node', '2', '--master_port', '${port}', '--', ${JSON.stringify(workerScript)}, 'die'])).then((c) => process.exit(c))`;
    const proc = spawn(process.execPath, ['-e', code], { env: childEnv({ TEST_TIMEOUT_MS: '20000' }), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (err += d));
    await until(() => (out.match(/STEP 2/g) ?? []).length === 2, 30_000);
    const exit = new Promise<number | null>((r) => proc.on('close', (c) => r(c)));
    proc.kill('SIGTERM');
    expect(await exit).toBe(143);
    expect(err).toContain('received SIGTERM; stopped all ranks');
  });

  it('a wrong master address fails fast and clearly', async () => {
    const r = await spawnRank(1, 2, 29500, ['collectives'], { MASTER_ADDR: 'no-such-master.invalid' }).done;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/rank 1: cannot reach the rendezvous store \(master\) at no-such-master.invalid:29500: .*Check MASTER_ADDR/);
  });
});
