#!/usr/bin/env bash
# Builds the real components of the end-to-end test (etcd, kube-apiserver,
# Argo CD) from the Go module proxy, each in its own wrapper module here, into
# a cache directory outside the checkout keyed by version:
#
#   ${BALLAST_E2E_CACHE:-$HOME/.cache/ballast/e2e}/<name>-<version>/<binary>
#
# A binary that is already there is not rebuilt, so a machine pays the cold
# build (~15 min on 2 cores) once. Usage: build.sh [etcd|kube-apiserver|argocd]...
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${BALLAST_E2E_CACHE:-$HOME/.cache/ballast/e2e}

# Versions: keep in step with the go.mod of each wrapper and with
# test/e2e/deps.go, which looks the binaries up by the same names.
etcd_version=v3.6.13
kube_version=v1.37.2
argocd_version=v3.2.11

# build NAME VERSION BINARY PACKAGE [LDFLAGS]
build() {
  local name=$1 version=$2 binary=$3 pkg=$4 ldflags=${5:-}
  local dir="$cache/$name-$version"
  if [[ -x "$dir/$binary" ]]; then
    echo "e2e-deps: $name $version already built in $dir"
    return
  fi
  mkdir -p "$dir"
  echo "e2e-deps: building $name $version into $dir (slow the first time)"
  local start=$SECONDS
  # Build to a temporary name and rename, so an interrupted build is redone
  # rather than trusted.
  (cd "$here/$name" && GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w $ldflags" -o "$dir/.$binary.tmp" "$pkg")
  mv "$dir/.$binary.tmp" "$dir/$binary"
  echo "e2e-deps: $name $version built in $((SECONDS - start)) s"
}

kube_ldflags() {
  local v=${kube_version#v} p
  local major=${v%%.*} rest=${v#*.}
  local minor=${rest%%.*}
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    printf -- '-X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean ' \
      "$p" "$kube_version" "$p" "$major" "$p" "$minor" "$p"
  done
}

# The test installs Argo CD's CRDs and ConfigMaps/Secrets from the module
# source of the same version.
argocd_manifests() {
  local dst="$cache/argocd-$argocd_version/manifests" src
  [[ -f "$dst/install.yaml" ]] && return
  src=$(cd "$here/argocd" && go list -m -f '{{.Dir}}' github.com/argoproj/argo-cd/v3)/manifests
  rm -rf "$dst.tmp"
  mkdir -p "$dst.tmp"
  cp -r "$src/crds" "$src/install.yaml" "$dst.tmp/"
  chmod -R u+w "$dst.tmp"
  mv "$dst.tmp" "$dst"
}

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(etcd kube-apiserver argocd)
for t in "${targets[@]}"; do
  case $t in
    etcd) build etcd "$etcd_version" etcd go.etcd.io/etcd/server/v3 ;;
    kube-apiserver) build kube-apiserver "$kube_version" kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$(kube_ldflags)" ;;
    argocd)
      build argocd "$argocd_version" argocd github.com/argoproj/argo-cd/v3/cmd
      argocd_manifests ;;
    *) echo "e2e-deps: unknown component $t (want etcd, kube-apiserver or argocd)" >&2; exit 2 ;;
  esac
done
