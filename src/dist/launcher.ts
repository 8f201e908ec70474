// `detseg3d launch`: starts one process per GPU (or CPU worker) on this node
// with the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT), serves the
// rendezvous store on node 0 (so it outlives any one rank), forwards SIGINT /
// SIGTERM / SIGHUP to the ranks, and when one rank fails stops the others and
// exits non-zero with a message naming it.
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Argv } from 'yargs';
import { DEFAULT_MASTER_PORT } from './env.js';
import { insideDistributedJob, planGpuTraining, type GpuVisibility } from './gpu_launch.js';
import { StoreServer } from './store.js';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes?: number;
  nodeRank?: number;
  masterAddr?: string;
  masterPort?: number;
  /** What to run: a detseg3d subcommand (`['train', ...]`), a script (`x.js|.mjs|.cjs`, run with node) or a program. */
  command: string[];
  /** Extra environment for every rank. */
  env?: Record<string, string>;
  /** Grace period between SIGTERM and SIGKILL when stopping ranks. Default 5 s. */
  killGraceMs?: number;
  /** Where messages go (default: stderr). */
  log?: (line: string) => void;
  /** Receives the ranks' output instead of inheriting this process's stdout/stderr. */
  onOutput?: (rank: number, stream: 'stdout' | 'stderr', chunk: string) => void;
}

/** The argv to spawn for a launch command (see LaunchOptions.command). */
export function resolveCommand(command: string[]): string[] {
  if (command.length === 0) throw new Error('detseg3d launch: nothing to run; usage: detseg3d launch --nproc_per_node N -- train ...');
  const [first, ...rest] = command;
  if (/\.(c|m)?js$/.test(first)) return [process.execPath, first, ...rest];
  if (first === 'node') return [process.execPath, ...rest];
  if (first.includes('/')) return command;
  return [process.execPath, join(packageRoot, 'bin', 'detseg3d.js'), ...command];
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Runs the ranks of this node; resolves with the exit code the launcher should exit with. */
export async function launch(opts: LaunchOptions): Promise<number> {
  const nproc = opts.nprocPerNode;
  const nnodes = opts.nnodes ?? 1;
  const nodeRank = opts.nodeRank ?? 0;
  const masterAddr = opts.masterAddr ?? '127.0.0.1';
  const masterPort = opts.masterPort ?? DEFAULT_MASTER_PORT;
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const check = (ok: boolean, msg: string) => {
    if (!ok) throw new Error(`detseg3d launch: ${msg}`);
  };
  check(Number.isInteger(nproc) && nproc >= 1, `--nproc_per_node must be a positive integer, got ${nproc}`);
  check(Number.isInteger(nnodes) && nnodes >= 1, `--nnodes must be a positive integer, got ${nnodes}`);
  check(Number.isInteger(nodeRank) && nodeRank >= 0 && nodeRank < nnodes, `--node_rank ${nodeRank} is not in [0, ${nnodes})`);
  check(Number.isInteger(masterPort) && masterPort > 0 && masterPort < 65536, `--master_port ${masterPort} is not a TCP port`);
  const argv = resolveCommand(opts.command);
  const worldSize = nproc * nnodes;

  // Node 0 serves the store; the other nodes' ranks connect to it.
  const server = nodeRank === 0 && worldSize > 1 ? await StoreServer.listen(masterPort) : undefined;
  const threads = String(Math.max(1, Math.floor(availableParallelism() / nproc)));

  const children: { rank: number; local: number; proc: ChildProcess; done: boolean }[] = [];
  let failure: { code: number; message: string } | undefined;
  let stopping = false;
  let killTimer: NodeJS.Timeout | undefined;

  const stopAll = (signal: NodeJS.Signals) => {
    stopping = true;
    for (const c of children) if (!c.done) c.proc.kill(signal);
    killTimer ??= setTimeout(() => {
      for (const c of children) if (!c.done) c.proc.kill('SIGKILL');
    }, opts.killGraceMs ?? 5000);
  };
  const onSignal = (sig: NodeJS.Signals) => {
    if (!failure) failure = { code: 128 + (sig === 'SIGINT' ? 2 : sig === 'SIGHUP' ? 1 : 15), message: `received ${sig}; stopped all ranks` };
    stopAll(sig);
  };
  for (const s of FORWARDED) process.on(s, onSignal);

  const exits = [];
  for (let local = 0; local < nproc; local++) {
    const rank = nodeRank * nproc + local;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DETSEG3D_NUM_THREADS: process.env.DETSEG3D_NUM_THREADS ?? threads,
      ...opts.env,
      RANK: String(rank),
      WORLD_SIZE: String(worldSize),
      LOCAL_RANK: String(local),
      LOCAL_WORLD_SIZE: String(nproc),
      GROUP_RANK: String(nodeRank),
      MASTER_ADDR: masterAddr,
      MASTER_PORT: String(masterPort),
      DETSEG3D_STORE_PORT: String(masterPort),
      DETSEG3D_AGENT_STORE: worldSize > 1 ? '1' : '0',
    };
    const proc = spawn(argv[0], argv.slice(1), { env, stdio: opts.onOutput ? ['inherit', 'pipe', 'pipe'] : 'inherit' });
    if (opts.onOutput) {
      const sink = opts.onOutput;
      proc.stdout?.on('data', (d: Buffer) => sink(rank, 'stdout', d.toString()));
      proc.stderr?.on('data', (d: Buffer) => sink(rank, 'stderr', d.toString()));
    }
    const child = { rank, local, proc, done: false };
    children.push(child);
    exits.push(
      new Promise<void>((res) => {
        proc.on('error', (e) => {
          child.done = true;
          if (!failure) failure = { code: 1, message: `rank ${rank}: cannot start ${argv[0]}: ${e.message}` };
          stopAll('SIGTERM');
          res();
        });
        proc.on('close', (code, signal) => {
          child.done = true;
          if ((code !== 0 || signal) && !stopping) {
            const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
            failure = {
              code: code && code > 0 ? code : 1,
              message: `rank ${rank} (local rank ${local}, pid ${proc.pid}) ${how}; stopping the other ${worldSize > 1 ? 'ranks' : 'processes'}`,
            };
            log(`detseg3d launch: ${failure.message}`);
            stopAll('SIGTERM');
          }
          res();
        });
      }),
    );
  }
  await Promise.all(exits);
  if (killTimer) clearTimeout(killTimer);
  for (const s of FORWARDED) process.off(s, onSignal);
  await server?.close();
  if (failure) {
    log(`detseg3d launch: failed: ${failure.message}`);
    return failure.code;
  }
  return 0;
}

