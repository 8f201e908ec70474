// The detseg3d command line: a thin shell over the library.
// Usage errors print one line and exit with code 2; other failures exit 1.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { launchBuilder, launchHandler } from '../dist/launcher.js';
import { distInfo } from '../dist/process_group.js';
import { info } from '../info.js';
import { ConfigError } from '../train/config.js';
import { demoCommand, synthCommand } from './demo.js';
import { evaluateCommand, inferCommand } from './infer_cmd.js';
import { trainCommand, validateCommand } from './train_cmd.js';

function formatBytes(n: number): string {
  return `${(n / 2 ** 30).toFixed(1)} GiB`;
}

function usageError(msg: string): never {
  console.error(`detseg3d: ${msg} (see --help)`);
  process.exit(2);
}

export async function main(argv: string[] = hideBin(process.argv)): Promise<void> {
  let cli = yargs(argv)
    .scriptName('detseg3d')
    .usage('$0 <command> [options]\n\n3D lesion detection (RetinaNet, MONAI semantics) with a native core.')
    .parserConfiguration({ 'camel-case-expansion': false })
    .command(
      'info',
      'Version, build flags, CPU SIMD level, threads, CUDA, GPUs and distributed backends',
      (y) => y.option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
      (args) => {
        const i = { ...info(), ...distInfo() };
        if (args.json) {
          console.log(JSON.stringify(i, null, 2));
          return;
        }
        console.log(`detseg3d ${i.version}`);
        console.log(`build:        ${i.buildFlags}`);
        console.log(`cpu simd:     ${i.simd} (supported: ${i.simdSupported})`);
        console.log(`threads:      ${i.threads}`);
        console.log(`cuda:         ${i.cudaCompiled ? `compiled (runtime ${i.cudaRuntimeVersion})` : 'not compiled'}`);
        if (i.gpus.length === 0) console.log(`gpus:         none (${i.gpuNote})`);
        for (const g of i.gpus)
          console.log(`gpu ${g.index}:        ${g.name}, ${formatBytes(g.totalMemory)}, sm_${g.computeCapability.replace('.', '')}`);
        console.log(`gloo:         ${i.glooCompiled ? 'yes' : 'no (install libgloo-dev and rebuild for multi-process CPU training)'}`);
        console.log(`nccl:         ${i.ncclCompiled ? 'supported (loaded at run time)' : 'no (needs a CUDA build)'}`);
      },
    );
  cli = trainCommand(cli);
  cli = validateCommand(cli);
  cli = inferCommand(cli);
  cli = evaluateCommand(cli);
  cli = synthCommand(cli);
  cli = demoCommand(cli);
  cli = cli.command(
    'launch',
    'Run a command as N processes per node (torchrun-style): launch --nproc_per_node N [--nnodes M --node_rank R --master_addr A --master_port P] -- train ...',
    (y) => launchBuilder(y),
    (args) => launchHandler(args as never),
  );
  try {
    await cli
      .demandCommand(1, 'choose a command (see --help)')
      .strict()
      .fail((msg, err) => {
        if (err) throw err;
        usageError(msg);
      })
      .help()
      .parseAsync();
  } catch (e) {
    if (e instanceof ConfigError) usageError(e.message);
    throw e;
  }
}
