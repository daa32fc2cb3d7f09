// Package demo is `ballast demo`: the whole story on one machine with no
// internet. It builds a small "cloud" on loopback (an upstream git repository
// served by `git http-backend`, an upstream registry holding the example
// apps' images, made locally), runs the bundle step as CI would, starts the
// edge daemon behind a simulated satellite link (Toxiproxy: latency, a
// bandwidth cap, connections cut every few MB), and narrates what happens:
// the mirror fetch, resumed transfers, the gate turning from NOT READY to
// READY, a second revision of which only a delta of the changed layer
// crosses the link,
// and, with the link cut, the mirror and registry serving on and an offline
// rollback passing the gate.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ballast-dev/ballast/examples"
	"github.com/ballast-dev/ballast/internal/apiauth"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/discover"
	"github.com/ballast-dev/ballast/internal/edge"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/release"
	"github.com/ballast-dev/ballast/internal/units"
	"github.com/ballast-dev/ballast/internal/verify"
)

// DefaultLink is a slow satellite link that drops long transfers: the
// demo's images take about ten seconds to cross it and are cut a dozen times
// on the way.
var DefaultLink = LinkOptions{Latency: 150 * time.Millisecond, Bandwidth: 6 << 20, CutEvery: 4 << 20}

// Options configure Run.
type Options struct {
	// Out receives the story, for people. Required.
	Out io.Writer
	// Log receives the parts' logs (the CLI passes errors only, so that
	// raw log lines never interleave with the story). The default
	// discards them.
	Log *slog.Logger
	// LogFile also writes the parts' logs, info and up, to demo.log in the
	// working directory (kept with Dir), and the story says where.
	LogFile bool
	// Dir is the working directory (cloud and edge data); it is kept
	// afterwards. The default is a temporary directory, removed at the end.
	Dir string
	// Keep serves on after the story until ctx ends.
	Keep bool
	// Lister finds the images of an app. The default is discover.Lister,
	// the one `ballast bundle` uses.
	Lister release.ImageLister
	// Examples is the example app repository. The default is the one
	// embedded in the binary.
	Examples fs.FS
	// Scale multiplies the image sizes: 1 (the default) makes about
	// 60 MiB for the edge's platform and 80 MiB in all.
	Scale float64
	// Link shapes the simulated link. The default is DefaultLink.
	Link LinkOptions
	// StepTimeout bounds each wait (a bundle arriving, a poll). The default
	// value is 90 s.
	StepTimeout time.Duration
	// OnStatusURL, when set, is called with the status page URL as soon
	// as the edge daemon listens (tests use it).
	OnStatusURL func(string)
}

// Figures are what one revision cost.
type Figures struct {
	Revision     string `json:"revision"`
	Images       int    `json:"images"`
	BundleBytes  int64  `json:"bundleBytes"`  // blob bytes of the bundle for the edge's platforms
	AllBytes     int64  `json:"allBytes"`     // blob bytes of the bundle, every platform
	MissingBytes int64  `json:"missingBytes"` // blob bytes for the edge's platforms that the edge lacked
	NewBytes     int64  `json:"newBytes"`     // blob bytes CI pushed that the bundles repository lacked
	LinkBytes    int64  `json:"linkBytes"`    // bytes sync read from upstream registries
	DeltaBytes   int64  `json:"deltaBytes"`   // patch bytes of the sub-layer deltas bundle published
	WireBytes    int64  `json:"wireBytes"`    // bytes the link delivered, HTTP included (Toxiproxy's count)
	Retries      int64  `json:"retries"`      // transfer attempts cut and resumed
}

// Result sums the story up.
type Result struct {
	StatusURL string        `json:"statusURL"`
	Rev1      Figures       `json:"rev1"`
	Rev2      Figures       `json:"rev2"`
	Duration  time.Duration `json:"duration"`
}

const (
	repoName     = "fleet/apps"
	bundlesRepo  = "fleet/apps-bundles"
	edgePlatform = "linux/amd64"
	ballastYAML  = `# What ballast bundle puts in the bundle of each revision.
apps:
  - application: examples/argocd/guestbook.yaml
  - path: examples/apps/shop/base
`
)

