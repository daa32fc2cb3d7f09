package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/delta"
	"github.com/ballast-dev/ballast/internal/gitdeps"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/layout"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/progress"
	"github.com/ballast-dev/ballast/internal/transfer"
	"github.com/ballast-dev/ballast/internal/trust"
)

// ImageLister returns the images one app needs, rendered from the checkout
// of the revision in dir, and the charts and OCI sources it was rendered
// from. The renderer lives outside this package.
type ImageLister func(ctx context.Context, dir string, spec AppSpec) (Found, error)

// Options for Run.
type Options struct {
	RepoDir  string
	Revision string // any revision git understands; recorded as the full SHA
	// Config overrides ballast.yaml of the revision when set (from flags).
	Config *Config
	Lister ImageLister
	// Platforms overrides the config's platforms when not empty.
	Platforms []string

	To        string // bundles repository "registry/repo"; "" for none
	OCILayout string // directory; "" for none
	Output    string // tar file; "" for none
	DryRun    bool

	RemoteOptions []registryclient.Option // credentials, --insecure, transport
	// Concurrency is how many blobs are copied in parallel; 0 means the
	// default, 4.
	Concurrency int
	Progress    progress.Func // copy progress; nil for none
	// DeltaBases is how many earlier first-parent revisions' bundles in
	// To serve as bases for sub-layer deltas (PublishDeltas); 0, the
	// default, publishes none. Only a registry end (To) gets deltas.
	DeltaBases int
	// DeltaFormat is the highest delta patch format published: 0 or 2
	// (the default) expands the zlib-compressed sections of ELF files
	// (Go's default DWARF); 1 for edges that know only format 1.
	DeltaFormat int
	Log         *slog.Logger
	Now         func() time.Time // overrides the commit time as the created time
	// Signer, when set, signs the bundle index: the signature manifest is
	// written to every end before the index, tagged sha256-<hex>.sig (the
	// cosign tag scheme) with the index as its OCI subject (docs/trust.md).
	Signer *trust.Signer
	// NoAttached leaves out what the images have attached upstream
	// (cosign signatures, attestations, SBOMs, OCI referrers), which are
	// carried by default.
	NoAttached bool
}

// ImageResult is one image of the bundle.
type ImageResult struct {
	Ref       string `json:"ref"`
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
	Bytes     int64  `json:"bytes,omitempty"`   // blob bytes (plan only)
	Missing   int64  `json:"missing,omitempty"` // blob bytes the target lacks (plan only)
	Present   bool   `json:"present,omitempty"` // already complete in the target (plan only)
}

// Result is the summary of a bundle run.
type Result struct {
	Revision     string `json:"revision"`
	Source       string `json:"source,omitempty"`
	BundleDigest string `json:"bundleDigest"`
	Bundle       string `json:"bundle,omitempty"` // To:revision
	// Signature is the tag of the bundle index's signature (sha256-<hex>.sig)
	// when the bundle was signed.
	Signature string        `json:"signature,omitempty"`
	OCILayout string        `json:"ociLayout,omitempty"`
	Output    string        `json:"output,omitempty"`
	DryRun    bool          `json:"dryRun,omitempty"`
	Images    []ImageResult `json:"images"`
	Charts    []ChartResult `json:"charts,omitempty"`
	// ChartBytes is what the charts and OCI sources add to the bundle:
	// their manifest and blob bytes.
	ChartBytes int64 `json:"chartBytes,omitempty"`
	// Submodules and RemoteBases are the other repositories the revision
	// needs (recorded in the bundle index, see bundle.GitDep).
	Submodules  []bundle.GitDep `json:"submodules,omitempty"`
	RemoteBases []bundle.GitDep `json:"remoteBases,omitempty"`
	// Attached are the signatures, attestations and SBOMs the images had
	// upstream (cosign's tags), carried as entries; AttachedBytes is
	// their manifest and blob bytes.
	Attached      []AttachedResult `json:"attached,omitempty"`
	AttachedBytes int64            `json:"attachedBytes,omitempty"`
	BytesNew      int64            `json:"bytesNew"`
	BytesReused   int64            `json:"bytesReused"`
	Stats         *transfer.Stats  `json:"stats,omitempty"`
	Deltas        *DeltaSummary    `json:"deltas,omitempty"`
	Plan          *PlanSummary     `json:"plan,omitempty"`
}

