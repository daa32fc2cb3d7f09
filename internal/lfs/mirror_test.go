package lfs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/lfs"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/lfsserver"
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
)

// site is an upstream (git http-backend + lfs-test-server) and an edge
// mirror of it: the git mirror and the LFS store, served as the edge
// daemon routes them.
type site struct {
	t       testing.TB
	lfsURL  string // the LFS endpoint .lfsconfig names
	git     *gitserver.Server
	lfsUp   *lfsserver.Server
	repo    *gitserver.Repo
	url     string
	id      string
	dataDir string
	gm      *gitmirror.Mirror
	lm      *lfs.Mirror
	srv     *httptest.Server
	reg     *prometheus.Registry
	cancel  context.CancelFunc
	opts    func(*lfs.Options) // adjusts the LFS mirror's options in start
	gated   []string           // the repository's gated branches (gitmirror.Upstream.Gated)
}

// metric returns the value of an LFS gauge for the site's repository.
func (s *site) metric(name string) float64 {
	s.t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		s.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == s.id {
				return m.GetGauge().GetValue()
			}
		}
	}
	s.t.Fatalf("metric %s{repo=%q} not found", name, s.id)
	return 0
}

const lfsRepo = "fleet/apps"

func newSite(t testing.TB) *site {
	t.Helper()
	realtest.LookPath(t, "git-lfs", "apt-get install git-lfs")
	s := &site{t: t, git: gitserver.New(t), lfsUp: lfsserver.New(t), dataDir: t.TempDir()}
	s.repo = s.git.CreateRepo(t, "apps")
	s.url = s.git.URL("apps")
	s.id = strings.TrimSuffix(strings.TrimPrefix(s.url, "http://"), ".git")
	s.lfsURL = s.lfsUp.URL(lfsRepo)
	return s
}

// lfsConfig is the .lfsconfig that sends LFS to the separate LFS server.
func (s *site) lfsConfig() string {
	return "[lfs]\n\turl = " + s.lfsURL + "\n"
}

// commitLFS commits files, storing those in lfsFiles in LFS (uploaded to
// the LFS server, a pointer committed).
func (s *site) commitLFS(plain map[string]string, lfsFiles map[string]string) string {
	files := map[string]string{".lfsconfig": s.lfsConfig(), ".gitattributes": "*.yaml filter=lfs diff=lfs merge=lfs -text\n"}
	for k, v := range plain {
		files[k] = v
	}
	for path, content := range lfsFiles {
		obj := s.lfsUp.Upload(s.t, lfsRepo, []byte(content))
		files[path] = obj.Pointer()
	}
	return s.repo.Commit("main", files)
}

func (s *site) start(keep int) {
	t := s.t
	t.Helper()
	gm, err := gitmirror.New(gitmirror.Options{DataDir: s.dataDir, CloneWait: 20 * time.Second,
		Upstreams: []gitmirror.Upstream{{URL: s.url, PollInterval: time.Hour, Gated: s.gated}}})
	if err != nil {
		t.Fatal(err)
	}
	s.reg = prometheus.NewRegistry()
	o := lfs.Options{DataDir: s.dataDir, Git: gm, Metrics: s.reg,
		Repos: []lfs.Repo{{URL: s.url}}}
	if s.opts != nil {
		s.opts(&o)
	}
	lm, err := lfs.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := gm.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lm.Open(); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/git/", lm.Wrap(gm.GitHandler()))
	mux.Handle("/api/v1/lfs", lm.APIHandler())
	mux.Handle("/api/v1/lfs/", lm.APIHandler())
	s.gm, s.lm, s.cancel = gm, lm, cancel
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.stop)
}

func (s *site) stop() {
	if s.srv != nil {
		s.srv.Close()
		s.cancel()
		s.srv = nil
	}
}

// poll fetches git, then LFS, and returns the LFS pass's error.
func (s *site) poll() error {
	s.t.Helper()
	ctx := context.Background()
	if err := s.gm.Poll(ctx, s.url); err != nil {
		s.t.Fatalf("git poll: %v", err)
	}
	return s.lm.Pass(ctx, s.url)
}

