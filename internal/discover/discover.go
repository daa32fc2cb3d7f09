// Package discover finds the container images an app runs: it renders the
// app's manifests (plain YAML, Kustomize, Helm, Argo CD Applications) with
// internal/render and extracts every image with internal/images. It is the
// one image discovery of `ballast images`, `ballast bundle` and the demo.
// Release side only: the edge never imports it (rendering stays in CI).
package discover

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/images"
	"github.com/ballast-dev/ballast/internal/release"
	"github.com/ballast-dev/ballast/internal/render"
)

// Images renders every source and returns the images of all of them, one
// set. A render or extraction error is returned as is (the caller decides
// whether it is bad input); a cancelled ctx shows in ctx.Err().
func Images(ctx context.Context, log *slog.Logger, sources []render.Source) (images.Set, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var set images.Set
	for _, src := range sources {
		objs, err := render.Render(ctx, src)
		if err != nil {
			return set, err
		}
		for _, o := range objs {
			occ, err := images.Extract(o)
			if err != nil {
				return set, err
			}
			set.AddAll(occ)
		}
		log.Debug("rendered", "path", src.Path, "objects", len(objs))
	}
	return set, nil
}

// ApplicationSources loads the Argo CD Applications in file and turns them
// into render sources, every source path resolved in repoRoot (default:
// the git checkout holding file), build variables from env. Variables an
// Application uses that env lacks are logged (they substitute as empty).
func ApplicationSources(log *slog.Logger, file, repoRoot string, env map[string]string) ([]render.Source, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	apps, err := render.LoadApplications(file)
	if err != nil {
		return nil, err
	}
	root := repoRoot
	if root == "" {
		if root, err = render.FindRepoRoot(file); err != nil {
			return nil, err
		}
	}
	var out []render.Source
	for _, app := range apps {
		srcs, missing, err := app.RenderSources(render.AppOptions{RepoRoot: root, Env: env})
		if err != nil {
			return nil, err
		}
		if len(missing) > 0 {
			log.Warn("build variables are not set and substitute as empty; pass them with --env",
				"app", app.Name, "variables", strings.Join(missing, ","))
		}
		for i := range srcs {
			srcs[i].Log = log
		}
		out = append(out, srcs...)
	}
	return out, nil
}

// Lister is the release.ImageLister of `ballast bundle` and the demo: the
// app spec's Application file or path, rendered in the checkout dir.
func Lister(log *slog.Logger) release.ImageLister {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, dir string, spec release.AppSpec) ([]imageref.Ref, error) {
		var sources []render.Source
		if spec.Application != "" {
			file := filepath.Join(dir, filepath.FromSlash(spec.Application))
			if !within(dir, file) {
				return nil, fmt.Errorf("application %s leaves the repository", spec.Application)
			}
			srcs, err := ApplicationSources(log, file, dir, map[string]string{})
			if err != nil {
				return nil, err
			}
			sources = srcs
		} else {
			p := filepath.Join(dir, filepath.FromSlash(spec.Path))
			if !within(dir, p) {
				return nil, fmt.Errorf("path %s leaves the repository", spec.Path)
			}
			sources = []render.Source{{Path: p, RepoRoot: dir, Log: log}}
		}
		set, err := Images(ctx, nil, sources)
		if err != nil {
			return nil, err
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
