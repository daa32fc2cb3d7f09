package edge_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	gogitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/edge"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/logging"
	"github.com/ballast-dev/ballast/internal/site"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/testutil/toxiproxy"
)

// gatedSite is an edge daemon with one gated repository (fleet/apps) and
// one plain one (fleet/plain), real upstream git and registry, and a
// toxiproxy between sync and the upstream registry.
type gatedSite struct {
	t       *testing.T
	git     *gitserver.Server
	apps    *gitserver.Repo
	plain   *gitserver.Repo
	up      *regserver.Server
	proxy   *toxiproxy.Proxy
	cfg     *config.Config
	d       *edge.Daemon
	stop    func()
	base    string // http://edge
	appsID  string
	plainID string
}

func startGatedSite(t *testing.T) *gatedSite {
	t.Helper()
	gitserver.RequireGit(t)
	s := &gatedSite{t: t, git: gitserver.New(t), up: regserver.Start(t, regserver.Options{})}
	s.proxy = toxiproxy.Start(t, s.up.Addr)
	s.apps = s.git.CreateRepo(t, "fleet/apps")
	s.plain = s.git.CreateRepo(t, "fleet/plain")
	s.appsID, _ = imageref.RepoID(s.git.URL("fleet/apps"))
	s.plainID, _ = imageref.RepoID(s.git.URL("fleet/plain"))
	s.cfg = &config.Config{
		DataDir: t.TempDir(),
		Listen:  config.Listen{HTTP: "127.0.0.1:0", Registry: "127.0.0.1:0"},
		Repositories: []config.Repository{
			{URL: s.git.URL("fleet/apps"), Bundles: s.proxy.Addr + "/fleet/apps-bundles", Track: []string{"refs/heads/main"},
				KeepRevisions: 2, Gate: true, PollInterval: config.Duration{Duration: time.Second}},
			{URL: s.git.URL("fleet/plain"), Track: []string{"refs/heads/main"}, PollInterval: config.Duration{Duration: time.Second}},
		},
		UpstreamRegistries: map[string]config.UpstreamRegistry{s.proxy.Addr: {Insecure: true}},
	}
	if err := s.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// start runs a daemon on the site's data dir and waits until it is ready.
func (s *gatedSite) start() {
	s.t.Helper()
	d, err := edge.New(s.cfg, logging.Discard())
	if err != nil {
		s.t.Fatal(err)
	}
	s.d = d
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			s.t.Errorf("daemon: %v", err)
		}
	}
	s.t.Cleanup(s.stop)
	select {
	case <-d.Started():
	case err := <-done:
		s.t.Fatal(err)
	}
	s.base = "http://" + d.Addr("http").String()
	s.waitFor("/readyz", func() bool {
		resp, err := http.Get(s.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func (s *gatedSite) mirrorURL(id string) string { return s.base + "/git/" + id + ".git" }

// pushBundle pushes a bundle for sha with one image of the given layer
// size to the upstream registry, as CI does.
func (s *gatedSite) pushBundle(sha string, layerSize int64) {
	s.t.Helper()
	s.pushBundleDeps(sha, layerSize, nil)
}

// pushBundleDeps is pushBundle with git dependencies recorded in the
// bundle index.
func (s *gatedSite) pushBundleDeps(sha string, layerSize int64, deps []bundle.GitDep) {
	s.t.Helper()
	img := testimage.Image(s.t, "linux/amd64", 1, layerSize)
	b := bundle.Bundle{Revision: sha, Created: time.Now(), GitDeps: deps}
	r, _ := imageref.Parse(fmt.Sprintf("ghcr.io/org/app:%s", sha[:12]))
	d, _ := img.Digest()
	size, _ := img.Size()
	mt, _ := img.MediaType()
	dst, _ := name.NewDigest(s.up.Repo("fleet/apps-bundles")+"@"+d.String(), name.Insecure)
	if err := remote.Write(dst, img); err != nil {
		s.t.Fatal(err)
	}
	b.Images = append(b.Images, bundle.Image{Ref: r, Descriptor: v1.Descriptor{MediaType: mt, Size: size, Digest: d}})
	raw, desc, err := bundle.Build(b)
	if err != nil {
		s.t.Fatal(err)
	}
	tag, _ := name.NewTag(s.up.Repo("fleet/apps-bundles")+":"+sha, name.Insecure)
	if err := remote.Put(tag, gateManifest{raw, desc.MediaType}); err != nil {
		s.t.Fatal(err)
	}
}

type gateManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m gateManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m gateManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

func (s *gatedSite) waitFor(what string, cond func() bool) {
	s.t.Helper()
	start := time.Now()
	defer func() { s.t.Logf("waited %v for %s", time.Since(start).Round(time.Millisecond), what) }()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s; status: %+v", what, s.d.Status().Repos)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// state is sync's state of revision sha of the gated repository.
func (s *gatedSite) state(sha string) string {
	for _, r := range s.d.Sync.Status().Repos {
		for _, rv := range r.Revisions {
			if r.Repo == s.appsID && rv.Revision == sha {
				return rv.State
			}
		}
	}
	return ""
}

// tracked is the status API's view of the gated repository's main.
func (s *gatedSite) tracked() edge.TrackedRef {
	for _, r := range s.d.Status().Repos {
		if r.ID == s.appsID && len(r.Tracked) == 1 {
			return r.Tracked[0]
		}
	}
	return edge.TrackedRef{}
}

// goGitRefs lists refs as Argo CD resolves them: go-git, protocol v0.
func goGitRefs(t testing.TB, url string) map[string]string {
	t.Helper()
	rem := gogit.NewRemote(memory.NewStorage(), &gogitconfig.RemoteConfig{Name: "origin", URLs: []string{url}})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	refs, err := rem.ListContext(ctx, &gogit.ListOptions{})
	if err != nil {
		t.Fatalf("go-git ls-remote: %v", err)
	}
	got := map[string]string{}
	for _, ref := range refs {
		if ref.Type() == plumbing.SymbolicReference {
			got[ref.Name().String()] = "-> " + ref.Target().String()
		} else {
			got[ref.Name().String()] = ref.Hash().String()
		}
	}
	return got
}

// cliRefs lists refs with the git CLI, protocol v2.
func cliRefs(t testing.TB, url string) map[string]string {
	t.Helper()
	got := map[string]string{}
	out := gitserver.Git(t, "", "-c", "protocol.version=2", "ls-remote", "--symref", url)
	for _, line := range strings.Split(out, "\n") {
		left, ref, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		if target, sym := strings.CutPrefix(left, "ref: "); sym {
			got[ref] = "-> " + target
		} else if ref != "HEAD" {
			got[ref] = left
		}
	}
	return got
}

// assertAdvertised checks main of the gated repository through go-git and
// the git CLI ("" = not advertised).
func (s *gatedSite) assertAdvertised(when, want string) {
	s.t.Helper()
	for client, refs := range map[string]map[string]string{
		"go-git v0": goGitRefs(s.t, s.mirrorURL(s.appsID)),
		"git v2":    cliRefs(s.t, s.mirrorURL(s.appsID)),
	} {
		if got := refs["refs/heads/main"]; got != want {
			s.t.Errorf("%s: %s advertises main at %q, want %q", when, client, got, want)
		}
		if want != "" && refs["HEAD"] != "-> refs/heads/main" {
			s.t.Errorf("%s: %s: HEAD = %q, want the symref to main", when, client, refs["HEAD"])
		}
		for k := range refs {
			if strings.HasPrefix(k, "refs/ballast/") {
				s.t.Errorf("%s: %s: hidden ref %s advertised", when, client, k)
			}
		}
	}
	if tr := s.tracked(); tr.Ready != want || !tr.Gated {
		s.t.Errorf("%s: status %+v, want ready %q", when, tr, want)
	}
}

// waitAdvertised waits until the git CLI sees main at want (go-git calls
// a repository that advertises nothing empty, an error).
func (s *gatedSite) waitAdvertised(want string) {
	s.t.Helper()
	s.waitFor("main advertised at "+want, func() bool { return cliRefs(s.t, s.mirrorURL(s.appsID))["refs/heads/main"] == want })
}

func TestGatedRefs(t *testing.T) {
	s := startGatedSite(t)
	revA := s.apps.Commit("main", map[string]string{"app": "a"})
	s.apps.Commit("feature", map[string]string{"f": "1"})
	s.pushBundle(revA, 32<<10)
	plainTip := s.plain.Commit("main", map[string]string{"x": "1"})
	s.start()

	s.waitAdvertised(revA)
	s.assertAdvertised("A complete", revA)
	if got := cliRefs(t, s.mirrorURL(s.appsID))["refs/heads/feature"]; got != s.apps.Rev("feature") {
		t.Errorf("untracked branch feature = %q, want the upstream tip", got)
	}

	// B has no bundle: main stays at A, the status shows both.
	revB := s.apps.Commit("main", map[string]string{"app": "b"})
	s.waitFor("B without bundle", func() bool { return s.state(revB) == syncer.StateNoBundle })
	s.assertAdvertised("B has no bundle", revA)
	if tr := s.tracked(); tr.UpstreamTip != revB {
		t.Errorf("status upstream tip %s, want %s", tr.UpstreamTip, revB)
	}
	// What Argo CD runs: a fetch gets A; B is still fetchable by SHA.
	c := filepath.Join(t.TempDir(), "c")
	gitserver.Git(t, "", "clone", "--quiet", s.mirrorURL(s.appsID), c)
	gitserver.Git(t, c, "fetch", "origin", "--tags", "--force", "--prune")
	if got := gitserver.Git(t, c, "rev-parse", "origin/main"); got != revA {
		t.Errorf("fetched origin/main = %s, want %s", got, revA)
	}
	for _, v := range []string{"0", "2"} {
		gitserver.Git(t, c, "-c", "protocol.version="+v, "fetch", "--quiet", "origin", revB)
	}

	// B's bundle lands over a slow link: main stays at A while it syncs.
	s.proxy.Add("slow", "bandwidth", `{"rate":32}`) // KB/s
	s.pushBundle(revB, 2<<20)
	s.waitFor("B syncing", func() bool { return s.state(revB) == syncer.StateSyncing })
	s.assertAdvertised("B syncing", revA)
	s.proxy.Remove("slow")
	s.waitAdvertised(revB)
	s.assertAdvertised("B complete", revB)
	gitserver.Git(t, c, "fetch", "origin", "--tags", "--force", "--prune")
	if got := gitserver.Git(t, c, "rev-parse", "origin/main"); got != revB {
		t.Errorf("fetched origin/main = %s, want %s", got, revB)
	}

	// A plain repository is served as fetched, bundle or not.
	if got := goGitRefs(t, s.mirrorURL(s.plainID))["refs/heads/main"]; got != plainTip {
		t.Errorf("plain repository: main = %q, want the upstream tip %s", got, plainTip)
	}
	plainTip = s.plain.Commit("main", map[string]string{"x": "2"})
	s.waitFor("plain repository follows upstream", func() bool {
		return cliRefs(t, s.mirrorURL(s.plainID))["refs/heads/main"] == plainTip
	})

	// Upstream moves to C (no bundle); the daemon restarts with the
	// upstream gone: main is B before and after the recompute.
	revC := s.apps.Commit("main", map[string]string{"app": "c"})
	s.waitFor("C seen", func() bool { return s.tracked().UpstreamTip == revC })
	s.stop()
	s.git.Stop()
	s.start()
	s.assertAdvertised("after restart, upstream offline", revB)
	if tr := s.tracked(); tr.UpstreamTip != revC {
		t.Errorf("after restart: upstream tip %s, want %s", tr.UpstreamTip, revC)
	}
	// C's bundle arrives (say, by the registry link alone): main moves.
	s.pushBundle(revC, 32<<10)
	s.waitAdvertised(revC)
	s.assertAdvertised("C complete", revC)
}

// restartAdvertising stops the daemon, leaves main advertised at rev in
// the mirror (as an earlier gate would have: a data dir from before a
// check the gate makes now) and starts the daemon again.
func (s *gatedSite) restartAdvertising(rev string) {
	s.t.Helper()
	s.stop()
	st, err := site.Open(context.Background(), s.cfg, site.Options{})
	if err != nil {
		s.t.Fatal(err)
	}
	if err := st.Mirror.SetReady(context.Background(), s.cfg.Repositories[0].URL, "refs/heads/main", rev); err != nil {
		s.t.Fatal(err)
	}
	st.Close()
	s.start()
}

// remoteBase starts an upstream git server holding org/lib with one commit
// and returns it with the git dependency a bundle records for a remote
// base at that commit.
func remoteBase(t *testing.T) (*gitserver.Server, []bundle.GitDep) {
	t.Helper()
	srv := gitserver.New(t)
	lib := srv.CreateRepo(t, "org/lib")
	rev := lib.Commit("main", map[string]string{"deploy/kustomization.yaml": "resources: []\n"})
	return srv, []bundle.GitDep{{Kind: bundle.GitDepRemoteBase, URL: srv.URL("org/lib"), Commit: rev, Path: "deploy"}}
}

// A revision whose bundle is complete but whose git dependency (a remote
// base's commit) the mirror cannot fetch yet is not advertised: Argo CD
// would render it without its base. Once the mirror has the commit, the
// gate advertises the revision without waiting for another sync pass.
func TestGateWaitsForGitDeps(t *testing.T) {
	s := startGatedSite(t)
	libSrv, base := remoteBase(t)
	revA := s.apps.Commit("main", map[string]string{"app": "a"})
	s.pushBundleDeps(revA, 32<<10, base)
	libSrv.Stop()
	s.start()

	s.waitFor("A complete", func() bool { return s.state(revA) == syncer.StateComplete })
	s.waitFor("the dependency fetch failed", func() bool {
		for _, d := range s.d.Mirror.GitDeps() {
			if len(d.Missing) > 0 && d.LastError != "" {
				return true
			}
		}
		return false
	})
	// Nothing is advertised (go-git calls such a repository empty).
	if got := cliRefs(t, s.mirrorURL(s.appsID))["refs/heads/main"]; got != "" {
		t.Errorf("main advertised at %s while its remote base is not in the mirror", got)
	}
	if tr := s.tracked(); tr.Ready != "" || tr.UpstreamTip != revA {
		t.Errorf("status %+v, want nothing ready and upstream at %s", tr, revA)
	}

	libSrv.Start(t)
	if err := s.d.Mirror.SyncGitDeps(context.Background()); err != nil {
		t.Fatalf("dependency pass: %v", err)
	}
	s.waitAdvertised(revA)
	s.assertAdvertised("A and its remote base on site", revA)
}

// The advertised revision stays on its complete bundle even when its git
// dependency is not in the mirror (a data dir from before the gate
// checked them): the gate does not pass it over for an older revision
// without dependencies, which would roll the application back.
func TestGateKeepsAdvertisedRevisionWithoutItsDeps(t *testing.T) {
	s := startGatedSite(t)
	libSrv, base := remoteBase(t)
	rev0 := s.apps.Commit("main", map[string]string{"app": "0"})
	s.pushBundle(rev0, 32<<10)
	revA := s.apps.Commit("main", map[string]string{"app": "a"})
	s.pushBundleDeps(revA, 32<<10, base)
	libSrv.Stop()
	s.start()
	s.waitFor("A complete", func() bool { return s.state(revA) == syncer.StateComplete })
	s.waitAdvertised(rev0)

	s.restartAdvertising(revA)                   // what an earlier gate left
	s.d.Mirror.SyncGitDeps(context.Background()) // the upstream of lib is still down
	s.waitFor("a sync pass over A", func() bool { return s.state(revA) == syncer.StateComplete })
	time.Sleep(500 * time.Millisecond) // recomputes after the pass
	s.assertAdvertised("A advertised before, its remote base not in the mirror", revA)
}