// story is one run of the demo: everything it started, so cleanup can stop
// it in order.
type story struct {
	o       Options
	n       *narrator
	dir     string
	logFile *os.File // demo.log, with Options.LogFile
	// cloudLog takes the cloud registry's logs: demo.log only when there
	// is one (what goes wrong upstream is the narration's to tell, and
	// the run's error if it matters), else Options.Log.
	cloudLog *slog.Logger

	cloud    *cloudRegistry
	gitSrv   *gitServer
	link     *link
	daemon   *edge.Daemon
	stopEdge context.CancelFunc
	edgeDone chan error

	work     string // the CI checkout
	bare     string // the upstream bare repository
	repoURL  string // as the edge sees it: through the link
	mirror   string // the edge's mirror URL of the repository
	edgeHTTP string
	edgeReg  string
	pushed   map[string]map[string]blobSet // images in the cloud registry: their blobs by platform
	revBlobs map[string]blobSet            // blobs of each revision's bundle for the edge's platform
	edgeHas  blobSet                       // blobs of the bundles complete at the edge
	// client and its transport carry the demo's own requests to the edge
	// (verify's included), so cleanup can close their idle connections:
	// the daemon's graceful shutdown waits for connections that never
	// sent a request.
	client *http.Client
	// token is the daemon's API token, which verify --activate sends.
	token apiauth.Token
}

