// The gateway's Node options (a 64 MB young generation, docs/operations.md "Build and image")
// are part of how it runs: `npm start`, the Docker image and the development start must give
// node the same ones, and the benchmarks, which run the gateway in their own process, must
// too, or they measure a gateway nobody runs.

import { spawnSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import t from 'tap'

const read = (file: string) => readFile(new URL(`../${file}`, import.meta.url), 'utf8')

/** The options given to node itself in a command line (before the script), without the TypeScript loader. */
function nodeFlags(words: string[]): string[] {
  const flags: string[] = []
  for (let i = words.indexOf('node') + 1; i < words.length && words[i]!.startsWith('--'); i++) {
    if (words[i] === '--import') i++
    else flags.push(words[i]!)
  }
  return flags
}

const scripts = async () => (JSON.parse(await read('package.json')) as { scripts: Record<string, string> }).scripts

t.test('npm start runs node with a 64 MB young generation, and this node accepts it', async (t) => {
  const flags = nodeFlags((await scripts()).start!.split(' '))
  t.same(flags, ['--max-semi-space-size=64'])
  const run = spawnSync(process.execPath, [...flags, '-e', ''], { encoding: 'utf8' })
  t.equal(run.status, 0, run.stderr)
})

t.test('the Docker image, the development start and the benchmarks give node the same flags as npm start', async (t) => {
  const { start, bench, 'bench:metrics': metricsBench } = await scripts()
  const expected = nodeFlags(start!.split(' '))

  // The image sets them in NODE_OPTIONS, so that an operator can change them without a new command.
  const dockerfile = await read('Dockerfile')
  const nodeOptions = /^ENV .*\bNODE_OPTIONS=(?:"([^"]*)"|(\S+))/m.exec(dockerfile)
  t.ok(nodeOptions, 'the Dockerfile sets NODE_OPTIONS')
  t.same((nodeOptions![1] ?? nodeOptions![2]!).split(' '), expected, 'Dockerfile NODE_OPTIONS')
  t.same(nodeFlags(JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[]), [], 'its CMD gives node no options of its own')

  const devStart = /^exec (node .*)$/m.exec(await read('scripts/dev.sh'))
  t.ok(devStart, 'scripts/dev.sh execs node')
  t.same(nodeFlags(devStart![1]!.split(' ')), expected, 'scripts/dev.sh')

  // Every benchmark runs the gateway in its own process (the verifier's too, to issue its tokens).
  const runs = [...bench!.split('&&'), metricsBench!].map((command) => command.trim().split(' '))
  t.same(runs.map((words) => words.at(-1)), ['bench/refresh.ts', 'bench/session-scale.ts', 'bench/login-overhead.ts', 'bench/verifier.ts', 'bench/metrics-cost.ts'])
  for (const words of runs) t.same(nodeFlags(words), expected, words.at(-1)!)
})
