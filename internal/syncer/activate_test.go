package syncer_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/testutil/toxiproxy"
)

// An offline rollback during a long download over a slow link (toxiproxy
// bandwidth toxic) must not wait for the sync pass: activation takes only
// the short state lock. The test asserts order, not time: activation
// returns while the pass is still downloading the 100 MB revision. Then a
// later pass leaves the activated revision's tags alone (the pass that
// was running claims them too) and retention keeps its bundle although it
// is no longer wanted.
func TestActivateDuringLongSync(t *testing.T) {
	var store *syncer.DeployedStore
	s := newSite(t, func(c *config.Config) { c.Repositories[0].KeepRevisions = 0 }, func(o *syncer.Options) {
		store, _ = syncer.OpenDeployed(o.Config.DataDir)
		o.Deployed = store
	})
	url := s.cfg.Repositories[0].URL
	proxy := toxiproxy.Start(t, s.up.Addr)
	s.cfg.Repositories[0].Bundles = proxy.Addr + "/" + s.bundles
	s.cfg.UpstreamRegistries[proxy.Addr] = config.UpstreamRegistry{Insecure: true}

	const tag = "ghcr.io/org/app:stable"
	rev1 := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, rev1, map[string]artifact{tag: testimage.Image(t, "linux/amd64", 1, 64<<10)})
	s.pass()
	if _, err := s.sync.Activate(context.Background(), url, rev1, store); err != nil {
		t.Fatal(err)
	}
	rev2 := s.commit(map[string]string{"a": "2"})
	pushBundle(t, s.up, s.bundles, rev2, map[string]artifact{tag: testimage.Image(t, "linux/amd64", 1, 64<<10)})
	s.pass()
	if _, err := s.sync.Activate(context.Background(), url, rev2, store); err != nil {
		t.Fatal(err)
	}
	// rev3: 100 MB over a 1 MB/s link.
	rev3 := s.commit(map[string]string{"a": "3"})
	pushBundle(t, s.up, s.bundles, rev3, map[string]artifact{tag: testimage.Image(t, "linux/amd64", 4, 25*mb)})
	proxy.Add("slow", "bandwidth", `{"rate":1024}`)

	ctx, cancel := context.WithCancel(context.Background())
	passDone := make(chan error, 1)
	go func() { _, err := s.sync.Pass(ctx); passDone <- err }()
	downloading := func() bool {
		for _, r := range s.sync.Status().Repos {
			for _, rv := range r.Revisions {
				if rv.Revision == rev3 && rv.State == syncer.StateSyncing && rv.BytesDone > 0 {
					return true
				}
			}
		}
		return false
	}
	for !downloading() {
		select {
		case err := <-passDone:
			t.Fatalf("pass ended before the download started: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	// The link goes away entirely: the rollback is offline.
	proxy.Stall()
	// Should activation wait for the pass (the fault this test is for),
	// the pass is ended after a minute so the test fails instead of hanging.
	watchdog := time.AfterFunc(time.Minute, cancel)
	defer watchdog.Stop()
	start := time.Now()
	rep, err := s.sync.Activate(context.Background(), url, rev1, store)
	took := time.Since(start)
	if err != nil || !rep.Complete() {
		t.Fatalf("rollback to rev1 during a sync: %v %+v", err, rep)
	}
	watchdog.Stop()
	select {
	case err := <-passDone:
		t.Fatalf("activation waited for the sync pass (pass ended first: %v)", err)
	default:
	}
	t.Logf("rollback during a 100 MB download: READY after %s", took.Round(time.Millisecond))
	cancel()
	<-passDone

	// The link is back and a small rev4 is the tip: it lands, but the tag
	// stays on the deployed rev1, and rev1 (not wanted: keepRevisions 0)
	// keeps its bundle through retention.
	// (Removing the toxics instead can deadlock toxiproxy v2.12.0 when a
	// connection of the cancelled pass closes meanwhile: RemoveToxic holds
	// the lock the closing link needs. The upstream itself is the link back.)
	s.cfg.Repositories[0].Bundles = s.up.Repo(s.bundles)
	rev4 := s.commit(map[string]string{"a": "4"})
	pushBundle(t, s.up, s.bundles, rev4, map[string]artifact{tag: testimage.Image(t, "linux/amd64", 1, 64<<10)})
	if res := s.pass(); res.Complete != 1 || res.Wanted != 1 {
		t.Fatalf("pass after rollback: %+v", res)
	}
	if rep := s.check(rev1); !rep.Complete() {
		t.Fatalf("deployed rev1 after a newer pass: %v", rep.Missing)
	}
	if rep := s.check(rev4); rep.Complete() {
		t.Fatal("rev4's tag moved over the deployed rev1's")
	}
	if store.Current(s.repoID) != rev1 {
		t.Fatalf("current %s, want rev1", store.Current(s.repoID))
	}
}

// A deployed revision that loses a blob on site (deleted, or found damaged
// and removed) keeps its tags while the blob is fetched again: a pass that
// also lands a newer revision must not move them to it, or the site would
// roll forward behind the operator's back.
func TestDeployedRevisionLosingABlobKeepsItsTags(t *testing.T) {
	var store *syncer.DeployedStore
	s := newSite(t, nil, func(o *syncer.Options) {
		store, _ = syncer.OpenDeployed(o.Config.DataDir)
		o.Deployed = store
	})
	url := s.cfg.Repositories[0].URL
	const tag = "ghcr.io/org/app:stable"
	app1 := testimage.Image(t, "linux/amd64", 2, 64<<10)
	rev1 := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, rev1, map[string]artifact{tag: app1})
	s.pass()
	rev2 := s.commit(map[string]string{"a": "2"})
	pushBundle(t, s.up, s.bundles, rev2, map[string]artifact{tag: testimage.Image(t, "linux/amd64", 2, 64<<10)})
	s.pass()
	// Rolled back to rev1 (rev2 is the newer, complete tip).
	if rep, err := s.sync.Activate(context.Background(), url, rev1, store); err != nil || !rep.Complete() {
		t.Fatalf("rollback to rev1: %v %+v", err, rep)
	}
	layers, _ := app1.Layers()
	ld, _ := layers[1].Digest()
	blob := filepath.Join(s.cfg.DataDir, "registry/docker/registry/v2/blobs/sha256", ld.Hex[:2], ld.Hex)
	if err := os.RemoveAll(blob); err != nil {
		t.Fatal(err)
	}
	if rep := s.check(rev1); rep.Complete() {
		t.Fatal("rev1 complete with a layer deleted: the case is not set up")
	}
	// The pass claims tags for rev2 too (newest first) while rev1 is
	// incomplete: rev2 must not take rev1's tag. And the pass heals rev1
	// although its image manifest is present: the lost blob is fetched.
	if res := s.pass(); res.Complete != 2 || res.Failed != 0 {
		t.Fatalf("pass: %+v", res)
	}
	if rep := s.check(rev1); !rep.Complete() {
		t.Fatalf("rev1 after passes: %v", rep.Missing)
	}
	// Complete includes the tags: rev1's point at its images, so rev2's do not.
	if rep := s.check(rev2); rep.Complete() {
		t.Fatal("the tag moved to rev2 while the deployed rev1 was missing a blob")
	}
	if store.Current(s.repoID) != rev1 {
		t.Fatalf("current %s, want rev1", store.Current(s.repoID))
	}
}