// Run tells the story and returns its figures. Every failing step is an
// error that says which step; everything started is stopped before Run
// returns.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	if o.Out == nil {
		return nil, errors.New("demo: Out is required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Lister == nil {
		o.Lister = discover.Lister(discover.ListerOptions{Log: o.Log})
	}
	if o.Examples == nil {
		o.Examples = examples.FS
	}
	if o.Scale <= 0 {
		o.Scale = 1
	}
	if o.Link == (LinkOptions{}) {
		o.Link = DefaultLink
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = 90 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &story{o: o, n: &narrator{w: o.Out, start: time.Now(), fail: cancel}, pushed: map[string]map[string]blobSet{}, revBlobs: map[string]blobSet{}, edgeHas: blobSet{}}
	s.client = &http.Client{Timeout: 10 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer func() {
		if cerr := s.cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	return s.run(ctx)
}

func (s *story) run(ctx context.Context) (*Result, error) {
	res, err := s.tell(ctx)
	if werr := s.n.failed(); werr != nil {
		return nil, fmt.Errorf("writing the story: %w", werr)
	}
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", err)
	}
	return res, err
}

func (s *story) tell(ctx context.Context) (*Result, error) {
	res := &Result{}
	if _, err := exec.LookPath("git"); err != nil {
		return nil, fmt.Errorf("the demo needs the git CLI (apt-get install git): %w", err)
	}
	if err := s.makeDir(); err != nil {
		return nil, err
	}
	s.n.say("demo", "ballast demo: the whole flow on this machine, no internet; working in %s", s.dir)
	if s.o.LogFile {
		f, err := os.OpenFile(filepath.Join(s.dir, "demo.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("log file: %w", err)
		}
		s.logFile = f
		fileLog := slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo})
		s.cloudLog = slog.New(fileLog)
		s.o.Log = slog.New(slog.NewMultiHandler(fileLog, s.o.Log.Handler()))
		where := f.Name()
		if s.o.Dir == "" {
			where += " (removed at the end; keep it with --dir)"
		}
		s.n.say("demo", "logs of the parts: %s", where)
	}

	s.n.title("The cloud: an upstream git repository and registry, and CI")
	rev1, err := s.buildCloud(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.bundle(ctx, rev1, &res.Rev1); err != nil {
		return nil, err
	}

	s.n.title("The edge, behind a satellite link")
	if err := s.startEdge(ctx); err != nil {
		return nil, err
	}
	res.StatusURL = "http://" + s.edgeHTTP + "/"
	if s.o.OnStatusURL != nil {
		s.o.OnStatusURL(res.StatusURL)
	}
	if err := s.waitReady(ctx, rev1, &res.Rev1); err != nil {
		return nil, err
	}

	s.n.title("A second revision changes one image")
	rev2, err := s.pushRevision2(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.bundle(ctx, rev2, &res.Rev2); err != nil {
		return nil, err
	}
	s.gate(ctx, rev2, false) // before the edge has the commit: blocked
	if err := s.poll(ctx); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx, rev2, &res.Rev2); err != nil {
		return nil, err
	}
	s.n.say("link", "revision 2 moved %s over the link for a %s bundle: a delta of the changed layer (%s pushed by CI; the edge made it exact from the layer it held), not the layer",
		units.Bytes(res.Rev2.LinkBytes), units.Bytes(res.Rev2.BundleBytes), units.Bytes(res.Rev2.NewBytes))

	s.n.title("The link goes down")
	if err := s.offline(ctx, rev1, rev2); err != nil {
		return nil, err
	}

	res.Duration = time.Since(s.n.start)
	s.n.title("Done")
	s.n.say("demo", "status page: %s   (JSON: %sapi/v1/status)", res.StatusURL, res.StatusURL)
	s.n.say("demo", "revision 1: %d images, %s of blobs for %s; %s crossed the link (%.2f× the bundle), %s cut and resumed",
		res.Rev1.Images, units.Bytes(res.Rev1.BundleBytes), edgePlatform, units.Bytes(res.Rev1.LinkBytes), ratio(res.Rev1.LinkBytes, res.Rev1.BundleBytes), plural(res.Rev1.Retries, "transfer"))
	s.n.say("demo", "revision 2: one image changed; %s crossed the link for a %s bundle (%.1f%% of it)",
		units.Bytes(res.Rev2.LinkBytes), units.Bytes(res.Rev2.BundleBytes), 100*ratio(res.Rev2.LinkBytes, res.Rev2.BundleBytes))
	if s.o.Keep {
		s.n.say("demo", "--keep: the edge keeps serving (link down) until Ctrl-C")
		<-ctx.Done()
		return res, nil
	}
	s.n.say("demo", "finished in %.1fs; cleaning up", res.Duration.Seconds())
	return res, nil
}

func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func (s *story) makeDir() error {
	if s.o.Dir != "" {
		if err := os.MkdirAll(s.o.Dir, 0o755); err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
		entries, err := os.ReadDir(s.o.Dir)
		if err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
		if len(entries) > 0 {
			return fmt.Errorf("working directory %s is not empty", s.o.Dir)
		}
		abs, err := filepath.Abs(s.o.Dir)
		if err != nil {
			return err
		}
		s.dir = abs
		return nil
	}
	d, err := os.MkdirTemp("", "ballast-demo-")
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	s.dir = d
	return nil
}

// buildCloud starts the upstream registry and git server and commits the
// example apps as revision 1.
func (s *story) buildCloud(ctx context.Context) (string, error) {
	var err error
	log := s.cloudLog
	if log == nil {
		log = s.o.Log
	}
	if s.cloud, err = startCloudRegistry(ctx, filepath.Join(s.dir, "cloud", "registry"), log.With("side", "cloud")); err != nil {
		return "", err
	}
	root := filepath.Join(s.dir, "cloud", "git")
	s.bare = filepath.Join(root, filepath.FromSlash(repoName)+".git")
	s.work = filepath.Join(s.dir, "cloud", "ci-checkout")
	if err := os.MkdirAll(s.bare, 0o755); err != nil {
		return "", err
	}
	if _, err := git(ctx, s.bare, "init", "--quiet", "--bare", "--initial-branch=main"); err != nil {
		return "", fmt.Errorf("upstream git repository: %w", err)
	}
	if s.gitSrv, err = startGitServer(root); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(s.work, "examples"), 0o755); err != nil {
		return "", err
	}
	if err := copyFS(s.o.Examples, filepath.Join(s.work, "examples")); err != nil {
		return "", fmt.Errorf("copy the example apps: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.work, release.ConfigFile), []byte(ballastYAML), 0o644); err != nil {
		return "", err
	}
	direct := s.gitSrv.url(s.gitSrv.addr, repoName)
	for _, args := range [][]string{
		{"init", "--quiet", "--initial-branch=main"},
		{"remote", "add", "origin", direct},
		{"add", "-A"},
		{"commit", "--quiet", "-m", "example apps: guestbook and shop"},
		{"push", "--quiet", s.bare, "main"},
	} {
		if _, err := git(ctx, s.work, args...); err != nil {
			return "", fmt.Errorf("commit revision 1: %w", err)
		}
	}
	sha, err := git(ctx, s.work, "rev-parse", "HEAD")
	if err != nil {
		return "", err
	}
	s.n.say("cloud", "upstream git repository %s (git http-backend): the example apps, main = %s", direct, short(sha))
	s.n.say("cloud", "upstream registry %s (embedded Distribution) stands in for docker.io, ghcr.io and registry.example.com:5000", s.cloud.addr)
	return sha, nil
}

// imagesOf lists the images of revision sha, as the bundle step will.
func (s *story) imagesOf(ctx context.Context, sha string) ([]string, error) {
	dir, err := release.Checkout(ctx, s.work, sha)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	raw, err := os.ReadFile(filepath.Join(dir, release.ConfigFile))
	if err != nil {
		return nil, err
	}
	cfg, err := release.ParseConfig(raw)
	if err != nil {
		return nil, err
	}
	var refs []string
	for _, app := range cfg.Apps {
		rs, err := s.o.Lister(ctx, dir, app)
		if err != nil {
			return nil, fmt.Errorf("images of %s: %w", app, err)
		}
		for _, r := range rs.Images {
			refs = append(refs, r.String())
		}
	}
	slices.Sort(refs)
	return slices.Compact(refs), nil
}

// bundle makes the images revision sha needs (the "public" images, locally)
// and runs the bundle step for it, the code `ballast bundle` runs.
func (s *story) bundle(ctx context.Context, sha string, f *Figures) error {
	refs, err := s.imagesOf(ctx, sha)
	if err != nil {
		return fmt.Errorf("list the images of %s: %w", short(sha), err)
	}
	var made []string
	madeBlobs := blobSet{}
	for _, ref := range refs {
		if s.pushed[ref] != nil {
			continue
		}
		blobs, err := pushImage(ctx, s.cloud, ref, s.o.Scale)
		if err != nil {
			return fmt.Errorf("make image %s: %w", ref, err)
		}
		s.pushed[ref] = blobs
		label := ref
		var plats []string
		for p, b := range blobs {
			madeBlobs.add(b)
			plats = append(plats, p)
		}
		if len(plats) > 1 {
			slices.Sort(plats)
			label += " (" + strings.Join(plats, " + ") + ")"
		}
		made = append(made, label)
	}
	if len(made) > 0 {
		s.n.say("cloud", "made %d image(s) locally, random layers, %s of blobs:\n%s", len(made), units.Bytes(madeBlobs.bytes()), strings.Join(made, "\n"))
	}
	// What the edge needs: the distinct blobs of its platform.
	edgeBlobs, allBlobs := blobSet{}, blobSet{}
	for _, ref := range refs {
		edgeBlobs.add(s.pushed[ref][edgePlatform])
		for _, b := range s.pushed[ref] {
			allBlobs.add(b)
		}
	}
	to := s.cloud.addr + "/" + bundlesRepo
	r, err := release.Run(ctx, release.Options{
		RepoDir:  s.work,
		Revision: sha,
		Lister:   s.o.Lister,
		To:       to,
		RemoteOptions: []registryclient.Option{
			registryclient.WithInsecure(true),
			registryclient.WithTransport(nsTransport{cloud: s.cloud.addr, next: s.cloud.reg.Transport()}),
		},
		Log:        s.o.Log,
		DeltaBases: release.DefaultDeltaBases,
	})
	if err != nil {
		return fmt.Errorf("ballast bundle %s: %w", short(sha), err)
	}
	s.n.say("CI", "ballast bundle → %s:%s…: %d images, every platform (%s); %s copied, %s already there; index pushed last",
		to, short(sha), len(r.Images), units.Bytes(allBlobs.bytes()), units.Bytes(r.BytesNew), units.Bytes(r.BytesReused))
	if d := r.Deltas; d != nil && d.Deltas > 0 {
		s.n.say("CI", "ballast bundle published %d sub-layer delta(s) against the previous bundle: %s of patch for %s of changed layers (docs/deltas.md)",
			d.Deltas, units.Bytes(d.DeltaBytes), units.Bytes(d.DeltaLayerBytes))
		f.DeltaBytes = d.DeltaBytes
	}
	f.Revision, f.Images, f.NewBytes, f.BundleBytes, f.AllBytes = sha, len(r.Images), r.BytesNew, edgeBlobs.bytes(), allBlobs.bytes()
	s.revBlobs[sha] = edgeBlobs
	return nil
}

// startEdge puts the link in front of the cloud and starts the edge daemon
// behind it.
func (s *story) startEdge(ctx context.Context) error {
	s.link = newLink(s.o.Link.Bandwidth)
	regLink, err := s.link.add("registry", s.cloud.addr, s.o.Link)
	if err != nil {
		return err
	}
	// Git goes over the same link, with its latency and sharing its
	// bandwidth; a git fetch is small and, unlike blobs, cannot resume,
	// so it is not cut.
	gitLink, err := s.link.add("git", s.gitSrv.addr, LinkOptions{Latency: s.o.Link.Latency})
	if err != nil {
		return err
	}
	s.n.say("link", "satellite link simulated by Toxiproxy: %s", s.o.Link)
	s.repoURL = s.gitSrv.url(gitLink, repoName)
	yaml := fmt.Sprintf(`dataDir: %q
listen: {http: "127.0.0.1:0", registry: "127.0.0.1:0"}
repositories:
  - url: %q
    pollInterval: 1m
    bundles: %q
    track: [refs/heads/main]
upstreamRegistries:
  %q: {insecure: true}
platforms: [%s]
`, filepath.Join(s.dir, "edge"), s.repoURL, regLink+"/"+bundlesRepo, regLink, edgePlatform)
	if err := os.WriteFile(filepath.Join(s.dir, "edge.yaml"), []byte(yaml), 0o644); err != nil {
		return err
	}
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		return fmt.Errorf("edge config: %w", err)
	}
	d, err := edge.New(cfg, s.o.Log)
	if err != nil {
		return fmt.Errorf("edge daemon: %w", err)
	}
	ectx, cancel := context.WithCancel(ctx)
	s.daemon, s.stopEdge, s.edgeDone = d, cancel, make(chan error, 1)
	go func() { s.edgeDone <- d.Run(ectx) }()
	select {
	case <-d.Started():
	case err := <-s.edgeDone:
		s.edgeDone <- err // for cleanup
		return fmt.Errorf("edge daemon: %w", err)
	case <-time.After(s.o.StepTimeout):
		return errors.New("edge daemon: not listening after " + s.o.StepTimeout.String())
	}
	s.edgeHTTP, s.edgeReg = d.Addr("http").String(), d.Addr("registry").String()
	if s.token, err = apiauth.ReadFile(cfg.APITokenFile()); err != nil {
		return fmt.Errorf("edge daemon: %w", err)
	}
	rs, err := d.Mirror.Repo(s.repoURL)
	if err != nil {
		return fmt.Errorf("edge mirror: %w", err)
	}
	s.mirror = "http://" + s.edgeHTTP + rs.MirrorPath
	s.n.say("edge", "ballast edge started (config %s): mirror + API on %s, registry on %s;\nit selects platform %s, so only that part of each bundle crosses the link",
		filepath.Join(s.dir, "edge.yaml"), s.edgeHTTP, s.edgeReg, edgePlatform)
	s.n.say("edge", "Argo CD would use %s; k3s would pull through %s", s.mirror, s.edgeReg)
	return nil
}

