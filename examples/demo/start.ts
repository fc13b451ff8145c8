// `node examples/demo/start.ts [options]` (what `npm start` runs): the local mesh demo.
import { runDemo } from './runner/main.ts'
import { USAGE, parseOptions } from './runner/options.ts'

const o = parseOptions(process.argv.slice(2), process.env, process.stdout.isTTY === true)
if ('error' in o) {
  if (o.error !== '') process.stderr.write(`weft demo: ${o.error}\n`)
  ;(o.error === '' ? process.stdout : process.stderr).write(USAGE)
  process.exitCode = o.error === '' ? 0 : 2
} else {
  process.exitCode = await runDemo(o)
}
