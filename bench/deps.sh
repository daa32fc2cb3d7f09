#!/usr/bin/env bash
# Builds the peer copy tools of the goodput benchmark (bench/goodput) from the
# Go module proxy, pinned, into a cache outside the checkout keyed by version:
#
#   ${BALLAST_BENCH_CACHE:-$HOME/.cache/ballast/bench}/<name>-<version>/<name>
#
# A binary that is already there is not rebuilt. Usage: deps.sh [crane|regctl]...
set -euo pipefail

cache=${BALLAST_BENCH_CACHE:-$HOME/.cache/ballast/bench}
# crane: the go-containerregistry version of ballast's go.mod. regctl:
# v0.11.7, the newest on the proxy here; it needs Go 1.26.0.
crane_version=v0.22.1
regctl_version=v0.11.7

build() {
  local name=$1 version=$2 pkg=$3
  local dir="$cache/$name-$version"
  if [[ -x "$dir/$name" ]]; then
    echo "bench-deps: $name $version already built in $dir"
    return
  fi
  mkdir -p "$dir/.gobin"
  echo "bench-deps: building $name $version into $dir"
  GOBIN="$dir/.gobin" GOFLAGS=-mod=readonly go install -trimpath -ldflags "-s -w" "$pkg@$version"
  mv "$dir/.gobin/$name" "$dir/$name"
  rmdir "$dir/.gobin"
}

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(crane regctl)
for t in "${targets[@]}"; do
  case $t in
    crane) build crane "$crane_version" github.com/google/go-containerregistry/cmd/crane ;;
    regctl) build regctl "$regctl_version" github.com/regclient/regclient/cmd/regctl ;;
    *) echo "bench-deps: unknown tool $t (want crane or regctl)" >&2; exit 2 ;;
  esac
done
