package site_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/apiauth"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/testutil/edged"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/linkproxy"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/verify"
)

// hop is one edge of a relay chain and the link in front of it.
type hop struct {
	d        *edged.Daemon
	cfg      *config.Config
	repoURL  string // the git URL this edge mirrors (its upstream's)
	git, reg *linkproxy.Proxy
}

// TestRelayChain (issue 18): shore → port → ship → tender, each edge taking
// the one before as its upstream (git: the mirror URL; bundles: the edge
// registry's bundle repository), each link cutting connections every few
// hundred KB. Every hop carries the unique bytes of what it keeps once
// (within the resume overhead), every edge ends READY; the tender rolls
// back to an old revision only the port keeps (the ship and the tender
// never fetched it): its gate's NOT READY makes the tender ask the ship,
// the ship's miss makes it fetch from the port, and that revision crosses
// each of those two links once and the shore link not at all. With the
// whole chain before it stopped, the tender still verifies its revisions.
func TestRelayChain(t *testing.T) {
	gitserver.RequireGit(t)
	git := gitserver.New(t)
	up := regserver.Start(t, regserver.Options{})
	repo := git.CreateRepo(t, "fleet/apps")
	shoreURL := git.URL("fleet/apps")
	// rev0 is kept by the port (keepRevisions 3) but lies beyond the
	// ship's and the tender's (1): a commit without a bundle between them.
	rev0 := repo.Commit("main", map[string]string{"a": "0"})
	pushBundleSized(t, up, "fleet/apps-bundles", rev0, 3, 1<<20)
	repo.Commit("main", map[string]string{"a": "0.5"})
	rev1 := repo.Commit("main", map[string]string{"a": "1"})
	pushBundleSized(t, up, "fleet/apps-bundles", rev1, 3, 1<<20)

	// The shore link is a proxy too, so every hop is counted the same way.
	shoreReg := linkproxy.Start(t, up.Addr)
	shoreGit := linkproxy.Start(t, strings.SplitN(strings.TrimPrefix(shoreURL, "http://"), "/", 2)[0])
	gitPath := strings.SplitN(strings.TrimPrefix(shoreURL, "http://"), "/", 2)[1]

	start := func(repoURL, bundles, regAddr string, keep int) *hop {
		cfg := &config.Config{
			DataDir: t.TempDir(),
			Repositories: []config.Repository{{URL: repoURL, Bundles: bundles, Track: []string{"refs/heads/main"},
				KeepRevisions: keep, PollInterval: config.Duration{Duration: time.Second}}},
			UpstreamRegistries: map[string]config.UpstreamRegistry{regAddr: {Insecure: true}},
		}
		return &hop{d: edged.Start(t, cfg), cfg: cfg, repoURL: repoURL}
	}
	var chain []*hop
	// Port: upstream is the shore, through its link.
	portURL := "http://" + shoreGit.Addr + "/" + gitPath
	port := start(portURL, shoreReg.Addr+"/fleet/apps-bundles", shoreReg.Addr, 3)
	port.git, port.reg = shoreGit, shoreReg
	chain = append(chain, port)
	for _, name := range []string{"ship", "tender"} {
		prev := chain[len(chain)-1]
		g := linkproxy.Start(t, strings.TrimPrefix(prev.d.URL, "http://"))
		r := linkproxy.Start(t, prev.d.Registry)
		id, err := imageref.RepoID(prev.repoURL)
		if err != nil {
			t.Fatal(err)
		}
		br, err := imageref.BundleRepository(prev.repoURL)
		if err != nil {
			t.Fatal(err)
		}
		h := start("http://"+g.Addr+"/git/"+id+".git", r.Addr+"/"+br, r.Addr, 1)
		h.git, h.reg = g, r
		chain = append(chain, h)
		t.Logf("%s mirrors %s", name, h.repoURL)
	}
	for _, h := range chain {
		h.reg.CutEvery(300 << 10)
	}

	state := func(h *hop, sha string) string {
		for _, r := range h.d.Sync.Status().Repos {
			for _, rv := range r.Revisions {
				if rv.Revision == sha {
					return rv.State
				}
			}
		}
		return ""
	}
	waitAll := func(sha string) {
		t.Helper()
		// An edge behind one still syncing looks again with backoff up to
		// its interval (1 minute): a loaded machine needs the margin.
		deadline := time.Now().Add(3 * time.Minute)
		for i, h := range chain {
			for state(h, sha) != syncer.StateComplete {
				if time.Now().After(deadline) {
					t.Fatalf("hop %d (%s): revision %s state %q, want complete", i, h.repoURL, sha, state(h, sha))
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	waitAll(rev1)
	rev2 := repo.Commit("main", map[string]string{"a": "2"})
	pushBundleSized(t, up, "fleet/apps-bundles", rev2, 3, 1<<20)
	waitAll(rev2)

	waitFor := func(h *hop, sha string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for state(h, sha) != syncer.StateComplete {
			if time.Now().After(deadline) {
				t.Fatalf("%s: revision %s state %q, want complete", h.repoURL, sha, state(h, sha))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor(port, rev0, time.Minute)

	// Each hop carried the unique bytes of what it keeps, once: resume
	// after a cut re-sends at most the bytes of a request in flight. The
	// port keeps three revisions of three 1 MiB layers, the others two.
	const layers = 3 << 20
	for i, h := range chain {
		want := 2 * layers
		if i == 0 {
			want = 3 * layers
		}
		ratio := float64(h.reg.Down()) / float64(want)
		t.Logf("hop %d: registry %d bytes down (%.4fx its revisions' unique layer bytes), %d cuts; git %d bytes", i, h.reg.Down(), ratio, h.reg.Cuts(), h.git.Down())
		if h.reg.Cuts() == 0 {
			t.Errorf("hop %d: the link never cut", i)
		}
		if ratio > 1.05 || ratio < 0.99 {
			t.Errorf("hop %d carried %.4fx the unique layer bytes of its revisions, want each blob once per hop", i, ratio)
		}
	}

	// Roll the tender back to rev0: the ship and the tender never had it.
	last := chain[len(chain)-1]
	token, err := apiauth.ReadFile(last.cfg.APITokenFile())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if st := state(chain[1], rev0); st != "" {
		t.Fatalf("the ship wants rev0 (%s) before anyone asked for it", st)
	}
	var before []int64
	for _, h := range chain {
		before = append(before, h.reg.Down())
	}
	verifyRev := func(sha string, activate bool) *verify.Result {
		t.Helper()
		res, err := verify.Run(ctx, verify.Options{RepoURL: last.repoURL, Revision: sha, MirrorURL: last.d.URL, Registry: last.d.Registry,
			Activate: activate, Report: true, Token: token})
		if err != nil {
			t.Fatalf("tender: verify %s: %v", sha, err)
		}
		return res
	}
	if res := verifyRev(rev0, true); res.Ready {
		t.Fatalf("tender: rev0 READY before it was fetched: %+v", res)
	}
	// As Argo CD retries a failed PreSync hook.
	deadline := time.Now().Add(3 * time.Minute)
	for !verifyRev(rev0, true).Ready {
		if time.Now().After(deadline) {
			t.Fatalf("tender: rev0 never became READY (ship %q, tender %q)", state(chain[1], rev0), state(last, rev0))
		}
		time.Sleep(2 * time.Second)
	}
	for i, h := range chain {
		moved := h.reg.Down() - before[i]
		t.Logf("rollback to rev0: hop %d carried %d bytes", i, moved)
		switch {
		case i == 0 && moved > 64<<10:
			t.Errorf("the shore link carried %d bytes for a revision the port keeps", moved)
		case i > 0 && (float64(moved) > 1.05*layers || float64(moved) < 0.99*layers):
			t.Errorf("hop %d carried %d bytes for rev0's %d unique layer bytes", i, moved, layers)
		}
	}

	for _, h := range chain {
		h.git.Close()
		h.reg.Close()
	}
	// Forward to rev2 and back to rev0, offline.
	for _, sha := range []string{rev2, rev0} {
		res, err := verify.Run(ctx, verify.Options{RepoURL: last.repoURL, Revision: sha, MirrorURL: last.d.URL, Registry: last.d.Registry,
			Activate: true, Token: token})
		if err != nil || !res.Ready {
			t.Fatalf("tender offline: verify %s: %+v, %v", sha, res, err)
		}
	}
}
