// `npm start`: the local mesh demo (examples/demo/: the control plane in local mode, four
// services each behind its own sidecar, a traffic generator and a live summary). The single
// hello service behind one static sidecar is `npm run hello`; the static-mode example `npm run mesh`.
import './demo/start.ts'
