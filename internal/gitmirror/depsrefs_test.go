package gitmirror_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ballast-dev/ballast/internal/gitdeps"
	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

// fetchRef is what kustomize gets for `?ref=<ref>` from the mirror:
// `git fetch --depth=1 origin <ref>` through the install's insteadOf
// rules.
func fetchRef(t *testing.T, h *harness, env []string, upstream, ref string) string {
	t.Helper()
	dir := t.TempDir()
	clientGit(t, env, dir, "init", "-q")
	clientGit(t, env, dir, "remote", "add", "origin", upstream)
	clientGit(t, env, dir, "fetch", "-q", "--depth=1", "origin", ref)
	return clientGit(t, env, dir, "rev-parse", "FETCH_HEAD^{commit}")
}

// A moving ref (a remote base's ?ref=main) is advertised at the commit of
// whoever points it (the syncer's owner), not at the last need recorded;
// the choice survives a restart, and one made while the new commit is
// not fetched yet is finished by the pass that fetches it, after a
// restart too (the state is written before any git ref moves).
func TestPointGitDepRefs(t *testing.T) {
	up := gitserver.New(t)
	base := up.CreateRepo(t, "fleet/base")
	c1 := base.Commit("main", map[string]string{"deploy/kustomization.yaml": "resources: []\n"})
	c2 := base.Commit("main", map[string]string{"deploy/x.yaml": "x\n"})
	apps := up.CreateRepo(t, "fleet/apps")
	rev1 := apps.Commit("main", map[string]string{"a": "1"})
	rev2 := apps.Commit("main", map[string]string{"a": "2"})
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil)
	h.poll(up.URL("fleet/apps"))
	ctx := context.Background()
	baseURL := up.URL("fleet/base")
	// Needs recorded newest first (as a sync pass does): the first one
	// names the ref's commit, later needs do not move it.
	if err := h.m.NeedGitDeps(ctx, up.URL("fleet/apps"), rev2, []gitmirror.Dep{{URL: baseURL, Commit: c2, Ref: "main"}}); err != nil {
		t.Fatal(err)
	}
	if err := h.m.NeedGitDeps(ctx, up.URL("fleet/apps"), rev1, []gitmirror.Dep{{URL: baseURL, Commit: c1, Ref: "main"}}); err != nil {
		t.Fatal(err)
	}
	if err := syncDeps(t, h); err != nil {
		t.Fatalf("sync deps: %v\n%s", err, h.logs)
	}
	env := clientGitconfig(t, h, up.URL("fleet/apps"))
	if got := fetchRef(t, h, env, baseURL, "main"); got != c2 {
		t.Fatalf("main after needs newest first: %s, want the first need's %s", got, c2)
	}
	// The owner points it at the older revision's commit (a rollback).
	moves, err := h.m.PointGitDepRefs(ctx, []gitmirror.Dep{{URL: baseURL, Commit: c1, Ref: "main"}, {URL: baseURL, Commit: c2, Ref: "main"}})
	if err != nil || len(moves) != 1 || moves[0].From != c2 || moves[0].To != c1 {
		t.Fatalf("point main at c1: %+v, %v", moves, err)
	}
	if got := fetchRef(t, h, env, baseURL, "main"); got != c1 {
		t.Fatalf("main after pointing it at %s: %s", c1, got)
	}
	if moves, err := h.m.PointGitDepRefs(ctx, []gitmirror.Dep{{URL: baseURL, Commit: c1, Ref: "main"}}); err != nil || len(moves) != 0 {
		t.Fatalf("pointing it again moved something: %+v, %v", moves, err)
	}
	h.restart()
	if err := syncDeps(t, h); err != nil {
		t.Fatalf("sync deps after restart: %v\n%s", err, h.logs)
	}
	env = clientGitconfig(t, h, up.URL("fleet/apps"))
	if got := fetchRef(t, h, env, baseURL, "main"); got != c1 {
		t.Fatalf("main after a restart: %s, want %s", got, c1)
	}

	// A commit not on site yet: the choice is recorded, the ref keeps
	// its commit until the commit is fetched.
	c3 := base.Commit("main", map[string]string{"deploy/y.yaml": "y\n"})
	up.Stop()
	if _, err := h.m.PointGitDepRefs(ctx, []gitmirror.Dep{{URL: baseURL, Commit: c3, Ref: "main"}}); err != nil {
		t.Fatal(err)
	}
	dr, err := h.m.ResolveDepRef(ctx, baseURL, "main")
	if err != nil || dr.Commit != c1 || dr.Recorded != c3 || dr.Name == "" {
		t.Fatalf("ref pointed at a missing commit: %+v, %v", dr, err)
	}
	h.restart()
	up.Start(t)
	if err := syncDeps(t, h); err != nil {
		t.Fatalf("sync deps with the upstream back: %v\n%s", err, h.logs)
	}
	env = clientGitconfig(t, h, up.URL("fleet/apps"))
	if got := fetchRef(t, h, env, baseURL, "main"); got != c3 {
		t.Fatalf("main once its commit was fetched: %s, want %s", got, c3)
	}

	// Bad input records nothing.
	if _, err := h.m.PointGitDepRefs(ctx, []gitmirror.Dep{{URL: baseURL, Commit: c1, Ref: "--force"}}); err == nil {
		t.Error("option-like ref accepted")
	}
	if _, err := h.m.PointGitDepRefs(ctx, []gitmirror.Dep{{URL: baseURL, Commit: "c1", Ref: "main"}}); err == nil {
		t.Error("short SHA accepted")
	}
	if got := fetchRef(t, h, env, baseURL, "main"); got != c3 {
		t.Fatalf("main after refused calls: %s, want %s", got, c3)
	}
}

