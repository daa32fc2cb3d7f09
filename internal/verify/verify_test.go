package verify_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/apiauth"
	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/edge"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/testutil/edged"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/verify"
)

// edgeSite is a running `ballast edge` daemon in process, with a real
// upstream git server and a real upstream registry.
type edgeSite struct {
	t        testing.TB
	d        *edge.Daemon
	cfg      *config.Config
	repo     *gitserver.Repo
	up       *regserver.Server
	url      string
	mirror   string // http://127.0.0.1:port
	registry string // 127.0.0.1:port
	// gitDeps are recorded in the bundles release makes.
	gitDeps []bundle.GitDep
}

func startEdge(t testing.TB, mutate ...func(*config.Config)) *edgeSite {
	t.Helper()
	gitserver.RequireGit(t)
	git := gitserver.New(t)
	s := &edgeSite{t: t, up: regserver.Start(t, regserver.Options{})}
	s.repo = git.CreateRepo(t, "fleet/apps")
	s.url = git.URL("fleet/apps")
	s.repo.Commit("main", map[string]string{"README": "start"})
	s.cfg = &config.Config{
		DataDir: t.TempDir(),
		Listen:  config.Listen{HTTP: "127.0.0.1:0", Registry: "127.0.0.1:0"},
		Repositories: []config.Repository{{URL: s.url, Bundles: s.up.Repo("fleet/apps-bundles"), Track: []string{"refs/heads/main"},
			KeepRevisions: 5, PollInterval: config.Duration{Duration: time.Second}}},
		UpstreamRegistries: map[string]config.UpstreamRegistry{s.up.Addr: {Insecure: true}},
	}
	for _, f := range mutate {
		f(s.cfg)
	}
	ed := edged.Start(t, s.cfg)
	s.d = ed.Daemon
	s.mirror = ed.URL
	s.registry = ed.Registry
	return s
}

