// Preloaded (`node --import`) into every process the demo runner starts. The runner holds the
// write end of the child's stdin pipe and never writes to it; when the runner dies, whatever the
// cause (SIGKILL included), the kernel closes that end and the child reads EOF. As a second sign
// (a child busy with its own streams did not always see that EOF in time), its parent process id
// changes when the runner dies (it is re-parented). Either way it stops as on SIGTERM (a sidecar
// drains, an app closes) and exits at the latest 3 s later (nobody is left to serve: a sidecar's
// drain period would only hold the ports). So no child outlives its runner and holds the demo's
// ports against the next `npm start`.
const stdin = process.stdin
if (!stdin.isTTY) {
  const parent = process.ppid
  let gone = false
  const orphaned = () => {
    if (gone) return
    gone = true
    process.kill(process.pid, 'SIGTERM')
    setTimeout(() => process.exit(1), 3_000).unref()
  }
  stdin.once('end', orphaned)
  stdin.once('error', orphaned)
  stdin.resume()
  // the pipe alone must not keep a process alive that is otherwise done
  ;(stdin as { unref?: () => void }).unref?.()
  setInterval(() => {
    if (process.ppid !== parent) orphaned()
  }, 500).unref()
}