// gate runs `ballast verify` for sha; report sends the result to the
// daemon's status page.
func (s *story) gate(ctx context.Context, sha string, activate bool) *verify.Result {
	r, err := verify.Run(ctx, s.verifyOptions(sha, activate, true))
	if err != nil { // bad options only
		return &verify.Result{Reason: err.Error()}
	}
	if r.Ready {
		s.n.say("gate", "ballast verify %s → READY (%d images, %d blobs present, checked in %.0f ms)", short(sha), r.Images, r.Blobs, r.Seconds*1000)
	} else {
		s.n.say("gate", "ballast verify %s → NOT READY: %s", short(sha), r.Reason)
	}
	return r
}

func (s *story) verifyOptions(sha string, activate, report bool) verify.Options {
	return verify.Options{
		RepoURL:    s.repoURL,
		Revision:   sha,
		MirrorURL:  "http://" + s.edgeHTTP,
		Registry:   s.edgeReg,
		Activate:   activate,
		Report:     report,
		Token:      s.token,
		HTTPClient: s.client,
		Transport:  s.client.Transport,
	}
}

// reasonKind is a verify reason without its changing details (percentages,
// counts), so the story tells each kind of "not ready" once.
func reasonKind(r string) string {
	if i := strings.Index(r, " ("); i >= 0 {
		r = r[:i]
	}
	if i := strings.Index(r, ": "); i >= 0 {
		r = r[:i]
	}
	return r
}

