package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/delta"
	"github.com/ballast-dev/ballast/internal/discover"
	"github.com/ballast-dev/ballast/internal/exitcode"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/progress"
	"github.com/ballast-dev/ballast/internal/release"
	"github.com/ballast-dev/ballast/internal/render"
	"github.com/ballast-dev/ballast/internal/render/charts"
	"github.com/ballast-dev/ballast/internal/trust"
	"github.com/ballast-dev/ballast/internal/units"
)

func newBundleCmd(e *env) *cobra.Command {
	var (
		o                                release.Options
		paths, apps, extra, platformFlag []string
		insecure                         bool
		output                           string
		concurrency                      int
		chartCache                       string
		chartMaxBytes                    int64
		chartAuth                        string
		helmCommand                      string
		signKey                          string
	)
	c := &cobra.Command{
		Use:   "bundle",
		Short: "Build and push the image bundle of a git revision",
		Long: `bundle finds every image a git revision needs (from ballast.yaml at the
repository root, or from --path/--app/--extra-images), resolves each to its
digest, copies the images into the bundles repository --to (and/or an OCI
layout), and pushes the bundle index tagged with the full commit SHA last.
Every Helm chart and Argo CD OCI source the Applications name is resolved to
an exact version and carried as one more entry: OCI charts and sources as
they are, charts from HTTP Helm repositories in Helm's OCI form.
Re-running for the same revision copies nothing. Credentials come from the
docker config (~/.docker/config.json, $DOCKER_CONFIG).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return exitcode.Invalid(fmt.Errorf("output format %q: want text or json", output))
			}
			o.Platforms = splitComma(platformFlag)
			if len(paths)+len(apps)+len(extra) > 0 {
				cfg := &release.Config{ExtraImages: extra}
				for _, p := range paths {
					cfg.Apps = append(cfg.Apps, release.AppSpec{Path: p})
				}
				for _, a := range apps {
					cfg.Apps = append(cfg.Apps, release.AppSpec{Application: a})
				}
				o.Config = cfg
			}
			if chartMaxBytes <= 0 {
				return exitcode.Invalid(fmt.Errorf("--chart-max-bytes %d: want a positive number of bytes", chartMaxBytes))
			}
			creds, err := loadChartRepoAuth(chartAuth)
			if err != nil {
				return exitcode.Invalid(err)
			}
			o.Lister = discover.Lister(discover.ListerOptions{Log: e.log, HelmCommand: helmCommand, Fetcher: &charts.Fetcher{
				CacheDir: chartCache, MaxChartBytes: chartMaxBytes, Insecure: insecure, RepoAuth: creds}})
			if signKey != "" {
				if o.Signer, err = loadSignKey(signKey); err != nil {
					return exitcode.Invalid(err)
				}
			}
			o.Log = e.log
			o.RemoteOptions = append(o.RemoteOptions, registryclient.WithInsecure(insecure))
			o.Concurrency, o.Progress = concurrency, progressLogger(e)
			if o.DeltaBases < 0 {
				return exitcode.Invalid(fmt.Errorf("--delta-bases %d: want 0 or more", o.DeltaBases))
			}
			if o.DeltaFormat < 1 || o.DeltaFormat > delta.MaxFormat {
				return exitcode.Invalid(fmt.Errorf("--delta-format %d: want 1..%d", o.DeltaFormat, delta.MaxFormat))
			}
			res, err := release.Run(cmd.Context(), o)
			if errors.Is(err, release.ErrInput) {
				return exitcode.Invalid(err)
			}
			if err != nil {
				return exitcode.Fail(err)
			}
			if output == "json" {
				return writeJSON(e.stdout, res)
			}
			return printBundle(e.stdout, res)
		},
	}
	f := c.Flags()
	f.StringVar(&o.RepoDir, "repo", ".", "git checkout to bundle")
	f.StringVar(&o.Revision, "revision", "HEAD", "git revision (recorded as the full commit SHA)")
	f.StringSliceVar(&paths, "path", nil, "directory of manifests to render (repeatable; instead of ballast.yaml)")
	f.StringSliceVar(&apps, "app", nil, "Argo CD Application file to render (repeatable; instead of ballast.yaml)")
	f.StringSliceVar(&extra, "extra-images", nil, "images to add (comma-separated or repeated)")
	f.StringSliceVar(&platformFlag, "platform", nil, "keep only these platforms, e.g. linux/amd64,linux/arm64 (overrides ballast.yaml; default all; the registry must accept indexes with absent children)")
	f.StringVar(&o.To, "to", "", "bundles repository REGISTRY/REPO to push to")
	pathVar(f, &o.OCILayout, "oci-layout", "", "also write the bundle as an OCI image layout directory")
	pathVar(f, &o.Output, "output", "", "also write the bundle as a tar file of an OCI image layout")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the plan (images, digests, sizes, what is present) without copying")
	f.BoolVar(&insecure, "insecure", false, "use plain HTTP for registries")
	f.IntVar(&concurrency, "concurrency", 4, "blobs copied in parallel")
	f.IntVar(&o.DeltaBases, "delta-bases", release.DefaultDeltaBases, "publish sub-layer deltas of changed layers against the bundles of this many earlier first-parent revisions in --to (0: none; docs/deltas.md)")
	f.IntVar(&o.DeltaFormat, "delta-format", delta.MaxFormat, "highest delta patch format to publish: 2 expands zlib-compressed ELF sections (Go's default DWARF); 1 for edges older than format 2 (docs/deltas.md)")
	pathVar(f, &chartCache, "chart-cache", "", "keep the charts and OCI sources of Applications in DIR and use them without network")
	chartRepoAuthVar(f, &chartAuth)
	f.StringVar(&helmCommand, "helm-command", render.DefaultHelmCommand, "Kustomize helmCharts: the helm v3 binary that templates them (charts are fetched by ballast)")
	f.Int64Var(&chartMaxBytes, "chart-max-bytes", charts.DefaultMaxChartBytes, "refuse a chart archive larger than this, compressed or not (bytes)")
	f.BoolVar(&o.NoAttached, "no-attached", false, "leave out the images' cosign signatures, attestations, SBOMs and OCI referrers (carried by default)")
	pathVar(f, &signKey, "sign-key", "", "sign the bundle index with this cosign key file (password from $COSIGN_PASSWORD); the signature is tagged sha256-<hex>.sig beside it")
	f.StringVarP(&output, "output-format", "o", "text", "output format: text or json")
	return c
}

// loadSignKey reads a cosign private key file with its password from
// COSIGN_PASSWORD, as cosign takes them.
func loadSignKey(path string) (*trust.Signer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--sign-key: %w", err)
	}
	pw, ok := os.LookupEnv("COSIGN_PASSWORD")
	if !ok && strings.Contains(string(raw), "ENCRYPTED") {
		return nil, fmt.Errorf("--sign-key %s: the key is encrypted and COSIGN_PASSWORD is not set", path)
	}
	s, err := trust.LoadSigner(raw, []byte(pw))
	if err != nil {
		return nil, fmt.Errorf("--sign-key %s: %w", path, err)
	}
	return s, nil
}

func splitComma(ss []string) []string {
	var out []string
	for _, s := range ss {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// progressLogger logs copy progress as plain lines, at most every 2 s.
func progressLogger(e *env) progress.Func {
	var mu sync.Mutex
	last := time.Now()
	return func(ev progress.Event) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Total == 0 || (time.Since(last) < 2*time.Second && ev.Done != ev.Total) {
			return
		}
		last = time.Now()
		e.log.Info("progress", "done", units.Bytes(ev.Done), "total", units.Bytes(ev.Total),
			"percent", fmt.Sprintf("%.1f", 100*float64(ev.Done)/float64(ev.Total)))
	}
}

func printBundle(w io.Writer, r *release.Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "revision: %s\n", r.Revision)
	if r.Source != "" {
		fmt.Fprintf(&b, "source:   %s\n", r.Source)
	}
	fmt.Fprintf(&b, "bundle:   %s\n", r.BundleDigest)
	if r.Bundle != "" {
		fmt.Fprintf(&b, "pushed:   %s\n", r.Bundle)
	}
	if r.Signature != "" {
		fmt.Fprintf(&b, "signed:   %s\n", r.Signature)
	}
	for _, p := range []string{r.OCILayout, r.Output} {
		if p != "" {
			fmt.Fprintf(&b, "written:  %s\n", p)
		}
	}
	if len(r.Charts) > 0 {
		fmt.Fprintf(&b, "charts:   %d (%s)\n", len(r.Charts), units.Bytes(r.ChartBytes))
		for _, c := range r.Charts {
			fmt.Fprintf(&b, "  %s@%s\n", c.Ref, c.Digest)
		}
	}
	if len(r.Attached) > 0 {
		fmt.Fprintf(&b, "attached: %d signatures, attestations and SBOMs (%s)\n", len(r.Attached), units.Bytes(r.AttachedBytes))
	}
	fmt.Fprintf(&b, "images:   %d\n", len(r.Images))
	for _, im := range r.Images {
		if r.DryRun {
			state := fmt.Sprintf("%s, %s missing", units.Bytes(im.Bytes), units.Bytes(im.Missing))
			if im.Present {
				state = "present"
			}
			fmt.Fprintf(&b, "  %s@%s (%s)\n", im.Ref, im.Digest, state)
		} else {
			fmt.Fprintf(&b, "  %s@%s\n", im.Ref, im.Digest)
		}
	}
	if r.DryRun && r.Plan != nil {
		fmt.Fprintf(&b, "plan:     %d blobs, %s; missing %d blobs, %s (dry run, nothing copied)\n",
			r.Plan.Blobs, units.Bytes(r.Plan.Bytes), r.Plan.MissingBlobs, units.Bytes(r.Plan.MissingBytes))
	} else if r.Stats != nil {
		fmt.Fprintf(&b, "bytes:    %s new, %s reused (%d blobs copied, %d present, %d mounted)\n",
			units.Bytes(r.BytesNew), units.Bytes(r.BytesReused), r.Stats.BlobsCopied, r.Stats.BlobsSkipped, r.Stats.BlobsMounted)
	}
	if d := r.Deltas; d != nil {
		fmt.Fprintf(&b, "deltas:   %d of %d changed layers (%s of patches for %s of layers; %s changed in all) against %d earlier bundles\n",
			d.Deltas, d.ChangedLayers, units.Bytes(d.DeltaBytes), units.Bytes(d.DeltaLayerBytes), units.Bytes(d.ChangedBytes), len(d.Bases))
		for _, why := range []string{"no-base", "not-reproducible", "too-large", "not-smaller", "media-type"} {
			if n := d.Whole[why]; n > 0 {
				fmt.Fprintf(&b, "  whole (%s): %d\n", why, n)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
