package render

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"

	"github.com/ballast-dev/ballast/internal/render/charts"
)

// maxDependencyDepth bounds how deep dependencies of dependencies go.
const maxDependencyDepth = 8

// addDependencies adds to chrt every dependency its Chart.yaml lists that
// is not vendored in charts/, as `helm dependency build` would: the
// version Chart.lock pins when the lock lists it (same name and
// repository), else the Chart.yaml constraint resolved against the
// repository; from an HTTP Helm repository or oci:// through fetch, from
// file:// relative to dir (a chart directory, "" for an archive) without
// leaving root. It recurses into what it adds. Every chart fetched is
// recorded by fetch, so a bundle carries it.
func addDependencies(ctx context.Context, fetch ChartFetcher, chrt *chart.Chart, where, dir, root string, depth int) error {
	for _, dep := range missingDependencies(chrt) {
		what := fmt.Sprintf("helm chart %s: dependency %s", where, dep.Name)
		if fetch == nil {
			return fmt.Errorf("%s: not in charts/ (run `helm dependency build` and commit the charts/ directory)", what)
		}
		if depth >= maxDependencyDepth {
			return fmt.Errorf("%s: dependencies nest deeper than %d levels", what, maxDependencyDepth)
		}
		repo := dep.Repository
		var (
			sub      *chart.Chart
			subWhere string
			subDir   string
		)
		switch {
		case strings.HasPrefix(repo, "file://"):
			if dir == "" {
				return fmt.Errorf("%s: repository %s: a file:// dependency of a chart archive must be inside the archive's charts/", what, repo)
			}
			p := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(repo, "file://")))
			if !filepath.IsAbs(strings.TrimPrefix(repo, "file://")) && root != "" && !inside(root, p) {
				return fmt.Errorf("%s: repository %s leaves the repository", what, repo)
			}
			if filepath.IsAbs(strings.TrimPrefix(repo, "file://")) {
				return fmt.Errorf("%s: repository %s: absolute paths are not rendered (they name a file on the CI machine)", what, repo)
			}
			c, err := loader.LoadDir(p)
			if err != nil {
				return fmt.Errorf("%s: repository %s: %w", what, repo, err)
			}
			sub, subWhere, subDir = c, p, p
		case strings.HasPrefix(repo, "http://"), strings.HasPrefix(repo, "https://"), strings.HasPrefix(repo, "oci://"):
			version := dep.Version
			if chrt.Lock != nil {
				for _, l := range chrt.Lock.Dependencies {
					if l != nil && l.Name == dep.Name && strings.TrimSuffix(l.Repository, "/") == strings.TrimSuffix(repo, "/") {
						version = l.Version
					}
				}
			}
			ref := charts.Ref{RepoURL: strings.TrimSuffix(repo, "/"), Chart: dep.Name, TargetRevision: version}
			c, res, err := fetch.Fetch(ctx, ref)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			label := res.URL
			if label == "" {
				label = ref.RepoURL + "/" + dep.Name + "-" + res.Version + ".tgz"
			}
			sub, subWhere = c, label
		case repo == "":
			return fmt.Errorf("%s: not in charts/ and Chart.yaml names no repository", what)
		default:
			return fmt.Errorf("%s: repository %q: write the repository URL in Chart.yaml (names from `helm repo add` are not known here)", what, repo)
		}
		if sub.Name() != dep.Name {
			return fmt.Errorf("%s: %s holds chart %s", what, subWhere, sub.Name())
		}
		if err := addDependencies(ctx, fetch, sub, subWhere, subDir, root, depth+1); err != nil {
			return err
		}
		chrt.AddDependency(sub)
	}
	return nil
}

// missingDependencies are the Chart.yaml dependencies with no chart of
// that name in charts/ (Helm's CheckDependencies rule).
func missingDependencies(chrt *chart.Chart) []*chart.Dependency {
	var out []*chart.Dependency
	for _, d := range chrt.Metadata.Dependencies {
		if d == nil {
			continue
		}
		found := false
		for _, c := range chrt.Dependencies() {
			found = found || c.Name() == d.Name
		}
		if !found {
			out = append(out, d)
		}
	}
	return out
}

// inside reports whether p is root or below it.
func inside(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
