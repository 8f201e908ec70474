// The detseg3d command line: a thin shell over the library.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { info } from '../info.js';

function formatBytes(n: number): string {
  return `${(n / 2 ** 30).toFixed(1)} GiB`;
}

export async function main(argv: string[] = hideBin(process.argv)): Promise<void> {
  await yargs(argv)
    .scriptName('detseg3d')
    .usage('$0 <command> [options]')
    .command(
      'info',
      'Version, build flags, CPU SIMD level, threads, CUDA and visible GPUs',
      (y) => y.option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
      (args) => {
        const i = info();
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
      },
    )
    .demandCommand(1, 'choose a command (see --help)')
    .strict()
    .fail((msg, err, y) => {
      if (err) throw err;
      console.error(`detseg3d: ${msg}`);
      console.error('run `detseg3d --help` for usage');
      process.exit(2);
    })
    .help()
    .parseAsync();
}