// waitReady narrates sync and the gate until revision sha is ready.
func (s *story) waitReady(ctx context.Context, sha string, f *Figures) error {
	linkStart, wireStart, retriesStart := s.daemon.Sync.LinkBytes(), s.link.bytesToEdge("registry"), s.retries()
	for h, n := range s.revBlobs[sha] {
		if _, ok := s.edgeHas[h]; !ok {
			f.MissingBytes += n
		}
	}
	deadline := time.Now().Add(s.o.StepTimeout)
	inMirror := false
	lastKind := ""
	var lastProgress time.Time
	var lastWire int64
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		r, err := verify.Run(ctx, s.verifyOptions(sha, false, false))
		if err != nil {
			return fmt.Errorf("verify %s: %w", short(sha), err)
		}
		if !inMirror && r.CommitPresent {
			inMirror = true
			s.n.say("edge", "git mirror fetched %s over the link: main = %s", repoName, short(sha))
		}
		if wire := s.link.bytesToEdge("registry") - wireStart; wire > lastWire+64<<10 && time.Since(lastProgress) >= 2*time.Second {
			line := fmt.Sprintf("sync %s: %s of the %s it lacks over the link (%.0f%%)", short(sha), units.Bytes(wire), units.Bytes(f.MissingBytes), 100*ratio(wire, f.MissingBytes))
			if !lastProgress.IsZero() {
				rate := float64(wire-lastWire) / time.Since(lastProgress).Seconds()
				line += fmt.Sprintf(", %s/s", units.Bytes(int64(rate)))
				if left := f.MissingBytes - wire; left > 0 && rate > 0 {
					line += fmt.Sprintf(", about %v left", time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second))
				}
			}
			line += fmt.Sprintf("; %s cut and resumed so far", plural(s.retries()-retriesStart, "transfer"))
			s.n.say("sync", "%s", line)
			lastProgress, lastWire = time.Now(), wire
		}
		switch {
		case r.Ready:
			f.LinkBytes = s.daemon.Sync.LinkBytes() - linkStart
			f.WireBytes = s.link.bytesToEdge("registry") - wireStart
			f.Retries = s.retries() - retriesStart
			s.edgeHas.add(s.revBlobs[sha])
			s.n.say("sync", "bundle %s complete at the edge: %s of blobs for %s, of which it lacked %s;\n%s crossed the link (%.2f× what it lacked), %s cut and resumed",
				short(sha), units.Bytes(f.BundleBytes), edgePlatform, units.Bytes(f.MissingBytes), units.Bytes(f.LinkBytes), ratio(f.LinkBytes, f.MissingBytes), plural(f.Retries, "transfer"))
			if r = s.gate(ctx, sha, false); !r.Ready {
				return fmt.Errorf("verify %s: ready, then not: %s", short(sha), r.Reason)
			}
			return nil
		case reasonKind(r.Reason) != lastKind:
			lastKind = reasonKind(r.Reason)
			s.gate(ctx, sha, false)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("revision %s is not ready after %v: %s", short(sha), s.o.StepTimeout, r.Reason)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-s.edgeDone:
			s.edgeDone <- err
			return fmt.Errorf("edge daemon stopped: %v", err)
		case <-tick.C:
		}
	}
}

