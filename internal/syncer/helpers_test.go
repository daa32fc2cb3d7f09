package syncer_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/registry"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
)

// artifact is an image or an index to put in a bundle.
type artifact interface {
	Digest() (v1.Hash, error)
	MediaType() (types.MediaType, error)
	Size() (int64, error)
}

// pushBundle pushes each image into bundles repository repo of the upstream
// registry by digest and then the bundle index tagged with sha, as
// `ballast bundle` lays them out.
func pushBundle(t testing.TB, up *regserver.Server, repo, sha string, images map[string]artifact) v1.Descriptor {
	t.Helper()
	b := bundle.Bundle{Revision: sha, Created: time.Now()}
	for ref, a := range images {
		r, err := imageref.Parse(ref)
		if err != nil {
			t.Fatal(err)
		}
		d, err := a.Digest()
		if err != nil {
			t.Fatal(err)
		}
		mt, _ := a.MediaType()
		size, _ := a.Size()
		dst, err := name.NewDigest(up.Repo(repo)+"@"+d.String(), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		switch x := a.(type) {
		case v1.ImageIndex:
			err = remote.WriteIndex(dst, x)
		case v1.Image:
			err = remote.Write(dst, x)
		}
		if err != nil {
			t.Fatal(err)
		}
		desc := v1.Descriptor{MediaType: mt, Size: size, Digest: d}
		b.Images = append(b.Images, bundle.Image{Ref: r, Descriptor: desc, Blobs: blobHints(t, up, repo, desc)})
	}
	raw, desc, err := bundle.Build(b)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(up.Repo(repo)+":"+sha, name.Insecure)
	if err := remote.Put(tag, rawManifest{raw, desc.MediaType}); err != nil {
		t.Fatal(err)
	}
	return desc
}

// blobHints are the blob hints `ballast bundle` writes for root, as
// pushed to repo (none if it cannot be walked there).
func blobHints(t testing.TB, up *regserver.Server, repo string, root v1.Descriptor) []bundle.BlobHint {
	src, err := registryclient.New(up.Repo(repo), registryclient.WithInsecure(true))
	if err != nil {
		t.Fatal(err)
	}
	var nodes []oci.Node
	if err := oci.Walk(context.Background(), src, root, nil, func(n oci.Node) error {
		nodes = append(nodes, n)
		return nil
	}); err != nil {
		t.Logf("no blob hints for %s: %v", root.Digest, err)
		return nil
	}
	return bundle.HintsFromWalk(nodes)
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// site is an edge: a real git mirror of an upstream served by git
// http-backend, the embedded registry on a data dir, and a Syncer.
type site struct {
	t       testing.TB
	cfg     *config.Config
	git     *gitserver.Server
	repo    *gitserver.Repo
	up      *regserver.Server
	mirror  *gitmirror.Mirror
	reg     *registry.Registry
	sync    *syncer.Syncer
	opts    syncer.Options
	repoID  string
	bundles string // upstream bundles repository name, without registry
}

func newSite(t testing.TB, mutate func(*config.Config), opts ...func(*syncer.Options)) *site {
	t.Helper()
	gitserver.RequireGit(t)
	s := &site{t: t, git: gitserver.New(t), up: regserver.Start(t, regserver.Options{}), bundles: "fleet/apps-bundles"}
	s.repo = s.git.CreateRepo(t, "fleet/apps")
	s.repoID, _ = imageref.RepoID(s.git.URL("fleet/apps"))
	dataDir := t.TempDir()
	s.cfg = &config.Config{
		DataDir: dataDir,
		Repositories: []config.Repository{{
			URL: s.git.URL("fleet/apps"), Bundles: s.up.Repo(s.bundles), Track: []string{"refs/heads/main"}, KeepRevisions: 1,
			PollInterval: config.Duration{Duration: time.Hour},
		}},
		UpstreamRegistries: map[string]config.UpstreamRegistry{s.up.Addr: {Insecure: true}},
		Platforms:          []string{"linux/amd64"},
	}
	if mutate != nil {
		mutate(s.cfg)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var gated []string
	if s.cfg.Repositories[0].Gate {
		gated = s.cfg.Repositories[0].Track
	}
	ups := []gitmirror.Upstream{{URL: s.cfg.Repositories[0].URL, PollInterval: time.Hour, Gated: gated}}
	for _, r := range s.cfg.Repositories[1:] {
		ups = append(ups, gitmirror.Upstream{URL: r.URL, PollInterval: time.Hour})
	}
	m, err := gitmirror.New(gitmirror.Options{DataDir: dataDir, Upstreams: ups, Logger: log, CloneWait: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	s.mirror = m
	reg, err := registry.New(context.Background(), registry.Options{DataDir: dataDir, CredentialsFile: s.cfg.CredentialsFile(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	s.reg = reg
	o := syncer.Options{Config: s.cfg, Mirror: m, Local: reg, Logger: log,
		Collector: syncer.CollectorFunc(func(ctx context.Context) error { return reg.GarbageCollect(ctx, registry.GCOptions{}) })}
	for _, f := range opts {
		f(&o)
	}
	sy, err := syncer.New(o)
	if err != nil {
		t.Fatal(err)
	}
	s.sync, s.opts = sy, o
	return s
}

// restart replaces the Syncer with a new one on the same data dir, mirror
// and registry, as a new process would have: nothing remembered in memory.
func (s *site) restart() {
	s.t.Helper()
	sy, err := syncer.New(s.opts)
	if err != nil {
		s.t.Fatal(err)
	}
	s.sync = sy
}

// commit adds a commit upstream and makes the mirror fetch it.
func (s *site) commit(files map[string]string) string {
	s.t.Helper()
	sha := s.repo.Commit("main", files)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.mirror.Poll(ctx, s.repoID); err != nil {
		s.t.Fatalf("mirror poll: %v", err)
	}
	return sha
}

func (s *site) pass() syncer.PassResult {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := s.sync.Pass(ctx)
	if err != nil {
		s.t.Fatalf("pass: %v (result %+v)", err, res)
	}
	return res
}

func (s *site) check(sha string) *bundle.Report {
	s.t.Helper()
	rep, err := s.sync.Check(context.Background(), s.cfg.Repositories[0].URL, sha)
	if err != nil {
		s.t.Fatal(err)
	}
	return rep
}

func appendLayer(img v1.Image, l v1.Layer) (v1.Image, error) {
	return mutate.AppendLayers(img, l)
}
