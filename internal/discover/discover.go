// Package discover finds the container images an app runs: it renders the
// app's manifests (plain YAML, Kustomize, Helm, Argo CD Applications) with
// internal/render and extracts every image with internal/images. It is the
// one image discovery of `ballast images`, `ballast bundle` and the demo.
// Release side only: the edge never imports it (rendering stays in CI).
package discover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/images"
	"github.com/ballast-dev/ballast/internal/release"
	"github.com/ballast-dev/ballast/internal/render"
	"github.com/ballast-dev/ballast/internal/render/charts"
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
// Sources with chart: (Helm repositories, OCI registries) and OCI sources
// are fetched with fetch; nil refuses them.
func ApplicationSources(log *slog.Logger, file, repoRoot string, env map[string]string, fetch render.ChartFetcher) ([]render.Source, error) {
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
		srcs, missing, err := app.RenderSources(render.AppOptions{RepoRoot: root, Env: env, Charts: fetch})
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

// ListerOptions configure Lister.
type ListerOptions struct {
	Log *slog.Logger
	// Fetcher is the template of the chart fetcher each app gets (cache
	// directory, limits, client, insecure); its resolved list and kept
	// archives are not shared. Nil means the defaults.
	Fetcher *charts.Fetcher
	// HelmCommand is the helm binary for kustomize helmCharts (default
	// render.DefaultHelmCommand).
	HelmCommand string
}

// Lister is the release.ImageLister of `ballast bundle` and the demo: the
// app spec's Application file or path, rendered in the checkout dir. The
// charts and OCI sources the app was rendered from come back as bundle
// entries (ChartEntries). A broken manifest or chart is release.ErrInput
// (exit 2); an unreachable chart repository is not.
func Lister(o ListerOptions) release.ImageLister {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, dir string, spec release.AppSpec) (release.Found, error) {
		fetcher := &charts.Fetcher{}
		if o.Fetcher != nil {
			fetcher = o.Fetcher.Fresh()
		}
		fetcher.Log, fetcher.KeepArchives = log, true
		var sources []render.Source
		if spec.Application != "" {
			file := filepath.Join(dir, filepath.FromSlash(spec.Application))
			if !within(dir, file) {
				return release.Found{}, fmt.Errorf("application %s leaves the repository", spec.Application)
			}
			srcs, err := ApplicationSources(log, file, dir, map[string]string{}, fetcher)
			if err != nil {
				return release.Found{}, err
			}
			sources = srcs
		} else {
			p := filepath.Join(dir, filepath.FromSlash(spec.Path))
			if !within(dir, p) {
				return release.Found{}, fmt.Errorf("path %s leaves the repository", spec.Path)
			}
			sources = []render.Source{{Path: p, RepoRoot: dir, Log: log, Charts: fetcher}}
		}
		for i := range sources {
			sources[i].Kustomize.HelmCommand = o.HelmCommand
		}
		classify := func(err error) error {
			if ctx.Err() != nil || errors.Is(err, charts.ErrUnavailable) {
				return err
			}
			return fmt.Errorf("%w: %w", release.ErrInput, err)
		}
		set, err := Images(ctx, nil, sources)
		if err != nil {
			return release.Found{}, classify(err)
		}
		var found release.Found
		for _, s := range set.Refs() {
			r, err := imageref.Parse(s)
			if err != nil {
				return release.Found{}, err
			}
			found.Images = append(found.Images, r)
		}
		if found.Charts, err = ChartEntries(fetcher); err != nil {
			return release.Found{}, classify(err)
		}
		for _, src := range sources {
			if src.Chart != nil || src.Path == "" {
				continue
			}
			bases, err := render.RemoteBases(src.Path)
			if err != nil {
				return release.Found{}, classify(err)
			}
			found.RemoteBases = append(found.RemoteBases, bases...)
		}
		return found, nil
	}
}

// ChartEntries turns every chart and OCI source f resolved into a bundle
// entry (docs/charts.md): an OCI chart or source is copied by its manifest
// digest (by tag when it came from the cache, checked against the archive
// that was rendered); a chart from an HTTP Helm repository is converted to
// Helm's OCI form from the archive f kept (f.KeepArchives must be set).
func ChartEntries(f *charts.Fetcher) ([]release.Chart, error) {
	var out []release.Chart
	for _, r := range f.Resolved() {
		c, err := chartEntry(f, r)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func chartEntry(f *charts.Fetcher, r charts.Resolved) (release.Chart, error) {
	repoURL := strings.TrimSuffix(r.RepoURL, "/")
	info := bundle.Chart{RepoURL: repoURL, Name: r.Chart, Version: r.Version}
	what := info.String()
	if r.IsSource() {
		repo := strings.TrimSuffix(strings.TrimPrefix(repoURL, "oci://"), "/")
		s := repo + ":" + r.Version
		if strings.HasPrefix(r.Version, "sha256:") {
			s = repo + "@" + r.Version
		}
		ref, err := storageRef(s, what)
		if err != nil {
			return release.Chart{}, err
		}
		return release.Chart{Info: info, Ref: ref, ArtifactType: r.ArtifactType,
			Repository: ref.Name(), Reference: r.Manifest}, nil
	}
	tag, err := bundle.ChartTag(r.Version)
	if err != nil {
		return release.Chart{}, fmt.Errorf("%s: %w", what, err)
	}
	if (charts.Ref{RepoURL: r.RepoURL}).IsOCI() {
		repo := strings.TrimSuffix(strings.TrimPrefix(repoURL, "oci://"), "/") + "/" + r.Chart
		ref, err := storageRef(repo+":"+tag, what)
		if err != nil {
			return release.Chart{}, err
		}
		c := release.Chart{Info: info, Ref: ref, ArtifactType: bundle.HelmConfigMediaType,
			Repository: ref.Name(), Reference: r.Manifest, LayerDigest: r.Digest}
		if c.Reference == "" {
			c.Reference = tag // from the cache: the tag, checked against the archive
		}
		return c, nil
	}
	ref, err := bundle.HelmRepoChartRef(repoURL, r.Chart, r.Version)
	if err != nil {
		return release.Chart{}, fmt.Errorf("%s: %w", what, err)
	}
	data, ok := f.Archive(r)
	if !ok {
		return release.Chart{}, fmt.Errorf("%s: the chart archive was not kept", what)
	}
	limit := f.MaxChartBytes
	if limit <= 0 {
		limit = charts.DefaultMaxChartBytes
	}
	form, err := charts.ToOCI(data, limit)
	if err != nil {
		return release.Chart{}, fmt.Errorf("%s: %w", what, err)
	}
	return release.Chart{Info: info, Ref: ref, ArtifactType: bundle.HelmConfigMediaType,
		Content: &release.Content{Manifest: form.Manifest, Blobs: [][]byte{form.Config, form.Layer}}}, nil
}

// storageRef parses where an OCI chart or source is stored; it must be
// fully qualified as written.
func storageRef(s, what string) (imageref.Ref, error) {
	ref, err := imageref.Parse(s)
	if err != nil {
		return imageref.Ref{}, fmt.Errorf("%s: %w", what, err)
	}
	if ref.String() != s {
		return imageref.Ref{}, fmt.Errorf("%s: %q is not a fully qualified reference (it would be stored as %q)", what, s, ref.String())
	}
	return ref, nil
}

// within reports whether p is dir or below it.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
