package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/images"
	"github.com/ballast-dev/ballast/internal/release"
	"github.com/ballast-dev/ballast/internal/render"
	"github.com/ballast-dev/ballast/internal/render/charts"
)

// renderedImages is the release.ImageLister of `ballast bundle`: the same
// rendering and extraction as `ballast images` (plain YAML, Kustomize, Helm,
// Argo CD Applications), applied to the checkout of the revision in dir.
func renderedImages(e *env) release.ImageLister {
	return func(ctx context.Context, dir string, spec release.AppSpec) ([]imageref.Ref, error) {
		var sources []render.Source
		if spec.Application != "" {
			file := filepath.Join(dir, filepath.FromSlash(spec.Application))
			if !within(dir, file) {
				return nil, fmt.Errorf("application %s leaves the repository", spec.Application)
			}
			// Charts are fetched each time: recording them in the bundle
			// is the next step of issue 13.
			srcs, err := applicationSources(e, file, dir, map[string]string{}, &charts.Fetcher{Log: e.log})
			if err != nil {
				return nil, err
			}
			sources = srcs
		} else {
			p := filepath.Join(dir, filepath.FromSlash(spec.Path))
			if !within(dir, p) {
				return nil, fmt.Errorf("path %s leaves the repository", spec.Path)
			}
			sources = []render.Source{{Path: p, RepoRoot: dir, Log: e.log}}
		}
		var set images.Set
		for _, src := range sources {
			objs, err := render.Render(ctx, src)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, charts.ErrUnavailable) {
					return nil, err
				}
				// The revision's manifests or charts are broken: exit 2.
				return nil, fmt.Errorf("%w: %w", release.ErrInput, err)
			}
			for _, o := range objs {
				occ, err := images.Extract(o)
				if err != nil {
					return nil, err
				}
				set.AddAll(occ)
			}
		}
		var out []imageref.Ref
		for _, s := range set.Refs() {
			r, err := imageref.Parse(s)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	}
}

// within reports whether p is dir or below it.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
