// Preloaded (`node --import`) into every process the demo runner starts. The runner holds the
// write end of the child's stdin pipe and never writes to it; when the runner dies, whatever the
// cause (SIGKILL included), the kernel closes that end and the child reads EOF: it then stops as
// on SIGTERM (a sidecar drains, an app closes), and exits at the latest 3 s later (nobody is left
// to serve: a sidecar's drain period would only hold the ports). So no child
// outlives its runner and holds the demo's ports against the next `npm start`.
const stdin = process.stdin
if (!stdin.isTTY) {
  const orphaned = () => {
    process.kill(process.pid, 'SIGTERM')
    setTimeout(() => process.exit(1), 3_000).unref()
  }
  stdin.once('end', orphaned)
  stdin.once('error', orphaned)
  stdin.resume()
  // the pipe alone must not keep a process alive that is otherwise done
  ;(stdin as { unref?: () => void }).unref?.()
}
