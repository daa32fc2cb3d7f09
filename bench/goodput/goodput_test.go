// Package goodput measures how much of a long, flaky link's rate each copy
// tool turns into bundle bytes: ballast `sync --once` (the real binary)
// against crane and regctl, each through its own fresh emulated link
// (internal/testutil/linkproxy) in the same run. See docs/BENCHMARKS.md.
//
//	make build && bench/deps.sh && BALLAST_BIN=$PWD/bin/ballast \
//	  go test -run '^$' -bench Goodput -benchtime 1x -timeout 60m ./bench/goodput/
package goodput_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/linkproxy"
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// profile is one link and one bundle.
type profile struct {
	name string
	// delay is the one-way delay of each direction.
	delay time.Duration
	// rate is the line rate of each direction, shared by all connections,
	// in bytes per second.
	rate int64
	// every and down: the link is down for down out of every every.
	every, down time.Duration
	// The bundle: images × layers × layerSize bytes of random data.
	images, layers int
	layerSize      int64
}

var profiles = []profile{
	{name: "geo-clean", delay: 300 * time.Millisecond, rate: 2_500_000, images: 6, layers: 4, layerSize: 2_500_000},
	{name: "geo-outages", delay: 300 * time.Millisecond, rate: 2_500_000, every: 15 * time.Second, down: 2 * time.Second, images: 6, layers: 4, layerSize: 2_500_000},
	{name: "lowrate", delay: 300 * time.Millisecond, rate: 64_000, images: 2, layers: 4, layerSize: 625_000},
}

// tool is one copy tool; prepare readies a run that copies the bundle
// through the link (nothing it does before returning is timed).
type tool struct {
	name    string
	prepare func(b *testing.B, w *world, link string) func(context.Context) ([]byte, error)
}

var tools = []tool{
	{"ballast", prepareBallast},
	{"crane", prepareCrane},
	{"regctl", prepareRegctl},
}

// BenchmarkGoodput runs every profile; each tool gets its own fresh link to
// the same upstream registry. Metrics per tool: goodput (bundle bytes /
// (seconds × line rate)) and linkx (bytes the link delivered / bundle
// bytes). GOODPUT_TOOLS=ballast,crane limits the tools.
func BenchmarkGoodput(b *testing.B) {
	only := map[string]bool{}
	for _, t := range strings.Split(os.Getenv("GOODPUT_TOOLS"), ",") {
		if t != "" {
			only[t] = true
		}
	}
	for _, p := range profiles {
		b.Run(p.name, func(b *testing.B) {
			sums := map[string][2]float64{}
			for n := 0; n < b.N; n++ {
				w := newWorld(b, p)
				for _, tl := range tools {
					if len(only) > 0 && !only[tl.name] {
						continue
					}
					g, x, ok := measure(b, w, tl)
					s := sums[tl.name]
					if ok {
						s[0] += g
						s[1] += x
					}
					sums[tl.name] = s
				}
			}
			for _, tl := range tools {
				if s, ok := sums[tl.name]; ok {
					b.ReportMetric(s[0]/float64(b.N), tl.name+"-goodput")
					b.ReportMetric(s[1]/float64(b.N), tl.name+"-linkx")
				}
			}
		})
	}
}

// world is the upstream side of one run: a git repository with one commit
// and a registry holding its bundle.
type world struct {
	p       profile
	git     *gitserver.Server
	repoURL string
	rev     string
	up      *regserver.Server
	bundles string // repository of the bundle, without registry
	size    int64  // bundle bytes: every manifest and blob it reaches
}

