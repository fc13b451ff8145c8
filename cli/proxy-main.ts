// Entry of the static sidecar's single-file bundle (build/bundle.ts writes dist/sidecar/weft-proxy.cjs
// from it; bin/weft.js runs it for `weft proxy` without --control-plane or --resources): the
// `weft` program with only its proxy command, as cli/weft.ts registers it for `weft proxy`.
import { registerProxy, weftProgram } from './proxy-command.ts'

export async function main(argv: readonly string[]): Promise<void> {
  const program = weftProgram()
  registerProxy(program)
  await program.parseAsync([...argv])
}
