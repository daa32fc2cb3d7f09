package verify_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/gitdeps"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/verify"
)

// A remote base pinned by a moving ref (`?ref=main`, main moved between
// two revisions): the mirror advertises main at the newest revision's
// commit, verify --activate of the older one re-points it, and verify of
// the newer one then names the base and both commits instead of saying
// ready while kustomize would render the older base. Sync passes leave
// the rolled-back revision's ref alone until a newer revision arrives,
// which takes it over before its own activation.
func TestVerifyRemoteBaseMovingRef(t *testing.T) {
	s := startEdge(t)
	baseHost := gitserver.New(t)
	base := baseHost.CreateRepo(t, "fleet/base")
	c1 := base.Commit("main", map[string]string{"deploy/kustomization.yaml": "resources: []\n"})
	baseURL := baseHost.URL("fleet/base")
	dep := func(c string) []bundle.GitDep {
		return []bundle.GitDep{{Kind: bundle.GitDepRemoteBase, URL: baseURL, Commit: c, Path: "deploy", Ref: "main"}}
	}
	s.gitDeps = dep(c1)
	rev1 := s.release(map[string]ggcrv1.Image{"registry.example.com/app:1": testimage.Image(t, "linux/amd64", 1, 1024)})
	s.waitSynced(rev1)
	var c2 string

	id, err := gitdeps.ID(baseURL)
	if err != nil {
		t.Fatal(err)
	}
	mirrorBase := s.mirror + "/git/" + id + ".git"
	// What kustomize gets for ?ref=main: `git fetch --depth=1 origin main`.
	advertised := func() string {
		t.Helper()
		dir := t.TempDir()
		for _, args := range [][]string{{"init", "-q"}, {"fetch", "-q", "--depth=1", mirrorBase, "main"}} {
			cmd := exec.Command("git", args...)
			cmd.Dir, cmd.Env = dir, gitserver.Env()
			if out, err := cmd.CombinedOutput(); err != nil {
				return "git " + args[0] + ": " + err.Error() + ": " + string(out)
			}
		}
		cmd := exec.Command("git", "rev-parse", "FETCH_HEAD")
		cmd.Dir, cmd.Env = dir, gitserver.Env()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "rev-parse: " + err.Error()
		}
		return strings.TrimSpace(string(out))
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: mirror advertises main at %s (c1 %s, c2 %s); deps %+v", what, advertised(), c1, c2, s.d.Mirror.GitDeps())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitUntil("first revision's commit", func() bool { return advertised() == c1 })
	// main moves upstream; the next revision's bundle records the new
	// commit. Every later pass sees both revisions, the newer first.
	c2 = base.Commit("main", map[string]string{"deploy/kustomization.yaml": "resources: [x.yaml]\n", "deploy/x.yaml": "x\n"})
	s.gitDeps = dep(c2)
	rev2 := s.release(map[string]ggcrv1.Image{"registry.example.com/app:2": testimage.Image(t, "linux/amd64", 1, 1024)})
	s.waitSynced(rev2)
	// The newest revision of the tracked tip owns the ref.
	waitUntil("newest revision's commit", func() bool { return advertised() == c2 })
	waitUntil("newest revision ready", func() bool { return s.verify(rev2).Ready })
	r := s.verify(rev1)
	if r.Ready || len(r.GitRefsMoved) != 1 || !strings.Contains(r.Reason, "?ref=main") ||
		!strings.Contains(r.Reason, c1[:12]) || !strings.Contains(r.Reason, c2[:12]) || !strings.Contains(r.Reason, "--activate") {
		t.Fatalf("older revision while main is at the newer's commit: %+v", r)
	}
	t.Log(r.Reason)

	// Rollback: the revision being activated owns the ref.
	baseHost.Stop() // re-pointing needs no link: both commits are on site
	r = s.verify(rev1, func(o *verify.Options) { o.Activate = true })
	if !r.Ready || !r.Activated {
		t.Fatalf("verify --activate of the older revision: %+v", r)
	}
	if got := advertised(); got != c1 {
		t.Fatalf("after activating the older revision the mirror advertises main at %s, want %s", got, c1)
	}
	r = s.verify(rev2)
	if r.Ready || len(r.GitRefsMoved) != 1 || !strings.Contains(r.Reason, "remote base "+baseURL+"//deploy?ref=main") ||
		!strings.Contains(r.Reason, c1[:12]) || !strings.Contains(r.Reason, c2[:12]) {
		t.Fatalf("newer revision after the older was activated: %+v", r)
	}
	t.Log(r.Reason)
	// Later sync passes leave the deployed revision's ref alone.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.d.Sync.Pass(ctx); err != nil {
		t.Fatalf("sync pass: %v", err)
	}
	if got := advertised(); got != c1 {
		t.Fatalf("a sync pass moved the deployed revision's ref to %s, want %s", got, c1)
	}
	// A revision pushed after the rollback takes the ref over as soon as
	// it is complete, before its own activation: Argo CD renders it
	// before its PreSync hook runs.
	baseHost.Start(t)
	c3 := base.Commit("main", map[string]string{"deploy/z.yaml": "z\n"})
	s.gitDeps = dep(c3)
	rev3 := s.release(map[string]ggcrv1.Image{"registry.example.com/app:3": testimage.Image(t, "linux/amd64", 1, 1024)})
	s.waitSynced(rev3)
	waitUntil("revision newer than the activation", func() bool { return advertised() == c3 })
	waitUntil("revision newer than the activation ready", func() bool { return s.verify(rev3).Ready })
	if r := s.verify(rev3, func(o *verify.Options) { o.Activate = true }); !r.Ready || advertised() != c3 {
		t.Fatalf("verify --activate of the newest revision: %+v (main at %s)", r, advertised())
	}
	if r := s.verify(rev1); r.Ready || len(r.GitRefsMoved) != 1 {
		t.Fatalf("the rolled-back revision after a newer one was deployed: %+v", r)
	}
}