// PlanSummary is what a dry run found.
type PlanSummary struct {
	Blobs        int   `json:"blobs"`
	Bytes        int64 `json:"bytes"`
	MissingBlobs int   `json:"missingBlobs"`
	MissingBytes int64 `json:"missingBytes"`
}

// ErrInput marks errors in what the user gave (exit code 2).
var ErrInput = errors.New("bad input")

func inputErr(err error) error { return fmt.Errorf("%w: %w", ErrInput, err) }

// Run builds the bundle of a revision and writes it to the requested ends.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.To == "" && o.OCILayout == "" && o.Output == "" && !o.DryRun {
		return nil, inputErr(errors.New("nowhere to write the bundle: give --to, --oci-layout or --output (or --dry-run)"))
	}
	sha, err := ResolveRevision(ctx, o.RepoDir, o.Revision)
	if err != nil {
		return nil, inputErr(err)
	}
	res := &Result{Revision: sha, Source: SourceURL(ctx, o.RepoDir), DryRun: o.DryRun}
	// The commit time, not the wall clock, so that re-running for the same
	// revision builds the same index (same digest) and writes nothing.
	created, err := CommitTime(ctx, o.RepoDir, sha)
	if err != nil {
		return nil, err
	}
	if o.Now != nil {
		created = o.Now()
	}
	dir, err := Checkout(ctx, o.RepoDir, sha)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if res.Submodules, err = fillSubmodules(ctx, o.RepoDir, sha, res.Source, dir); err != nil {
		return nil, err
	}
	// After the submodules: their files are rendered too.
	if err := checkLFSPointers(dir); err != nil {
		return nil, err
	}

	cfg := o.Config
	if cfg == nil {
		raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
		if errors.Is(err, os.ErrNotExist) {
			return nil, inputErr(fmt.Errorf("no %s at revision %s and no --path/--app/--extra-images given", ConfigFile, sha[:12]))
		}
		if err != nil {
			return nil, err
		}
		if cfg, err = ParseConfig(raw); err != nil {
			return nil, inputErr(err)
		}
	} else if err := cfg.Validate(); err != nil {
		return nil, inputErr(err)
	}
	if len(o.Platforms) > 0 {
		c := *cfg
		c.Platforms = o.Platforms
		if err := c.Validate(); err != nil {
			return nil, inputErr(err)
		}
		cfg = &c
	}
	platforms, _ := oci.ParsePlatforms(strings.Join(cfg.Platforms, ","))

	var bases []gitdeps.RemoteBase
	refs, chartList, err := listImages(ctx, o, dir, cfg, &bases)
	if err != nil {
		return nil, err
	}
	if res.RemoteBases, err = resolveBases(ctx, bases); err != nil {
		return nil, err
	}
	o.Log.Info("images found", "revision", sha, "count", len(refs), "charts", len(chartList))

	eng, err := transfer.New(append([]transfer.Option{transfer.WithLogger(o.Log)}, transfer.CommandOptions(o.Concurrency, o.Progress)...)...)
	if err != nil {
		return nil, err
	}
	// Resolve every image to a digest at its source registry (in
	// parallel: each is a round trip, often to a different registry).
	images := make([]bundle.Image, len(refs))
	srcs := make([]transfer.Source, len(refs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, r := range refs {
		src, err := registryclient.New(sourceRepo(r), o.RemoteOptions...)
		if err != nil {
			return nil, inputErr(fmt.Errorf("image %s: %w", r, err))
		}
		g.Go(func() error {
			ref := r.Tag
			if r.Digest != "" {
				ref = r.Digest
			}
			d, err := eng.Resolve(gctx, src, ref)
			if err != nil {
				return fmt.Errorf("image %s: %w", r, err)
			}
			if !oci.IsIndex(d.MediaType) && !oci.IsManifest(d.MediaType) {
				return fmt.Errorf("image %s: media type %q is not an image manifest or index", r, d.MediaType)
			}
			images[i], srcs[i] = bundle.Image{Ref: r, Descriptor: d}, src
			return nil
		})
	}
	newSource := func(repo string) (transfer.Source, error) { return registryclient.New(repo, o.RemoteOptions...) }
	chartImages := make([]bundle.Image, len(chartList))
	chartSrcs := make([]transfer.Source, len(chartList))
	chartSizes := make([]int64, len(chartList))
	for i, c := range chartList {
		g.Go(func() error {
			im, src, n, err := resolveChart(gctx, eng, c, newSource)
			chartImages[i], chartSrcs[i], chartSizes[i] = im, src, n
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, im := range chartImages {
		images = append(images, im)
		srcs = append(srcs, chartSrcs[i])
		res.Charts = append(res.Charts, ChartResult{Ref: im.Ref.String(), Repo: im.Chart.RepoURL, Chart: im.Chart.Name,
			Version: im.Chart.Version, Digest: im.Descriptor.Digest.String(), Bytes: chartSizes[i]})
		res.ChartBytes += chartSizes[i]
	}
	sort.Slice(res.Charts, func(i, j int) bool { return res.Charts[i].Ref < res.Charts[j].Ref })
	// What the images already have attached upstream (cosign signatures,
	// attestations, SBOMs) travels with them.
	var (
		att      []bundle.Image
		attSrcs  []transfer.Source
		attSizes []int64
	)
	if !o.NoAttached {
		if att, attSrcs, attSizes, err = findAttached(ctx, eng, images, srcs); err != nil {
			return nil, err
		}
	}
	images, srcs = append(images, att...), append(srcs, attSrcs...)
	res.Attached, res.AttachedBytes = attachedResults(att, attSizes)
	// Each entry's blobs, as hints that let an edge start fetching them
	// as soon as the index arrives (bundle.AnnotationBlobs).
	if err := hintBlobs(ctx, eng, images, srcs, platforms); err != nil {
		return nil, err
	}
	raw, idxDesc, err := bundle.Build(bundle.Bundle{Revision: sha, Source: res.Source, Created: created, Images: images,
		GitDeps: append(append([]bundle.GitDep(nil), res.Submodules...), res.RemoteBases...)})
	if err != nil {
		return nil, err
	}
	res.BundleDigest = idxDesc.Digest.String()
	for _, im := range images {
		if im.Chart != nil || im.Attached != nil {
			continue
		}
		res.Images = append(res.Images, ImageResult{Ref: im.Ref.String(), Digest: im.Descriptor.Digest.String(), MediaType: string(im.Descriptor.MediaType)})
	}
	sort.Slice(res.Images, func(i, j int) bool { return res.Images[i].Ref < res.Images[j].Ref })

	type end struct {
		dst    transfer.Target
		finish func() error
		name   string
		deltas DeltaTarget // where deltas go; nil for none
	}
	var ends []end
	if o.To != "" {
		dst, err := registryclient.New(o.To, o.RemoteOptions...)
		if err != nil {
			return nil, inputErr(fmt.Errorf("--to: %w", err))
		}
		e := end{dst: dst, name: o.To}
		if o.DeltaBases > 0 {
			e.deltas = dst
		}
		ends = append(ends, e)
		res.Bundle = o.To + ":" + sha
	}
	if o.OCILayout != "" {
		lay, err := layout.New(o.OCILayout)
		if err != nil {
			return nil, err
		}
		ends = append(ends, end{dst: lay, name: o.OCILayout})
		res.OCILayout = o.OCILayout
	}
	if o.Output != "" {
		tmp, err := os.MkdirTemp(filepath.Dir(o.Output), ".ballast-layout-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		lay, err := layout.New(tmp)
		if err != nil {
			return nil, err
		}
		out := o.Output
		ends = append(ends, end{dst: lay, name: out, finish: func() error { return WriteLayoutTar(tmp, out) }})
		res.Output = out
	}

	jobsFor := func(dst transfer.Target) []transfer.Job {
		jobs := make([]transfer.Job, len(images))
		for i, im := range images {
			jobs[i] = transfer.Job{Src: srcs[i], Dst: dst, Root: im.Descriptor, Platforms: platforms}
		}
		return jobs
	}
	index := transfer.Job{Src: transfer.ManifestSource(raw, idxDesc), Root: idxDesc, Tags: []string{sha}, RootOnly: true}
	var sigJob *transfer.Job
	if o.Signer != nil {
		ref := o.To
		if ref == "" {
			ref = "ballast-bundle"
		}
		sig, err := o.Signer.Sign(ref, idxDesc)
		if err != nil {
			return nil, fmt.Errorf("sign bundle index: %w", err)
		}
		blobs := make([][]byte, 0, len(sig.Blobs))
		for _, b := range sig.Blobs {
			blobs = append(blobs, b)
		}
		src, err := newMemorySource(&Content{Manifest: sig.Manifest, Blobs: blobs})
		if err != nil {
			return nil, err
		}
		sigJob = &transfer.Job{Src: src, Root: sig.Descriptor, Tags: []string{sig.Tag}}
		res.Signature = sig.Tag
	}

	if o.DryRun {
		var plans []*transfer.Plan
		for _, e := range ends {
			p, err := eng.Plan(ctx, jobsFor(e.dst)...)
			if err != nil {
				return nil, err
			}
			plans = append(plans, p)
		}
		if len(ends) == 0 {
			// No target: plan against an empty layout to size the images.
			tmp, err := os.MkdirTemp("", "ballast-plan-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(tmp)
			lay, err := layout.New(tmp)
			if err != nil {
				return nil, err
			}
			p, err := eng.Plan(ctx, jobsFor(lay)...)
			if err != nil {
				return nil, err
			}
			plans = append(plans, p)
		}
		p := plans[0]
		res.Plan = &PlanSummary{Blobs: p.Blobs, Bytes: p.Bytes, MissingBlobs: p.MissingBlobs, MissingBytes: p.MissingBytes}
		byDigest := map[string]transfer.JobPlan{}
		for _, jp := range p.Jobs {
			byDigest[jp.Root.Digest.String()] = jp
		}
		for i := range res.Images {
			jp := byDigest[res.Images[i].Digest]
			res.Images[i].Bytes, res.Images[i].Missing, res.Images[i].Present = jp.Bytes, jp.Missing, jp.Present
		}
		return res, nil
	}

	var total transfer.Stats
	for _, e := range ends {
		k := bundle.CountKinds(images)
		o.Log.Info("copying images", "to", e.name, "images", k.Images, "charts", k.Charts, "attached", k.Attached)
		st, err := eng.Copy(ctx, jobsFor(e.dst)...)
		addStats(&total, st)
		var he *registryclient.HTTPError
		if err != nil && len(platforms) > 0 && errors.As(err, &he) && he.Status == 400 {
			return nil, fmt.Errorf("copy to %s: %w (this registry refuses image indexes whose unselected platforms are absent: bundle without --platform)", e.name, err)
		}
		if err != nil {
			return nil, fmt.Errorf("copy to %s: %w", e.name, err)
		}
		// Deltas before the bundle index, so an edge that sees the
		// bundle finds them.
		if e.deltas != nil {
			bases, err := FirstParents(ctx, o.RepoDir, sha, o.DeltaBases)
			if err != nil {
				return nil, err
			}
			var dopts []delta.Option
			if o.DeltaFormat != 0 {
				dopts = append(dopts, delta.WithMaxFormat(o.DeltaFormat))
			}
			ds, err := PublishDeltas(ctx, eng, e.deltas, sha, images, bases, o.Log, dopts...)
			if err != nil {
				return nil, fmt.Errorf("deltas for %s: %w", e.name, err)
			}
			res.Deltas = ds
		}
		// The signature before the index, so an index that is visible is
		// signed: it names the index as its subject, which registries take
		// before the subject exists.
		if sigJob != nil {
			sj := *sigJob
			sj.Dst = e.dst
			st, err = eng.Copy(ctx, sj)
			addStats(&total, st)
			if err != nil {
				return nil, fmt.Errorf("write bundle signature to %s: %w", e.name, err)
			}
		}
		// The bundle index last: the commit point.
		ix := index
		ix.Dst = e.dst
		st, err = eng.Copy(ctx, ix)
		addStats(&total, st)
		if err != nil {
			return nil, fmt.Errorf("write bundle index to %s: %w", e.name, err)
		}
		if e.finish != nil {
			if err := e.finish(); err != nil {
				return nil, fmt.Errorf("write %s: %w", e.name, err)
			}
		}
	}
	res.Stats = &total
	res.BytesNew, res.BytesReused = total.BytesWritten, total.BytesSkipped
	return res, nil
}

func addStats(t *transfer.Stats, s transfer.Stats) {
	t.BytesRead += s.BytesRead
	t.BytesWritten += s.BytesWritten
	t.BytesSkipped += s.BytesSkipped
	t.BlobsCopied += s.BlobsCopied
	t.BlobsSkipped += s.BlobsSkipped
	t.BlobsMounted += s.BlobsMounted
	t.ManifestsWritten += s.ManifestsWritten
	t.ManifestsSkipped += s.ManifestsSkipped
	t.Retries += s.Retries
}

// sourceRepo is the repository to pull an image from.
func sourceRepo(r imageref.Ref) string { return r.Name() }

// listImages renders every app and returns the images and the charts of
// all of them, each once. A chart found twice under one reference must be
// the same chart.
func listImages(ctx context.Context, o Options, dir string, cfg *Config, bases *[]gitdeps.RemoteBase) ([]imageref.Ref, []Chart, error) {
	seen := map[string]bool{}
	var out []imageref.Ref
	add := func(r imageref.Ref) {
		if !seen[r.String()] {
			seen[r.String()] = true
			out = append(out, r)
		}
	}
	chartSeen := map[string]Chart{}
	var chartList []Chart
	for _, app := range cfg.Apps {
		if o.Lister == nil {
			return nil, nil, errors.New("no image lister configured")
		}
		found, err := o.Lister(ctx, dir, app)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", app, err)
		}
		for _, r := range found.Images {
			add(r)
		}
		if bases != nil {
			*bases = append(*bases, found.RemoteBases...)
		}
		for _, c := range found.Charts {
			key := c.Ref.String()
			if have, ok := chartSeen[key]; ok {
				if have.Info != c.Info || have.Reference != c.Reference || have.Repository != c.Repository ||
					have.LayerDigest != c.LayerDigest || (have.Content == nil) != (c.Content == nil) ||
					(c.Content != nil && !bytes.Equal(have.Content.Manifest, c.Content.Manifest)) {
					return nil, nil, inputErr(fmt.Errorf("%s: %w: %s and %s", key, errChartConflict, have.Info, c.Info))
				}
				continue
			}
			chartSeen[key] = c
			chartList = append(chartList, c)
		}
	}
	for _, s := range cfg.ExtraImages {
		r, err := imageref.Parse(s)
		if err != nil {
			return nil, nil, inputErr(err)
		}
		add(r)
	}
	if len(out) == 0 && len(chartList) == 0 {
		return nil, nil, inputErr(errors.New("no images found"))
	}
	return out, chartList, nil
}

// hintBlobs sets each entry's Blobs to what its manifests reach for
// platforms (the selection the copy uses), walking every entry at its
// source, 8 at a time.
func hintBlobs(ctx context.Context, eng *transfer.Engine, images []bundle.Image, srcs []transfer.Source, platforms oci.Platforms) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range images {
		g.Go(func() error {
			var nodes []oci.Node
			err := oci.Walk(gctx, engineFetcher{eng, srcs[i]}, images[i].Descriptor, platforms, func(n oci.Node) error {
				nodes = append(nodes, n)
				return nil
			})
			if err != nil {
				return fmt.Errorf("entry %s: %w", images[i].Name(), err)
			}
			images[i].Blobs = bundle.HintsFromWalk(nodes)
			return nil
		})
	}
	return g.Wait()
}
