// Package render turns an app's source — a directory of plain manifests, a
// Kustomize overlay, a Helm chart, or an Argo CD Application pointing at
// them — into the Kubernetes objects Argo CD would apply, in-process and
// offline. It is release-side only: the edge must not import it (it pulls
// in Helm and Kustomize).
package render

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"helm.sh/helm/v3/pkg/chart"

	"github.com/ballast-dev/ballast/internal/images"
	"github.com/ballast-dev/ballast/internal/render/charts"
)

// Type is how a source is rendered, named as Argo CD names source types.
type Type string

// Source types.
const (
	Directory Type = "Directory"
	Kustomize Type = "Kustomize"
	Helm      Type = "Helm"
)

// kustomizationFiles are the names Kustomize (and Argo CD's detection)
// accept, in Kustomize's order of preference.
var kustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// Source says what to render and how. Paths are used as given (relative to
// the working directory, or absolute).
type Source struct {
	Path string
	// Type forces a source type, as an Application's helm/kustomize/directory
	// block does; empty means detect it from the directory's files.
	Type      Type
	Directory DirectoryOptions
	Helm      HelmOptions
	Kustomize KustomizeOptions
	// RepoRoot bounds what a directory source may read through symlinks.
	// Empty means the source path itself.
	RepoRoot string
	// Log receives warnings (skipped files, Helm notes); nil discards them.
	Log *slog.Logger
	// Chart, when set, is a chart from a Helm repository or an OCI
	// registry rendered instead of Path (an Application source with
	// `chart:`); Charts fetches it. Relative Helm.ValueFiles are then files
	// inside the chart.
	Chart  *charts.Ref
	Charts ChartFetcher
	// lazy, when set, fetches the source first (an Argo CD OCI source):
	// it returns the source to render, a cleanup, and the temporary
	// directory to show as label in locations.
	lazy func(ctx context.Context) (inner Source, cleanup func(), tmp, label string, err error)
}

// ChartFetcher resolves and loads a chart named by repository and version;
// *charts.Fetcher is the implementation.
type ChartFetcher interface {
	Fetch(ctx context.Context, ref charts.Ref) (*chart.Chart, charts.Resolved, error)
	FetchSource(ctx context.Context, repoURL, revision string) (dir string, res charts.Resolved, cleanup func(), err error)
}

// DirectoryOptions are Argo CD's directory settings.
type DirectoryOptions struct {
	Recurse bool
	Include string // Argo CD glob on the path relative to the source, e.g. "{a.yaml,b/*.yaml}"
	Exclude string
}

// Detect returns the source type of dir the way Argo CD detects it: a
// kustomization file means Kustomize, else a Chart.yaml means Helm, else a
// directory of plain manifests.
func Detect(dir string) (Type, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s: not a directory", dir)
	}
	for _, name := range kustomizationFiles {
		if isFile(filepath.Join(dir, name)) {
			return Kustomize, nil
		}
	}
	if isFile(filepath.Join(dir, "Chart.yaml")) {
		return Helm, nil
	}
	return Directory, nil
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Render returns the objects src renders to. A file path is read as plain
// manifests (strictly: every document must be an object). Every error is
// about the input: the source is broken or cannot be rendered offline.
func Render(ctx context.Context, src Source) ([]images.Object, error) {
	if src.Log == nil {
		src.Log = slog.New(slog.DiscardHandler)
	}
	if src.Chart != nil {
		return renderRemoteChart(ctx, src)
	}
	if src.lazy != nil {
		inner, cleanup, tmp, label, err := src.lazy(ctx)
		if err != nil {
			return nil, err
		}
		defer cleanup()
		inner.Log = src.Log
		objs, err := Render(ctx, inner)
		if err != nil {
			return nil, fmt.Errorf("%s: %s", label, strings.ReplaceAll(err.Error(), tmp, label))
		}
		// Locations name the artifact, not the temporary directory.
		for i := range objs {
			objs[i].File = strings.Replace(objs[i].File, tmp, label, 1)
			objs[i].Via = strings.Replace(objs[i].Via, tmp, label, 1)
		}
		return objs, nil
	}
	fi, err := os.Stat(src.Path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: path does not exist", src.Path)
		}
		return nil, err
	}
	if !fi.IsDir() {
		data, err := os.ReadFile(src.Path)
		if err != nil {
			return nil, err
		}
		return images.Decode(src.Path, data)
	}
	typ := src.Type
	if typ == "" {
		if typ, err = Detect(src.Path); err != nil {
			return nil, err
		}
	}
	switch typ {
	case Kustomize:
		return renderKustomize(ctx, src)
	case Helm:
		return renderHelm(ctx, src)
	case Directory:
		return renderDirectory(ctx, src)
	default:
		return nil, fmt.Errorf("%s: unknown source type %q", src.Path, typ)
	}
}
