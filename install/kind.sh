#!/usr/bin/env bash
# Try Weft on a local kind cluster (needs Docker, kind and kubectl; Kubernetes >= 1.29 for native
# sidecars). Not run in CI: the test machines have no Docker. Usage: install/kind.sh [cluster-name]
set -euo pipefail
NAME="${1:-weft}"
IMAGE="ghcr.io/weft-mesh/weft:dev"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

kind get clusters | grep -qx "$NAME" || kind create cluster --name "$NAME"
docker build -f "$ROOT/install/Dockerfile" -t "$IMAGE" "$ROOT"
kind load docker-image "$IMAGE" --name "$NAME"

node "$ROOT/bin/weft.js" check --pre
node "$ROOT/bin/weft.js" install --image "$IMAGE" | kubectl apply -f -
kubectl -n weft-system rollout status deploy/weft-control-plane --timeout=120s

# a labelled namespace and an app: its pods get the sidecar
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace demo weft.io/inject=enabled --overwrite
kubectl -n demo create deployment web --image=nginx:1.27 --dry-run=client -o yaml | kubectl apply -f -
kubectl -n demo rollout status deploy/web --timeout=120s
kubectl -n demo get pods -o jsonpath='{range .items[*]}{.metadata.name}: {range .spec.initContainers[*]}{.name} {end}{"\n"}{end}'

# weft check needs the control plane's ports on this machine
kubectl -n weft-system port-forward deploy/weft-control-plane 8443 15011 >/dev/null &
PF=$!
trap 'kill $PF' EXIT
sleep 2
node "$ROOT/bin/weft.js" check
