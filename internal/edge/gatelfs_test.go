package edge_test

import (
	"context"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/edge"
	"github.com/ballast-dev/ballast/internal/lfs"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/lfsserver"
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
)

// lfsUpRepo is the LFS server's repository the gated repository's
// .lfsconfig names.
const lfsUpRepo = "fleet/apps"

// startLFSGatedSite is startGatedSite with a real LFS server (the git-lfs
// project's lfs-test-server) for the gated repository.
func startLFSGatedSite(t *testing.T) (*gatedSite, *lfsserver.Server) {
	t.Helper()
	realtest.LookPath(t, "git-lfs", "apt-get install git-lfs")
	s := startGatedSite(t)
	return s, lfsserver.New(t)
}

// commitLFS commits plain files and, in LFS, lfsFiles (path → content) on
// main of the gated repository: a pointer is committed for each, with the
// .lfsconfig naming up. Only the contents in upload are stored on up; the
// others are objects the upstream does not have (yet).
func commitLFS(t *testing.T, s *gatedSite, up *lfsserver.Server, c gitserver.Change, lfsFiles map[string]string, upload ...string) string {
	t.Helper()
	files := map[string]string{".lfsconfig": "[lfs]\n\turl = " + up.URL(lfsUpRepo) + "\n",
		".gitattributes": "*.bin filter=lfs diff=lfs merge=lfs -text\n"}
	for k, v := range c.Files {
		files[k] = v
	}
	for path, content := range lfsFiles {
		files[path] = lfsserver.ObjectOf([]byte(content)).Pointer()
	}
	for _, content := range upload {
		up.Upload(t, lfsUpRepo, []byte(content))
	}
	c.Files = files
	return s.apps.CommitChange("main", c)
}

// lfsStatus is the LFS store's state of the gated repository.
func (s *gatedSite) lfsStatus() lfs.RepoStatus {
	for _, r := range edge.LFSStore(s.d).Status() {
		if r.ID == s.appsID {
			return r
		}
	}
	return lfs.RepoStatus{}
}

// lfsPassed waits until an LFS pass over the gated repository left
// exactly pending objects missing.
func (s *gatedSite) lfsPassed(pending int) {
	s.t.Helper()
	s.waitFor("an LFS pass", func() bool {
		st := s.lfsStatus()
		return st.LastPass != nil && len(st.Pending) == pending
	})
}

// syncPass is when sync last ended a pass over the gated repository.
func (s *gatedSite) syncPass() time.Time {
	for _, r := range s.d.Sync.Status().Repos {
		if r.Repo == s.appsID && r.LastPass != nil {
			return *r.LastPass
		}
	}
	return time.Time{}
}

// freshSyncPass has sync run a pass over the gated repository now and
// waits until it has ended with no other pass following (a kick during a
// pass folds into one more), and for the gate's recompute after it: sync's
// next pass is then its interval (a minute) away.
func (s *gatedSite) freshSyncPass() {
	s.t.Helper()
	before := s.syncPass()
	s.d.Sync.Kick()
	s.waitFor("a sync pass", func() bool { return s.syncPass().After(before) })
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); {
		p := s.syncPass()
		time.Sleep(time.Second)
		if s.syncPass().Equal(p) {
			return
		}
	}
	s.t.Fatal("sync keeps running passes over the gated repository")
}