// ---- command line --------------------------------------------------------------

export interface LaunchArgs {
  nproc_per_node: number;
  nnodes: number;
  node_rank: number;
  master_addr: string;
  master_port: number;
}

/** yargs builder for `detseg3d launch [options] -- <command ...>`. */
export function launchBuilder<T>(y: Argv<T>) {
  return y
    .usage('$0 launch --nproc_per_node N [--nnodes M --node_rank R --master_addr A --master_port P] -- train ...')
    .option('nproc_per_node', { type: 'number', demandOption: true, describe: 'processes on this node (one per GPU)' })
    .option('nnodes', { type: 'number', default: 1, describe: 'number of nodes' })
    .option('node_rank', { type: 'number', default: 0, describe: 'index of this node' })
    .option('master_addr', { type: 'string', default: '127.0.0.1', describe: 'address of node 0' })
    .option('master_port', { type: 'number', default: DEFAULT_MASTER_PORT, describe: 'rendezvous port on node 0' })
    .parserConfiguration({ 'populate--': true });
}

/** yargs handler: runs the launch and exits with its code. */
export async function launchHandler(args: LaunchArgs & { '--'?: (string | number)[]; _?: (string | number)[] }): Promise<void> {
  // yargs turns numeric-looking words after -- into numbers ('0.10' -> 0.1); take them verbatim from process.argv.
  const raw = process.argv.indexOf('--');
  const rest = raw >= 0 ? process.argv.slice(raw + 1) : (args['--'] ?? []).map(String);
  const code = await launch({
    nprocPerNode: args.nproc_per_node,
    nnodes: args.nnodes,
    nodeRank: args.node_rank,
    masterAddr: args.master_addr,
    masterPort: args.master_port,
    command: rest,
  });
  process.exitCode = code;
}

/** Parses `[options] -- command...` without yargs (options as --key value or --key=value). */
export function parseLaunchArgs(argv: string[]): LaunchOptions {
  const sep = argv.indexOf('--');
  const head = sep >= 0 ? argv.slice(0, sep) : argv;
  const command = sep >= 0 ? argv.slice(sep + 1) : [];
  const vals: Record<string, string> = {};
  for (let i = 0; i < head.length; i++) {
    const m = /^--([a-z_-]+)(?:=(.*))?$/.exec(head[i]);
    if (!m) throw new Error(`detseg3d launch: unexpected argument '${head[i]}' (put the command after --)`);
    const key = m[1].replace(/-/g, '_');
    const v = m[2] ?? head[++i];
    if (v === undefined) throw new Error(`detseg3d launch: --${m[1]} needs a value`);
    vals[key] = v;
  }
  const known = ['nproc_per_node', 'nnodes', 'node_rank', 'master_addr', 'master_port'];
  for (const k of Object.keys(vals)) if (!known.includes(k)) throw new Error(`detseg3d launch: unknown option --${k}`);
  if (vals.nproc_per_node === undefined) throw new Error('detseg3d launch: --nproc_per_node is required');
  const num = (k: string) => (vals[k] === undefined ? undefined : Number(vals[k]));
  return {
    nprocPerNode: num('nproc_per_node')!,
    nnodes: num('nnodes'),
    nodeRank: num('node_rank'),
    masterAddr: vals.master_addr,
    masterPort: num('master_port'),
    command,
  };
}

/** `detseg3d launch ...` given the arguments after `launch`; resolves with the exit code. */
export async function runLaunch(argv: string[]): Promise<number> {
  return launch(parseLaunchArgs(argv));
}

/**
 * `detseg3d train --gpus N` (see gpu_launch.ts): checks N against the visible
 * GPUs, then, when N > 1 and this process is not already a rank of a
 * distributed job (no RANK / OMPI / SLURM variables), runs
 * `detseg3d train --device cuda <args without --gpus>` as N processes under
 * the launcher on this node and resolves with its exit code. Otherwise
 * resolves with null: the caller trains in this process (on cuda:LOCAL_RANK).
 * `machine` defaults to the addon's `info()`.
 */
export async function relaunchTrainForGpus(
  trainArgs: string[],
  gpus: number,
  env: NodeJS.ProcessEnv = process.env,
  machine?: GpuVisibility,
): Promise<number | null> {
  if (insideDistributedJob(env)) return null;
  const plan = planGpuTraining(trainArgs, gpus, machine ?? (await import('../info.js')).info());
  if (!plan.launch) return null;
  return launch({
    nprocPerNode: plan.nprocPerNode,
    masterAddr: '127.0.0.1',
    masterPort: env.MASTER_PORT ? Number(env.MASTER_PORT) : DEFAULT_MASTER_PORT,
    command: plan.command,
  });
}
