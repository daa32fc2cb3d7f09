#!/usr/bin/env bash
# Builds the real components of the end-to-end test (etcd, kube-apiserver,
# Argo CD, the helm and kustomize CLIs that Argo CD's repo-server runs, and the cosign CLI
# the trust tests sign and verify with) from the Go
# module proxy, each in its own wrapper module here, into
# a cache directory outside the checkout keyed by version:
#
#   ${BALLAST_E2E_CACHE:-$HOME/.cache/ballast/e2e}/<name>-<version>/<binary>
#
# A binary that is already there is not rebuilt, so a machine pays the cold
# build (~15 min on 2 cores) once. Usage: build.sh [etcd|kube-apiserver|argocd|helm|kustomize|cosign]...
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${BALLAST_E2E_CACHE:-$HOME/.cache/ballast/e2e}

# Versions: keep in step with the go.mod of each wrapper and with
# test/e2e/deps.go, which looks the binaries up by the same names.
etcd_version=v3.6.13
kube_version=v1.37.2
argocd_version=v3.2.11
helm_version=v3.22.0
kustomize_version=v5.8.1
cosign_version=v2.6.5

# build NAME VERSION BINARY PACKAGE [LDFLAGS [CGO_ENABLED]]
build() {
  local name=$1 version=$2 binary=$3 pkg=$4 ldflags=${5:-} cgo=${6:-${CGO_ENABLED:-}}
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
  (cd "$here/$name" && CGO_ENABLED=$cgo GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w $ldflags" -o "$dir/.$binary.tmp" "$pkg")
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

# cosign as its release Makefile stamps it (`cosign version` prints it).
cosign_ldflags() {
  printf -- '-X sigs.k8s.io/release-utils/version.gitVersion=%s -X sigs.k8s.io/release-utils/version.gitTreeState=clean' "$cosign_version"
}

# Helm as its release Makefile stamps it: the version `helm version` prints
# and the Kubernetes version charts see by default (client-go's minor, major+1).
helm_ldflags() {
  local p=helm.sh/helm/v3
  printf -- '-X %s/internal/version.version=%s -X %s/internal/version.gitTreeState=clean ' "$p" "$helm_version" "$p"
  local k8s major minor
  k8s=$(cd "$here/helm" && go list -m -f '{{.Version}}' k8s.io/client-go)
  k8s=${k8s#v0.}; major=1; minor=${k8s%%.*}
  for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    printf -- '-X %s.k8sVersionMajor=%s -X %s.k8sVersionMinor=%s ' "$p" "$major" "$p" "$minor"
  done
}

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(etcd kube-apiserver argocd helm kustomize cosign)
for t in "${targets[@]}"; do
  case $t in
    etcd) build etcd "$etcd_version" etcd go.etcd.io/etcd/server/v3 ;;
    kube-apiserver) build kube-apiserver "$kube_version" kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$(kube_ldflags)" ;;
    argocd)
      build argocd "$argocd_version" argocd github.com/argoproj/argo-cd/v3/cmd
      argocd_manifests ;;
    # The helm wrapper's go.mod selects exactly the module versions of
    # ballast's own go.mod (ballast links Helm's library), and it is built
    # with the flags of `make build` (CGO_ENABLED=0, -trimpath): every
    # package ballast already compiled comes from the Go build cache, so the
    # cold build compiles little more than Helm's CLI. Keep the two in step
    # when ballast's go.mod moves (TestHelmDepsInStep checks it).
    helm) build helm "$helm_version" helm helm.sh/helm/v3/cmd/helm "$(helm_ldflags)" 0 ;;
    # Argo CD's repo-server runs `kustomize build` (its image ships one);
    # remote bases make Kustomize run git, through the repo-server's
    # gitconfig.
    kustomize) build kustomize "$kustomize_version" kustomize sigs.k8s.io/kustomize/kustomize/v5 "" 0 ;;
    # cosign is used by the trust tests only (signing upstream, `cosign
    # verify --key` against the edge registry); ballast links sigstore's
    # library, not cosign's packages.
    cosign) build cosign "$cosign_version" cosign github.com/sigstore/cosign/v2/cmd/cosign "$(cosign_ldflags)" 0 ;;
    *) echo "e2e-deps: unknown component $t (want etcd, kube-apiserver, argocd, helm, kustomize or cosign)" >&2; exit 2 ;;
  esac
done