// advertise has the gated repository's main advertised at rev, as the
// edge's gate does.
func (s *site) advertise(rev string) {
	s.t.Helper()
	if err := s.gm.SetReady(context.Background(), s.url, "refs/heads/main", rev); err != nil {
		s.t.Fatal(err)
	}
}

// pollAdvertising fetches git (the gated branch's upstream tip into the
// hidden namespace) and has main advertised at rev.
func (s *site) pollAdvertising(rev string) {
	s.t.Helper()
	if err := s.gm.Poll(context.Background(), s.url); err != nil {
		s.t.Fatalf("git poll: %v", err)
	}
	s.advertise(rev)
}

func (s *site) mirrorURL() string { return s.srv.URL + "/git/" + s.id + ".git" }

func (s *site) report(sha string) lfs.RevisionReport {
	s.t.Helper()
	resp, err := http.Get(s.srv.URL + "/api/v1/lfs/" + s.id + "/commits/" + sha)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("revision report: %s: %s", resp.Status, b)
	}
	var rep lfs.RevisionReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		s.t.Fatal(err)
	}
	return rep
}

// clientGit runs git (with git-lfs) as a client would, with a clean
// configuration; it returns combined output and error.
func clientGit(t testing.TB, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(gitserver.Env(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestCloneAndLFSPullFromMirrorWithUpstreamsStopped(t *testing.T) {
	s := newSite(t)
	manifest := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-lfs\ndata:\n  big: \"" + strings.Repeat("x", 4096) + "\"\n"
	sha := s.commitLFS(map[string]string{"README": "plain\n"}, map[string]string{"deploy/cm.yaml": manifest})
	s.start(2)
	if err := s.poll(); err != nil {
		t.Fatalf("LFS pass: %v", err)
	}
	if rep := s.report(sha); !rep.Complete || rep.Objects != 1 || rep.Bytes != int64(len(manifest)) {
		t.Fatalf("revision report %+v, want complete with 1 object of %d bytes", rep, len(manifest))
	}
	if n, b := s.metric("ballast_lfs_objects"), s.metric("ballast_lfs_bytes"); n != 1 || b != float64(len(manifest)) {
		t.Fatalf("metrics: %v objects, %v bytes", n, b)
	}
	// Every upstream gone: git and LFS.
	s.git.Stop()
	s.lfsUp.Stop()

	work := t.TempDir()
	clone := filepath.Join(work, "c")
	// The client's LFS endpoint is the mirror's: the .lfsconfig in the
	// repository names the upstream LFS server, so point lfs.url at the
	// mirror as an operator (or Argo CD's git config) does.
	if out, err := clientGit(t, work, []string{"GIT_LFS_SKIP_SMUDGE=1"}, "clone", "--quiet", s.mirrorURL(), clone); err != nil {
		t.Fatalf("clone from mirror: %v\n%s", err, out)
	}
	// The repository's .lfsconfig names the upstream LFS server: rewrite it
	// to the mirror with url.<base>.insteadOf, as the repo-server's git
	// config does (git-lfs applies url aliases to LFS endpoints).
	if out, err := clientGit(t, clone, nil, "lfs", "install", "--local"); err != nil {
		t.Fatalf("git lfs install: %v\n%s", err, out)
	}
	if out, err := clientGit(t, clone, nil, "-c", "url."+s.mirrorURL()+"/info/lfs.insteadOf="+s.lfsURL, "lfs", "pull"); err != nil {
		t.Fatalf("git lfs pull from mirror: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(clone, "deploy", "cm.yaml"))
	if err != nil || string(got) != manifest {
		t.Fatalf("deploy/cm.yaml after lfs pull: %d bytes (%v), want the %d-byte manifest", len(got), err, len(manifest))
	}
}

func TestObjectMissingUpstream(t *testing.T) {
	s := newSite(t)
	ghost := lfsserver.ObjectOf([]byte("never uploaded\n"))
	sha := s.commitLFS(map[string]string{"deploy/ghost.yaml": ghost.Pointer()}, map[string]string{"deploy/cm.yaml": "kind: ConfigMap\n"})
	s.start(0)
	err := s.poll()
	if err == nil || !strings.Contains(err.Error(), ghost.OID) || !strings.Contains(err.Error(), "deploy/ghost.yaml") {
		t.Fatalf("pass error %v: want one naming object %s and its path", err, ghost.OID)
	}
	if n := s.metric("ballast_lfs_pending_objects"); n != 1 {
		t.Fatalf("pending metric %v, want 1", n)
	}
	rep := s.report(sha)
	if rep.Complete || len(rep.Missing) != 1 || rep.Missing[0].OID != ghost.OID || rep.Missing[0].Path != "deploy/ghost.yaml" {
		t.Fatalf("report %+v: want incomplete, missing the ghost object only", rep)
	}
	if rep.Missing[0].Reason == "" {
		t.Errorf("missing object without a reason")
	}
	// Nothing of it is offered: the batch API answers a per-object 404.
	body := `{"operation":"download","transfers":["basic"],"objects":[{"oid":"` + ghost.OID + `","size":` + itoa(ghost.Size) + `}]}`
	resp, err := http.Post(s.mirrorURL()+"/info/lfs/objects/batch", lfs.MediaType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var br lfs.BatchResponse
	_ = json.NewDecoder(resp.Body).Decode(&br)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(br.Objects) != 1 || br.Objects[0].Error == nil || br.Objects[0].Error.Code != 404 || br.Objects[0].Actions != nil {
		t.Fatalf("batch for a missing object: %d %+v", resp.StatusCode, br)
	}
	if r, _ := http.Get(s.mirrorURL() + "/info/lfs/objects/" + ghost.OID); r == nil || r.StatusCode != 404 {
		t.Fatalf("GET of a missing object: want 404")
	}
}

func TestMalformedPointerMakesRevisionIncomplete(t *testing.T) {
	s := newSite(t)
	bad := "version https://git-lfs.github.com/spec/v1\noid sha256:XYZ\nsize 12\n"
	sha := s.commitLFS(map[string]string{"deploy/bad.yaml": bad}, nil)
	s.start(0)
	if err := s.poll(); err != nil {
		t.Fatalf("pass: %v", err)
	}
	rep := s.report(sha)
	if rep.Complete || len(rep.Malformed) != 1 || rep.Malformed[0].Path != "deploy/bad.yaml" || !strings.Contains(rep.Malformed[0].Error, "oid") {
		t.Fatalf("report %+v: want incomplete with deploy/bad.yaml malformed (oid)", rep)
	}
}

func TestRestartRechecksAndPrunes(t *testing.T) {
	s := newSite(t)
	one := "kind: ConfigMap\nmetadata: {name: one}\n"
	s.commitLFS(nil, map[string]string{"one.yaml": one})
	s.start(0)
	if err := s.poll(); err != nil {
		t.Fatal(err)
	}
	st := s.lm.Status()
	if len(st) != 1 || st[0].Objects != 1 || len(st[0].Pending) != 0 {
		t.Fatalf("status %+v", st)
	}
	s.stop()

	// Restart with the upstreams gone: the object is re-checked, kept and
	// served, not fetched again.
	s.git.Stop()
	s.lfsUp.Stop()
	s.start(0)
	if st := s.lm.Status(); st[0].Objects != 1 {
		t.Fatalf("after restart: %+v", st)
	}
	if err := s.lm.Pass(context.Background(), s.url); err != nil {
		t.Fatalf("pass offline with everything on site: %v", err)
	}
	s.stop()

	// A damaged object is removed at start and fetched again.
	objs, _ := filepath.Glob(filepath.Join(s.dataDir, "lfs", "repos", "*", "objects", "*", "*", "*"))
	if len(objs) != 1 {
		t.Fatalf("objects on disk: %v", objs)
	}
	if err := os.WriteFile(objs[0], []byte("kind: ConfigMap\nmetadata: {name: evil}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// What a fetch killed mid-way leaves in git-lfs's storage is never
	// trusted: cleared at start.
	staging := filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(objs[0])))), "staging")
	if err := os.MkdirAll(filepath.Join(staging, "incomplete"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(staging, "incomplete", "x.part"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.git.Start(t)
	s.lfsUp.Start(t)
	s.start(0)
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Fatalf("staging left after restart: %v", err)
	}
	if st := s.lm.Status(); st[0].Objects != 0 {
		t.Fatalf("damaged object kept: %+v", st)
	}
	if err := s.poll(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(objs[0]); string(got) != one {
		t.Fatalf("refetched object = %q", got)
	}

	// An object no revision points at (left from a history the upstream
	// rewrote and the mirror let go) is pruned by the next pass.
	stray := lfsserver.ObjectOf([]byte("stray\n"))
	strayPath := filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(objs[0]))), stray.OID[0:2], stray.OID[2:4], stray.OID)
	if err := os.MkdirAll(filepath.Dir(strayPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(strayPath, []byte("stray\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.stop()
	s.start(0)
	if st := s.lm.Status(); st[0].Objects != 2 {
		t.Fatalf("valid stray object not re-checked in: %+v", st)
	}
	if err := s.poll(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(strayPath); !os.IsNotExist(err) {
		t.Fatalf("object no revision points at still on disk: %v", err)
	}
	if _, err := os.Stat(objs[0]); err != nil {
		t.Fatalf("object of the history pruned: %v", err)
	}
}

// TestArgoCDFetchAll runs what Argo CD's repo-server runs with enableLfs
// (git fetch, `git lfs fetch --all`, checkout, `git lfs checkout`) against
// the mirror with every upstream stopped: the objects of older revisions
// must be there too, or `git lfs fetch --all` fails.
func TestArgoCDFetchAll(t *testing.T) {
	s := newSite(t)
	s.commitLFS(nil, map[string]string{"deploy/cm.yaml": "kind: ConfigMap\nmetadata: {name: v1}\n"})
	s.commitLFS(nil, map[string]string{"deploy/cm.yaml": "kind: ConfigMap\nmetadata: {name: v2}\n"})
	s.repo.Tag("v1.0", s.repo.Rev("main~1"))
	sha := s.commitLFS(nil, map[string]string{"deploy/cm.yaml": "kind: ConfigMap\nmetadata: {name: v3}\n"})
	s.start(0)
	if err := s.poll(); err != nil {
		t.Fatal(err)
	}
	if st := s.lm.Status(); st[0].Objects != 3 {
		t.Fatalf("objects of the history on site: %+v, want 3", st)
	}
	s.git.Stop()
	s.lfsUp.Stop()
	root := t.TempDir()
	env := []string{"GIT_LFS_SKIP_SMUDGE=1", "HOME=" + t.TempDir()}
	steps := [][]string{
		{"init", "--quiet"},
		{"lfs", "install", "--local"}, // the repo-server image installs git-lfs system-wide
		{"remote", "add", "origin", s.mirrorURL()},
		{"config", "lfs.url", s.mirrorURL() + "/info/lfs"},
		{"fetch", "origin", "--tags", "--force", "--prune"},
		{"lfs", "fetch", "--all"},
		{"checkout", "--force", sha},
		{"lfs", "checkout"},
	}
	for _, args := range steps {
		if out, err := clientGit(t, root, env, args...); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(root, "deploy", "cm.yaml")); !strings.Contains(string(got), "name: v3") {
		t.Fatalf("deploy/cm.yaml = %q", got)
	}
}

func itoa(n int64) string { return strings.TrimSpace(string(bytes.TrimSpace([]byte(jsonNum(n))))) }

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestLFSAPIBadInputAndWrites(t *testing.T) {
	s := newSite(t)
	s.commitLFS(nil, map[string]string{"cm.yaml": "kind: ConfigMap\n"})
	s.start(0)
	if err := s.poll(); err != nil {
		t.Fatal(err)
	}
	oid := lfsserver.ObjectOf([]byte("kind: ConfigMap\n")).OID
	base := s.mirrorURL() + "/info/lfs"
	big := `{"operation":"download","objects":[` + strings.Repeat(" ", lfs.MaxBatchBody) + `]}`
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", base + "/objects/batch", `{"operation":"download","objects":[{"oid":"` + oid + `","size":16}]}`, 200},
		{"POST", base + "/objects/batch", `not json`, 400},
		{"POST", base + "/objects/batch", `{"operation":"download","objects":[{"oid":"../x","size":1}]}`, 422},
		{"POST", base + "/objects/batch", `{"operation":"upload","objects":[{"oid":"` + oid + `","size":16}]}`, 403},
		{"POST", base + "/objects/batch", big, 413},
		{"GET", base + "/objects/batch", "", 405},
		{"GET", base + "/objects/" + oid, "", 200},
		{"PUT", base + "/objects/" + oid, "x", 403},
		{"DELETE", base + "/objects/" + oid, "", 405},
		{"GET", base + "/objects/" + strings.Repeat("0", 64), "", 404},
		{"GET", base + "/objects/nothex", "", 404},
		{"POST", base + "/locks", `{"path":"cm.yaml"}`, 403},
		{"POST", base + "/locks/verify", `{}`, 403},
		{"POST", s.srv.URL + "/git/example.com/unknown.git/info/lfs/objects/batch", `{}`, 404},
	} {
		req, _ := http.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", lfs.MediaType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, resp.StatusCode, b, tc.want)
		}
		if tc.want >= 400 && tc.want != 405 && !strings.Contains(string(b), "message") {
			t.Errorf("%s %s: error body %q without a message", tc.method, tc.path, b)
		}
	}
	// Range reads work (git-lfs resumes interrupted downloads with them).
	req, _ := http.NewRequest("GET", base+"/objects/"+oid, nil)
	req.Header.Set("Range", "bytes=6-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || string(b) != "ConfigMap\n" {
		t.Fatalf("range read: %d %q", resp.StatusCode, b)
	}
}

// TestArgoCDFirstFetch replays Argo CD v3.2.11's repo-server on a
// repository it has never fetched (util/git: fetch, `git lfs ls-files`,
// `git lfs fetch --all` — run whatever ls-files printed: it splits the
// output on newlines and an empty output still gives one element —
// checkout with GIT_LFS_SKIP_SMUDGE=1, `git lfs checkout`, clean), HOME
// pointing nowhere, against the mirror with every upstream stopped, with
// lfs.RepoServerGitConfig as the system config and the .lfsconfig endpoint
// rewritten to the mirror: the checkout holds the real file.
func TestArgoCDFirstFetch(t *testing.T) {
	s := newSite(t)
	want := "kind: ConfigMap\nmetadata: {name: v1}\n"
	sha := s.commitLFS(nil, map[string]string{"deploy/cm.yaml": want})
	s.start(0)
	if err := s.poll(); err != nil {
		t.Fatal(err)
	}
	s.git.Stop()
	s.lfsUp.Stop()
	sys := filepath.Join(t.TempDir(), "gitconfig")
	cfg := lfs.RepoServerGitConfig + "[url \"" + s.mirrorURL() + "/info/lfs\"]\n\tinsteadOf = " + s.lfsURL + "\n"
	if err := os.WriteFile(sys, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	env := []string{"GIT_LFS_SKIP_SMUDGE=1", "HOME=/dev/null", "GIT_CONFIG_SYSTEM=" + sys, "GIT_CONFIG_NOSYSTEM="}
	for _, args := range [][]string{
		{"init", "--quiet"},
		{"remote", "add", "origin", s.mirrorURL()},
		{"fetch", "origin", "--tags", "--force", "--prune"},
		{"lfs", "ls-files", "-n"},
		{"lfs", "fetch", "--all"},
		{"checkout", "--force", sha},
		{"lfs", "checkout"},
		{"clean", "-ffdx"},
	} {
		if out, err := clientGit(t, root, env, args...); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(root, "deploy", "cm.yaml")); string(got) != want {
		t.Fatalf("deploy/cm.yaml after Argo CD's first fetch = %q", got)
	}
}

// A gated repository advertises its branch at a revision that lags the
// upstream (or not at all): the store reads the LFS endpoint from the
// .lfsconfig of the upstream tip, not of what HEAD's branch advertises,
// and tells Options.Fetched once objects arrived.
func TestGatedRepositoryEndpointFromUpstreamTip(t *testing.T) {
	s := newSite(t)
	s.gated = []string{"refs/heads/main"}
	var mu sync.Mutex
	var fetched []string
	s.opts = func(o *lfs.Options) {
		o.Fetched = func(id string) { mu.Lock(); fetched = append(fetched, id); mu.Unlock() }
	}
	rev0 := s.repo.Commit("main", map[string]string{"README": "no LFS yet\n"})
	manifest := "kind: ConfigMap\nmetadata:\n  name: from-lfs\n"
	sha := s.commitLFS(nil, map[string]string{"deploy/cm.yaml": manifest})
	s.start(0)
	ctx := context.Background()
	// main advertised at rev0, whose tree has no .lfsconfig: the endpoint
	// would be <url>.git/info/lfs, which the git server does not serve.
	s.pollAdvertising(rev0)
	if err := s.lm.Pass(ctx, s.url); err != nil {
		t.Fatalf("LFS pass of a gated repository advertising an older revision: %v", err)
	}
	if rep := s.report(sha); !rep.Complete || rep.Objects != 1 {
		t.Fatalf("report of the upstream tip %+v: want its object on site", rep)
	}
	if err := s.lm.Pass(ctx, s.url); err != nil { // nothing arrives
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(fetched) != 1 || fetched[0] != s.id {
		t.Fatalf("Fetched called with %q, want once with %q", fetched, s.id)
	}
}

// In a gated repository, the object of a newer revision the gate still
// holds back (its hidden upstream tip) is not another revision's missing
// object for the revision advertised: clients do not see that tip, and
// their `git lfs fetch --all` does not walk it. Once the branch is
// advertised there (its object still missing), the older revision's
// report names it.
func TestHistoryMissingCountsOnlyServedRefs(t *testing.T) {
	s := newSite(t)
	s.gated = []string{"refs/heads/main"}
	rev0 := s.commitLFS(nil, map[string]string{"deploy/cm.yaml": "kind: ConfigMap\n"})
	ghost := lfsserver.ObjectOf([]byte("not uploaded yet\n"))
	revA := s.repo.Commit("main", map[string]string{".lfsconfig": s.lfsConfig(), ".gitattributes": "*.yaml filter=lfs diff=lfs merge=lfs -text\n",
		"deploy/cm.yaml": lfsserver.ObjectOf([]byte("kind: ConfigMap\n")).Pointer(), "deploy/ghost.yaml": ghost.Pointer()})
	s.start(0)
	ctx := context.Background()
	s.pollAdvertising(rev0)
	if err := s.lm.Pass(ctx, s.url); err == nil {
		t.Fatal("LFS pass: want an error for the object missing upstream")
	}
	if rep := s.report(rev0); !rep.Complete || len(rep.HistoryMissing) != 0 {
		t.Fatalf("report of the advertised revision while A is held back: %+v; want complete", rep)
	}
	if rep := s.report(revA); rep.Complete || len(rep.Missing) != 1 || rep.Missing[0].OID != ghost.OID {
		t.Fatalf("report of A: %+v; want its own object missing", rep)
	}
	s.advertise(revA)
	if rep := s.report(rev0); rep.Complete || len(rep.HistoryMissing) != 1 || rep.HistoryMissing[0].OID != ghost.OID {
		t.Fatalf("report of rev0 with A advertised: %+v; want A's object in historyMissing", rep)
	}
}