// release commits upstream and pushes a bundle for the commit with the
// given images, as CI does.
func (s *edgeSite) release(images map[string]v1.Image) string {
	s.t.Helper()
	sha := s.repo.Commit("main", map[string]string{"rev": fmt.Sprint(time.Now().UnixNano())})
	b := bundle.Bundle{Revision: sha, Created: time.Now(), GitDeps: s.gitDeps}
	for ref, img := range images {
		r, _ := imageref.Parse(ref)
		d, _ := img.Digest()
		size, _ := img.Size()
		mt, _ := img.MediaType()
		dst, _ := name.NewDigest(s.up.Repo("fleet/apps-bundles")+"@"+d.String(), name.Insecure)
		if err := remote.Write(dst, img); err != nil {
			s.t.Fatal(err)
		}
		b.Images = append(b.Images, bundle.Image{Ref: r, Descriptor: v1.Descriptor{MediaType: mt, Size: size, Digest: d}})
	}
	raw, desc, err := bundle.Build(b)
	if err != nil {
		s.t.Fatal(err)
	}
	tag, _ := name.NewTag(s.up.Repo("fleet/apps-bundles")+":"+sha, name.Insecure)
	if err := remote.Put(tag, rawManifest{raw, desc.MediaType}); err != nil {
		s.t.Fatal(err)
	}
	return sha
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// waitSynced waits until the daemon's sync reports sha complete.
func (s *edgeSite) waitSynced(sha string) {
	s.t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range s.d.Sync.Status().Repos {
			for _, rv := range r.Revisions {
				if rv.Revision == sha && rv.State == syncer.StateComplete {
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("revision %s not synced in time: %+v", sha, s.d.Sync.Status())
}

func (s *edgeSite) verify(sha string, mutate ...func(*verify.Options)) *verify.Result {
	s.t.Helper()
	tok, err := apiauth.ReadFile(s.cfg.APITokenFile())
	if err != nil {
		s.t.Fatal(err)
	}
	o := verify.Options{RepoURL: s.url, Revision: sha, MirrorURL: s.mirror, Registry: s.registry, Report: true, Token: tok}
	for _, f := range mutate {
		f(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := verify.Run(ctx, o)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

func TestVerify(t *testing.T) {
	s := startEdge(t)
	app1 := testimage.Image(t, "linux/amd64", 2, 64<<10)
	rev1 := s.release(map[string]v1.Image{"ghcr.io/org/app:stable": app1, "docker.io/library/redis:7": testimage.Image(t, "linux/amd64", 1, 32<<10)})
	s.waitSynced(rev1)

	if r := s.verify(rev1); !r.Ready || r.Images != 2 || r.Blobs != 5 {
		t.Fatalf("rev1: %+v", r)
	}

	t.Run("commit absent", func(t *testing.T) {
		r := s.verify(strings.Repeat("ab", 20))
		if r.Ready || r.CommitPresent || !strings.Contains(r.Reason, "not in the git mirror") {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("repo not configured", func(t *testing.T) {
		// The usual mistake: the mirror URL where the upstream URL belongs.
		r := s.verify(rev1, func(o *verify.Options) { o.RepoURL = o.MirrorURL + "/git/example.com/other/apps.git" })
		if r.Ready || !strings.Contains(r.Reason, "has no repository") || !strings.Contains(r.Reason, "repositories[].url") {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("registry down", func(t *testing.T) {
		r := s.verify(rev1, func(o *verify.Options) { o.Registry = closedAddr(t) })
		if r.Ready || !strings.Contains(r.Reason, "registry unreachable") {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("mirror down", func(t *testing.T) {
		start := time.Now()
		r := s.verify(rev1, func(o *verify.Options) { o.MirrorURL = "http://" + closedAddr(t) })
		if r.Ready || !strings.Contains(r.Reason, "mirror unreachable") || time.Since(start) > 10*time.Second {
			t.Fatalf("%+v", r)
		}
	})

	// A mutable tag moves with a newer revision; rollback needs --activate.
	app2 := testimage.Image(t, "linux/amd64", 2, 64<<10)
	rev2 := s.release(map[string]v1.Image{"ghcr.io/org/app:stable": app2})
	s.waitSynced(rev2)
	if r := s.verify(rev2, func(o *verify.Options) { o.Activate = true }); !r.Ready {
		t.Fatalf("rev2 with --activate: %+v", r)
	}
	r := s.verify(rev1)
	if r.Ready || !strings.Contains(r.Reason, "--activate") || r.Missing[0].What != "tag" {
		t.Fatalf("rollback without --activate: %+v", r)
	}
	// Without the daemon's API token nobody moves the tags back.
	for name, tok := range map[string]string{"no token": "", "wrong token": strings.Repeat("f", 64)} {
		r := s.verify(rev1, func(o *verify.Options) {
			o.Activate = true
			o.Token, _ = apiauth.Parse([]byte(tok))
		})
		if r.Ready || r.Activated || !strings.Contains(r.Reason, "401") {
			t.Fatalf("rollback with --activate and %s: %+v", name, r)
		}
	}
	if r := s.verify(rev1, func(o *verify.Options) { o.Activate = true }); !r.Ready || !r.Activated {
		t.Fatalf("rollback with --activate: %+v", r)
	}
	// The tag now serves rev1's image to a client pulling by tag.
	ref, _ := name.NewTag(s.registry+"/ghcr.io/org/app:stable", name.Insecure)
	got, err := remote.Head(ref)
	want, _ := app1.Digest()
	if err != nil || got.Digest != want {
		t.Fatalf("tag after rollback: %v %v, want %s", got, err, want)
	}

	// One blob deleted from storage: not ready, naming it.
	layers, _ := app1.Layers()
	ld, _ := layers[1].Digest()
	blob := filepath.Join(s.cfg.DataDir, "registry/docker/registry/v2/blobs/sha256", ld.Hex[:2], ld.Hex)
	if err := os.RemoveAll(blob); err != nil {
		t.Fatal(err)
	}
	r = s.verify(rev1)
	if r.Ready || len(r.Missing) != 1 || r.Missing[0].Digest != ld.String() || !strings.Contains(r.Reason, ld.String()) {
		t.Fatalf("deleted blob: %+v", r)
	}

	// The daemon shows what the gate decided.
	vs := s.d.Verifications()
	if len(vs) < 5 || vs[0].Allowed || vs[0].Revision != rev1 {
		t.Fatalf("verifications on the status page: %+v", vs)
	}
}

func TestVerifyDeepFindsCorruptBlob(t *testing.T) {
	s := startEdge(t)
	img := testimage.Image(t, "linux/amd64", 1, 64<<10)
	rev := s.release(map[string]v1.Image{"ghcr.io/org/app:1": img})
	s.waitSynced(rev)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	p := filepath.Join(s.cfg.DataDir, "registry/docker/registry/v2/blobs/sha256", ld.Hex[:2], ld.Hex, "data")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[10] ^= 0xff // same size, different bytes: HEAD cannot tell
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := s.verify(rev); !r.Ready {
		t.Fatalf("shallow verify trusts sync's digests: %+v", r)
	}
	r := s.verify(rev, func(o *verify.Options) { o.Deep = true })
	if r.Ready || len(r.Missing) != 1 || !strings.Contains(r.Missing[0].Detail, "hashes to") {
		t.Fatalf("deep verify: %+v", r)
	}
}

func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}