// A revision whose bundle is complete but whose LFS object is not on site
// is not advertised: Argo CD would sync it and verify would fail it in
// PreSync. When the LFS store brings the object aboard, its hook makes the
// gate advertise the revision at once: no bundle event, no sync pass in
// between.
func TestGateWaitsForLFSObjects(t *testing.T) {
	s, up := startLFSGatedSite(t)
	model := "model weights, revision a\n"
	revA := commitLFS(t, s, up, gitserver.Change{Files: map[string]string{"app": "a"}}, map[string]string{"model.bin": model})
	s.pushBundle(revA, 32<<10)
	s.start()

	s.waitFor("A complete", func() bool { return s.state(revA) == syncer.StateComplete })
	s.lfsPassed(1)
	// A sync pass (and the gate's recompute after it) does not advertise
	// A: its object is still missing.
	s.freshSyncPass()
	if got := cliRefs(t, s.mirrorURL(s.appsID))["refs/heads/main"]; got != "" {
		t.Fatalf("main advertised at %s while its LFS object is not on site", got)
	}
	if tr := s.tracked(); tr.Ready != "" || tr.UpstreamTip != revA {
		t.Errorf("status %+v, want nothing ready and upstream at %s", tr, revA)
	}

	// The object reaches the upstream; the LFS store's pass brings it.
	// Sync's next pass is a minute away (its interval): the gate must
	// hear of the object from the store.
	up.Upload(t, lfsUpRepo, []byte(model))
	last := s.syncPass()
	if err := edge.LFSStore(s.d).Pass(context.Background(), s.cfg.Repositories[0].URL); err != nil {
		t.Fatalf("LFS pass: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for cliRefs(t, s.mirrorURL(s.appsID))["refs/heads/main"] != revA {
		if time.Now().After(deadline) {
			t.Fatalf("main not advertised at %s within 30s of its LFS object's arrival", revA)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if p := s.syncPass(); !p.Equal(last) {
		t.Fatalf("a sync pass (%v) ran before the advertisement: it does not prove the LFS store's hook", p)
	}
	s.assertAdvertised("A and its LFS object on site", revA)
}

// The advertised revision stays while a newer one lacks LFS objects, and
// stays on its complete bundle even when its own LFS object is not on
// site (a data dir from before the gate checked them): the gate does not
// pass it over for an older revision, which would roll the application
// back.
func TestGateKeepsAdvertisedRevisionWithoutLFSObjects(t *testing.T) {
	s, up := startLFSGatedSite(t)
	rev0 := s.apps.Commit("main", map[string]string{"app": "0"})
	s.pushBundle(rev0, 32<<10)
	s.start()
	s.waitAdvertised(rev0)

	revA := commitLFS(t, s, up, gitserver.Change{Files: map[string]string{"app": "a"}}, map[string]string{"model.bin": "weights a\n"})
	s.pushBundle(revA, 32<<10)
	s.waitFor("A complete", func() bool { return s.state(revA) == syncer.StateComplete })
	s.waitFor("an LFS pass over A", func() bool {
		rep, err := edge.LFSStore(s.d).Revision(context.Background(), s.appsID, revA)
		return err == nil && len(rep.Missing) == 1 && s.lfsStatus().LastPass != nil && len(s.lfsStatus().Pending) == 1
	})
	s.freshSyncPass()
	s.assertAdvertised("A lacks its LFS object", rev0)

	s.restartAdvertising(revA) // what an earlier gate left
	s.lfsPassed(1)             // the upstream still lacks A's object
	s.freshSyncPass()
	s.assertAdvertised("A advertised before, its LFS object not on site", revA)
}

// An LFS object that only another revision points at (one the store
// still lacks) does not hold a revision back: A is advertised with its own
// object on site although an older revision's object is missing upstream,
// while the newer B waits for its own; B's object, behind a tip clients
// do not see, is not in A's historyMissing either.
func TestGateIgnoresOtherRevisionsLFSObjects(t *testing.T) {
	s, up := startLFSGatedSite(t)
	commitLFS(t, s, up, gitserver.Change{Files: map[string]string{"app": "0"}}, map[string]string{"old.bin": "weights 0, lost upstream\n"})
	own := "weights a\n"
	revA := commitLFS(t, s, up, gitserver.Change{Files: map[string]string{"app": "a"}, Remove: []string{"old.bin"}},
		map[string]string{"model.bin": own}, own)
	s.pushBundle(revA, 32<<10)
	revB := commitLFS(t, s, up, gitserver.Change{Files: map[string]string{"app": "b"}}, map[string]string{"model.bin": "weights b\n"})
	s.pushBundle(revB, 32<<10)
	s.start()

	s.waitFor("A and B complete", func() bool {
		return s.state(revA) == syncer.StateComplete && s.state(revB) == syncer.StateComplete
	})
	s.lfsPassed(2) // the objects of 0 and B
	s.waitAdvertised(revA)
	s.freshSyncPass()
	s.assertAdvertised("A's own object on site, B's missing", revA)
	// What verify reads: A's own object on site; of the others, only 0's
	// (in the history main now serves) is missing for clients. B is the
	// hidden upstream tip, which no client's `git lfs fetch --all` walks.
	rep, err := edge.LFSStore(s.d).Revision(context.Background(), s.appsID, revA)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Objects != 1 || len(rep.Missing) != 0 || len(rep.HistoryMissing) != 1 || rep.HistoryMissing[0].Path != "old.bin" {
		t.Fatalf("LFS report of A: %d objects, missing %v, history missing %v; want its one object on site and 0's missing",
			rep.Objects, rep.Missing, rep.HistoryMissing)
	}
}

// A revision whose git dependency (a remote base's commit) is in the
// mirror but whose LFS object is not on site is not advertised either:
// verify checks the dependencies' objects too. When the store's pass over
// the dependency repositories brings the object, the gate advertises it.
func TestGateWaitsForGitDepsLFSObjects(t *testing.T) {
	s, up := startLFSGatedSite(t)
	libSrv := gitserver.New(t)
	lib := libSrv.CreateRepo(t, "org/lib")
	model := "base weights\n"
	libRev := lib.CommitChange("main", gitserver.Change{Files: map[string]string{
		".lfsconfig":                "[lfs]\n\turl = " + up.URL("org/lib") + "\n",
		".gitattributes":            "*.bin filter=lfs diff=lfs merge=lfs -text\n",
		"deploy/kustomization.yaml": "resources: []\n",
		"deploy/model.bin":          lfsserver.ObjectOf([]byte(model)).Pointer(),
	}})
	base := []bundle.GitDep{{Kind: bundle.GitDepRemoteBase, URL: libSrv.URL("org/lib"), Commit: libRev, Path: "deploy"}}
	revA := s.apps.Commit("main", map[string]string{"app": "a"})
	s.pushBundleDeps(revA, 32<<10, base)
	s.start()

	s.waitFor("A complete", func() bool { return s.state(revA) == syncer.StateComplete })
	if err := s.d.Mirror.SyncGitDeps(context.Background()); err != nil {
		t.Fatalf("dependency pass: %v", err)
	}
	if err := edge.LFSStore(s.d).PassDeps(context.Background()); err != nil {
		t.Logf("LFS pass over the dependencies (the object is not upstream yet): %v", err)
	}
	s.freshSyncPass()
	if got := cliRefs(t, s.mirrorURL(s.appsID))["refs/heads/main"]; got != "" {
		t.Fatalf("main advertised at %s while its remote base's LFS object is not on site", got)
	}

	up.Upload(t, "org/lib", []byte(model))
	if err := edge.LFSStore(s.d).PassDeps(context.Background()); err != nil {
		t.Fatalf("LFS pass over the dependencies: %v", err)
	}
	s.waitAdvertised(revA)
	s.assertAdvertised("A, its remote base and the base's LFS object on site", revA)
}