// GET /api/v1/gitdeps/ref answers what a fetch of the ref gets, and
// refuses bad input with a clear status.
func TestDepRefRoute(t *testing.T) {
	up := gitserver.New(t)
	base := up.CreateRepo(t, "fleet/base")
	c1 := base.Commit("main", map[string]string{"k.yaml": "k\n"})
	apps := up.CreateRepo(t, "fleet/apps")
	rev := apps.Commit("main", map[string]string{"a": "1"})
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil)
	h.poll(up.URL("fleet/apps"))
	if err := h.m.NeedGitDeps(context.Background(), up.URL("fleet/apps"), rev, []gitmirror.Dep{{URL: up.URL("fleet/base"), Commit: c1, Ref: "v1"}}); err != nil {
		t.Fatal(err)
	}
	if err := syncDeps(t, h); err != nil {
		t.Fatal(err)
	}
	id, _ := gitdeps.ID(up.URL("fleet/base"))
	appsID, _ := gitdeps.ID(up.URL("fleet/apps"))
	get := func(repo, ref string) (int, gitmirror.DepRef) {
		rec := httptest.NewRecorder()
		q := url.Values{"repo": {repo}, "ref": {ref}}
		h.m.GitDepsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/gitdeps/ref?"+q.Encode(), nil))
		var dr gitmirror.DepRef
		_ = json.Unmarshal(rec.Body.Bytes(), &dr)
		return rec.Code, dr
	}
	if code, dr := get(id, "v1"); code != http.StatusOK || dr.Commit != c1 || dr.Recorded != c1 || dr.Name != "refs/tags/v1" {
		t.Errorf("v1: %d %+v", code, dr)
	}
	if code, dr := get(id, "v2"); code != http.StatusOK || dr.Name != "" {
		t.Errorf("a ref not advertised: %d %+v", code, dr)
	}
	if code, dr := get(appsID, "main"); code != http.StatusOK || !dr.Configured || dr.Commit != rev {
		t.Errorf("a configured repository's branch: %d %+v", code, dr)
	}
	for _, ref := range []string{"--upload-pack=x", "ballast/keep/" + c1, "refs/ballast/keep/" + c1, "a..b", "x y", ""} {
		if code, _ := get(id, ref); code != http.StatusBadRequest {
			t.Errorf("ref %q: HTTP %d, want 400", ref, code)
		}
	}
	if code, _ := get("git.example.com/none", "main"); code != http.StatusNotFound {
		t.Errorf("unknown repository: HTTP %d, want 404", code)
	}
}

// A kill between recording a ref's commit (.gitdeps.json) and moving the
// git ref leaves the file ahead of git: the next process's opening
// moves the ref (an activation right after a restart relies on it), without
// waiting for a dependency pass.
func TestPointGitDepRefsAfterKillBeforeRefMoved(t *testing.T) {
	up := gitserver.New(t)
	base := up.CreateRepo(t, "fleet/base")
	c1 := base.Commit("main", map[string]string{"deploy/kustomization.yaml": "resources: []\n"})
	c2 := base.Commit("main", map[string]string{"deploy/x.yaml": "x\n"})
	apps := up.CreateRepo(t, "fleet/apps")
	rev := apps.Commit("main", map[string]string{"a": "1"})
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil)
	h.poll(up.URL("fleet/apps"))
	ctx := context.Background()
	baseURL := up.URL("fleet/base")
	if err := h.m.NeedGitDeps(ctx, up.URL("fleet/apps"), rev, []gitmirror.Dep{{URL: baseURL, Commit: c1, Ref: "main"}, {URL: baseURL, Commit: c2}}); err != nil {
		t.Fatal(err)
	}
	if err := syncDeps(t, h); err != nil {
		t.Fatalf("sync deps: %v\n%s", err, h.logs)
	}
	if _, err := h.m.PointGitDepRefs(ctx, []gitmirror.Dep{{URL: baseURL, Commit: c2, Ref: "main"}}); err != nil {
		t.Fatal(err)
	}
	dr, err := h.m.ResolveDepRef(ctx, baseURL, "main")
	if err != nil || dr.Commit != c2 {
		t.Fatalf("main after pointing it at c2: %+v, %v", dr, err)
	}
	// The state a kill leaves: recorded c2, the git ref still at c1.
	h.stop()
	dirs, _ := filepath.Glob(filepath.Join(h.dataDir, "git", "*", "fleet", "base.git"))
	if len(dirs) != 1 {
		t.Fatalf("dependency repository: %v", dirs)
	}
	if out, err := exec.Command("git", "-C", dirs[0], "update-ref", dr.Name, c1).CombinedOutput(); err != nil {
		t.Fatalf("git update-ref: %v %s", err, out)
	}
	// The next process, opened (no dependency pass has run yet).
	opts := h.opts
	opts.Metrics = prometheus.NewRegistry()
	m, err := gitmirror.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	moves, err := m.PointGitDepRefs(ctx, []gitmirror.Dep{{URL: baseURL, Commit: c2, Ref: "main"}})
	if err != nil || len(moves) != 0 {
		t.Fatalf("pointing the recorded commit again: %+v, %v", moves, err)
	}
	if dr, err := m.ResolveDepRef(ctx, baseURL, "main"); err != nil || dr.Commit != c2 || dr.Recorded != c2 {
		t.Fatalf("main after the restart: %+v, %v (want it advertised at %s)", dr, err, c2)
	}
}