// retries reads the sync's retry counter from the daemon's metrics.
func (s *story) retries() int64 {
	return int64(counterValue(s.daemon.Metrics, "ballast_sync_retries_total"))
}

func counterValue(g prometheus.Gatherer, name string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		return 0
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue()
		}
	}
	return v
}

// pushRevision2 changes one image in git, as a developer would.
func (s *story) pushRevision2(ctx context.Context) (string, error) {
	files, err := replaceInTree(s.work, changedImage, changedTo)
	if err != nil {
		return "", fmt.Errorf("edit revision 2: %w", err)
	}
	if len(files) == 0 {
		return "", fmt.Errorf("edit revision 2: no file names %s", changedImage)
	}
	for _, args := range [][]string{
		{"commit", "--quiet", "-am", "shop-api 1.4.1"},
		{"push", "--quiet", s.bare, "main"},
	} {
		if _, err := git(ctx, s.work, args...); err != nil {
			return "", fmt.Errorf("commit revision 2: %w", err)
		}
	}
	sha, err := git(ctx, s.work, "rev-parse", "HEAD")
	if err != nil {
		return "", err
	}
	s.n.say("cloud", "git push: main = %s changes %s → %s (%s)", short(sha), changedImage, changedTo[strings.LastIndex(changedTo, ":")+1:], strings.Join(files, ", "))
	return sha, nil
}