func newWorld(b *testing.B, p profile) *world {
	b.Helper()
	gitserver.RequireGit(b)
	w := &world{p: p, git: gitserver.New(b), up: regserver.Start(b, regserver.Options{}), bundles: "fleet/apps-bundles"}
	repo := w.git.CreateRepo(b, "fleet/apps")
	w.rev = repo.Commit("main", map[string]string{"app.yaml": fmt.Sprint(time.Now().UnixNano())})
	w.repoURL = w.git.URL("fleet/apps")
	bd := bundle.Bundle{Revision: w.rev, Created: time.Now()}
	for i := 0; i < p.images; i++ {
		img := testimage.Image(b, "linux/amd64", p.layers, p.layerSize)
		d, _ := img.Digest()
		dst, err := name.NewDigest(w.up.Repo(w.bundles)+"@"+d.String(), name.Insecure)
		if err != nil {
			b.Fatal(err)
		}
		if err := remote.Write(dst, img); err != nil {
			b.Fatal(err)
		}
		mt, _ := img.MediaType()
		msize, _ := img.Size()
		raw, _ := img.RawConfigFile()
		w.size += msize + int64(len(raw)) + int64(p.layers)*p.layerSize
		ref, err := imageref.Parse(fmt.Sprintf("ghcr.io/org/app%d:v1", i))
		if err != nil {
			b.Fatal(err)
		}
		desc := v1.Descriptor{MediaType: mt, Size: msize, Digest: d}
		// The blob hints `ballast bundle` writes (bundle.AnnotationBlobs).
		src, err := registryclient.New(w.up.Repo(w.bundles), registryclient.WithInsecure(true))
		if err != nil {
			b.Fatal(err)
		}
		var nodes []oci.Node
		if err := oci.Walk(context.Background(), src, desc, nil, func(n oci.Node) error {
			nodes = append(nodes, n)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		bd.Images = append(bd.Images, bundle.Image{Ref: ref, Descriptor: desc, Blobs: bundle.HintsFromWalk(nodes)})
	}
	raw, desc, err := bundle.Build(bd)
	if err != nil {
		b.Fatal(err)
	}
	tag, _ := name.NewTag(w.up.Repo(w.bundles)+":"+w.rev, name.Insecure)
	if err := remote.Put(tag, rawManifest{raw, desc.MediaType}); err != nil {
		b.Fatal(err)
	}
	w.size += int64(len(raw))
	return w
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// measure runs one tool through a fresh link and returns its goodput and
// link bytes per bundle byte; ok is false when it failed.
func measure(b *testing.B, w *world, tl tool) (goodput, linkx float64, ok bool) {
	b.Helper()
	p := w.p
	link := linkproxy.Start(b, w.up.Addr)
	link.SetDelay(p.delay, p.delay)
	link.SetRate(p.rate)
	link.SetUpRate(p.rate)
	ideal := time.Duration(float64(w.size) / float64(p.rate) * float64(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), max(10*ideal, 3*time.Minute))
	defer cancel()
	run := tl.prepare(b, w, link.Addr)
	start := time.Now()
	if p.every > 0 {
		link.Outages(ctx, p.every, p.down)
	}
	out, err := run(ctx)
	elapsed := time.Since(start)
	cancel()
	goodput = float64(w.size) / (elapsed.Seconds() * float64(p.rate))
	linkx = float64(link.Down()) / float64(w.size)
	if err != nil {
		ok = false
		tail := out
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		b.Logf("%-12s %-8s FAILED after %6.1fs (%v), link %.3fx; output tail:\n%s", p.name, tl.name, elapsed.Seconds(), err, linkx, tail)
		if tl.name == "ballast" {
			b.Errorf("ballast failed on %s", p.name)
		}
		return 0, linkx, false
	}
	b.Logf("%-12s %-8s %6.1fs for %d bytes (ideal %.1fs): goodput %.3f, link bytes %.4fx, outages %d, cuts %d, refused %d",
		p.name, tl.name, elapsed.Seconds(), w.size, ideal.Seconds(), goodput, linkx, link.OutageCount(), link.Cuts(), link.Refused())
	return goodput, linkx, true
}

// ballastBin is the binary under test (make build; BALLAST_BIN).
func ballastBin(b *testing.B) string {
	if p := os.Getenv("BALLAST_BIN"); p != "" {
		return p
	}
	realtest.Missing(b, "BALLAST_BIN (the ballast binary)", "make build; BALLAST_BIN=$PWD/bin/ballast")
	return ""
}

// peerBin finds a peer tool built by bench/deps.sh.
func peerBin(b *testing.B, tool, version string) string {
	env := strings.ToUpper(tool) + "_BIN"
	if p := os.Getenv(env); p != "" {
		return p
	}
	cache := os.Getenv("BALLAST_BENCH_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "ballast", "bench")
	}
	p := filepath.Join(cache, tool+"-"+version, tool)
	if _, err := os.Stat(p); err != nil {
		realtest.Missing(b, tool+" "+version, "bench/deps.sh builds it, or set "+env)
	}
	return p
}

func runCmd(ctx context.Context, env []string, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// prepareBallast makes a fresh data dir whose git mirror already holds the
// revision (a first pass against a bundles repository that does not exist
// clones it; on a site the mirror is there already) and returns the timed
// run: `ballast sync --once` of the bundle through link.
func prepareBallast(b *testing.B, w *world, link string) func(context.Context) ([]byte, error) {
	bin := ballastBin(b)
	dir := b.TempDir()
	data := filepath.Join(dir, "data")
	warm := ballastConfig(b, dir, "warm", data, w.repoURL, w.up.Addr, "fleet/none")
	if out, err := runCmd(context.Background(), nil, bin, "sync", "--once", "--config", warm, "--log-level", "warn"); err != nil {
		b.Fatalf("ballast warm-up (git clone): %v\n%s", err, out)
	}
	cfg := ballastConfig(b, dir, "edge", data, w.repoURL, link, w.bundles)
	// GOODPUT_LOG_LEVEL=info (or debug) keeps ballast's own timeline
	// ("syncing bundle": the index arrived; "bundle complete", with the
	// blob hints fetched) in a file under $TMPDIR, named in the log.
	level := os.Getenv("GOODPUT_LOG_LEVEL")
	return func(ctx context.Context) ([]byte, error) {
		out, err := runCmd(ctx, nil, bin, "sync", "--once", "--config", cfg, "--log-level", cmp.Or(level, "warn"))
		if err == nil && !bytes.Contains(out, []byte("complete 1,")) {
			err = fmt.Errorf("the bundle is not complete")
		}
		if level != "" {
			f := filepath.Join(os.TempDir(), fmt.Sprintf("goodput-ballast-%s-%d.log", w.p.name, time.Now().UnixNano()))
			if werr := os.WriteFile(f, out, 0o600); werr != nil {
				b.Logf("ballast output:\n%s", out)
			} else {
				b.Logf("ballast output: %s", f)
			}
		}
		return out, err
	}
}

func ballastConfig(b *testing.B, dir, name, dataDir, repoURL, registry, bundles string) string {
	p := filepath.Join(dir, name+".yaml")
	cfg := fmt.Sprintf("dataDir: %s\nrepositories:\n  - url: %s\n    bundles: %s/%s\nupstreamRegistries:\n  %q: {insecure: true}\n",
		dataDir, repoURL, registry, bundles, registry)
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	return p
}

// prepareCrane starts a fresh destination registry (not behind the link)
// and returns the timed `crane copy` of the bundle index, which copies every
// image it lists.
func prepareCrane(b *testing.B, w *world, link string) func(context.Context) ([]byte, error) {
	bin := peerBin(b, "crane", "v0.22.1")
	dst := regserver.Start(b, regserver.Options{}).Addr
	home := b.TempDir()
	return func(ctx context.Context) ([]byte, error) {
		return runCmd(ctx, []string{"HOME=" + home, "DOCKER_CONFIG=" + home}, bin, "copy", "--insecure",
			link+"/"+w.bundles+":"+w.rev, dst+"/"+w.bundles+":"+w.rev)
	}
}

// prepareRegctl is prepareCrane for `regctl image copy` (default flags).
func prepareRegctl(b *testing.B, w *world, link string) func(context.Context) ([]byte, error) {
	bin := peerBin(b, "regctl", "v0.11.7")
	dst := regserver.Start(b, regserver.Options{}).Addr
	home := b.TempDir()
	return func(ctx context.Context) ([]byte, error) {
		return runCmd(ctx, []string{"HOME=" + home, "DOCKER_CONFIG=" + home}, bin, "image", "copy",
			"--host", "reg="+link+",tls=disabled", "--host", "reg="+dst+",tls=disabled",
			link+"/"+w.bundles+":"+w.rev, dst+"/"+w.bundles+":"+w.rev)
	}
}
