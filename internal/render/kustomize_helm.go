package render

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"helm.sh/helm/v3/pkg/chartutil"
	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/render/charts"
)

// DefaultHelmCommand is the helm binary kustomize's helmCharts are
// inflated with when KustomizeOptions.HelmCommand is empty.
const DefaultHelmCommand = "helm"

// kustHelmChart is one entry of a kustomization's helmCharts (the fields
// that say where the chart comes from).
type kustHelmChart struct {
	Name    string `json:"name"`
	Repo    string `json:"repo"`
	Version string `json:"version"`
}

// kustHelmFields is what prepareHelmCharts reads of a kustomization.
type kustHelmFields struct {
	HelmCharts  []kustHelmChart `json:"helmCharts"`
	HelmGlobals struct {
		ChartHome string `json:"chartHome"`
	} `json:"helmGlobals"`
	Resources  []string `json:"resources"`
	Components []string `json:"components"`
	Bases      []string `json:"bases"`
}

// prepareHelmCharts finds the helmCharts of the kustomization in dir and
// of the local kustomizations it includes, and puts each chart that is not
// there yet where kustomize looks for it — <chartHome>/<name>-<version>/<name>
// (or <chartHome>/<name> without a version), as `helm pull --untar` would —
// fetched with fetch (so it is recorded and carried in a bundle, and
// --chart-cache applies). kustomize then only runs `helm template`. It
// reports whether any kustomization has helmCharts. data is the content of
// dir's kustomization file (it may be edited in memory).
func prepareHelmCharts(ctx context.Context, fetch ChartFetcher, dir string, data []byte, root string, seen map[string]bool) (bool, error) {
	if seen[dir] {
		return false, nil
	}
	seen[dir] = true
	var k kustHelmFields
	if err := yaml.Unmarshal(data, &k); err != nil {
		return false, err
	}
	found := len(k.HelmCharts) > 0
	home := k.HelmGlobals.ChartHome
	if home == "" {
		home = "charts"
	}
	if !filepath.IsAbs(home) {
		home = filepath.Join(dir, home)
	}
	for _, hc := range k.HelmCharts {
		if hc.Name == "" || hc.Repo == "" || strings.ContainsAny(hc.Name, `/\`) || strings.HasPrefix(hc.Name, ".") {
			continue // a chart kept locally (kustomize reports what is wrong)
		}
		target := home
		if hc.Version != "" {
			target = filepath.Join(home, hc.Name+"-"+hc.Version)
		}
		if root != "" && !inside(root, target) {
			return found, fmt.Errorf("helmCharts %s: chartHome %s leaves the repository", hc.Name, home)
		}
		if _, err := os.Stat(filepath.Join(target, hc.Name)); err == nil {
			continue // there already: kustomize uses it as found
		}
		if fetch == nil {
			return found, fmt.Errorf("helmCharts %s from %s: charts from repositories are not enabled here", hc.Name, hc.Repo)
		}
		ref := charts.Ref{RepoURL: strings.TrimSuffix(hc.Repo, "/"), Chart: hc.Name, TargetRevision: hc.Version}
		chrt, _, err := fetch.Fetch(ctx, ref)
		if err != nil {
			return found, fmt.Errorf("helmCharts: %w", err)
		}
		if err := os.MkdirAll(target, 0o755); err != nil {
			return found, err
		}
		if err := chartutil.SaveDir(chrt, target); err != nil {
			return found, fmt.Errorf("helmCharts %s: write the chart into %s: %w", hc.Name, target, err)
		}
	}
	// Local kustomizations this one includes may inflate charts too.
	for _, r := range append(append(k.Resources, k.Components...), k.Bases...) {
		if strings.Contains(r, "://") || strings.HasPrefix(r, "github.com/") {
			continue
		}
		sub := filepath.Join(dir, filepath.FromSlash(r))
		for _, name := range kustomizationFiles {
			p := filepath.Join(sub, name)
			if !isFile(p) {
				continue
			}
			subData, err := os.ReadFile(p)
			if err != nil {
				return found, err
			}
			f, err := prepareHelmCharts(ctx, fetch, sub, subData, root, seen)
			if err != nil {
				return found, fmt.Errorf("%s: %w", p, err)
			}
			found = found || f
			break
		}
	}
	return found, nil
}

// helmBinary finds the helm command kustomize runs, or says what to do.
func helmBinary(cmd, kfile string) (string, error) {
	if cmd == "" {
		cmd = DefaultHelmCommand
	}
	p, err := exec.LookPath(cmd)
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%s inflates Helm charts (helmCharts), which kustomize does by running `helm template`: "+
				"install helm (v3) on PATH or name it with --helm-command (looked for %q)", kfile, cmd)
		}
		return "", fmt.Errorf("--helm-command %q: %w", cmd, err)
	}
	return p, nil
}