// poll asks the mirror to poll now instead of at its next interval.
func (s *story) poll(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, s.o.StepTimeout)
	defer cancel()
	id, err := imageref.RepoID(s.repoURL)
	if err != nil {
		return err
	}
	s.n.say("edge", "git mirror polls its upstream (every minute; the demo asks now)")
	if err := s.daemon.Mirror.Poll(pctx, id); err != nil {
		return fmt.Errorf("mirror poll: %w", err)
	}
	return nil
}

// offline cuts the link and shows the edge serving on: git through the
// mirror, an image manifest from the registry, and a rollback to
// revision 1 passing the gate.
func (s *story) offline(ctx context.Context, rev1, rev2 string) error {
	s.link.cut()
	s.gitSrv.stop()
	if err := s.cloud.stop(); err != nil {
		return fmt.Errorf("stop the upstream registry: %w", err)
	}
	s.cloud = nil
	s.n.say("link", "cut: the proxies are down, and the upstream git server and registry are stopped")

	id, err := imageref.RepoID(s.repoURL)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	perr := s.daemon.Mirror.Poll(pctx, id)
	cancel()
	if perr == nil {
		return errors.New("mirror poll succeeded with the link down")
	}
	s.n.say("edge", "git mirror poll fails (%s); it serves its local copy", firstLine(perr.Error(), 90))

	out, err := git(ctx, s.dir, "ls-remote", s.mirror, "refs/heads/main")
	if err != nil {
		return fmt.Errorf("git ls-remote through the mirror, offline: %w", err)
	}
	if !strings.HasPrefix(out, rev2) {
		return fmt.Errorf("git ls-remote through the mirror, offline: %q, want main = %s", out, rev2)
	}
	clone := filepath.Join(s.dir, "offline-clone")
	if _, err := git(ctx, s.dir, "clone", "--quiet", s.mirror, clone); err != nil {
		return fmt.Errorf("git clone through the mirror, offline: %w", err)
	}
	head, err := git(ctx, clone, "rev-parse", "HEAD")
	if err != nil || head != rev2 {
		return fmt.Errorf("git clone through the mirror, offline: HEAD %s, want %s (%v)", head, rev2, err)
	}
	s.n.say("edge", "offline: git ls-remote and git clone %s → main = %s", s.mirror, short(head))

	// The request containerd sends for ghcr.io/ballast-dev/shop-api:1.4.1
	// through a "*" mirror.
	digest, err := s.manifest(ctx, "ballast-dev/shop-api", "1.4.1", "ghcr.io")
	if err != nil {
		return fmt.Errorf("manifest from the edge registry, offline: %w", err)
	}
	s.n.say("edge", "offline: GET %s/v2/ballast-dev/shop-api/manifests/1.4.1?ns=ghcr.io (as containerd asks) → 200 %s", s.edgeReg, digest)

	s.n.say("gate", "rollback to revision 1 with the link down: ballast verify --activate %s", short(rev1))
	if r := s.gate(ctx, rev1, true); !r.Ready {
		return fmt.Errorf("offline rollback to %s: %s", short(rev1), r.Reason)
	}
	return nil
}

func (s *story) manifest(ctx context.Context, repo, tag, ns string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.edgeReg+"/v2/"+repo+"/manifests/"+tag+"?ns="+ns, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
	resp, err := s.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return resp.Header.Get("Docker-Content-Digest"), nil
}

func firstLine(s string, n int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// cleanup stops everything in reverse order of start and removes the
// temporary directory.
func (s *story) cleanup() error {
	var errs []error
	s.client.CloseIdleConnections()
	if s.daemon != nil {
		s.stopEdge()
		select {
		case err := <-s.edgeDone:
			if err != nil {
				errs = append(errs, fmt.Errorf("edge daemon: %w", err))
			}
		case <-time.After(edge.ShutdownTimeout + 5*time.Second):
			errs = append(errs, errors.New("edge daemon: did not stop"))
		}
	}
	if s.link != nil {
		s.link.close()
	}
	if s.gitSrv != nil {
		s.gitSrv.stop()
	}
	if s.cloud != nil {
		if err := s.cloud.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.logFile != nil {
		if err := s.logFile.Close(); err != nil {
			errs = append(errs, fmt.Errorf("log file: %w", err))
		}
	}
	if s.dir != "" && s.o.Dir == "" {
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", s.dir, err))
		}
	}
	return errors.Join(errs...)
}
