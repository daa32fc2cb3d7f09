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
// hundred KB. Every hop carries the bundle's unique bytes once (within the
// resume overhead), every edge ends READY, and the last one verifies and
// rolls back to an older revision its upstreams keep with the whole chain
// before it stopped.
func TestRelayChain(t *testing.T) {
	gitserver.RequireGit(t)
	git := gitserver.New(t)
	up := regserver.Start(t, regserver.Options{})
	repo := git.CreateRepo(t, "fleet/apps")
	shoreURL := git.URL("fleet/apps")
	rev1 := repo.Commit("main", map[string]string{"a": "1"})
	pushBundleSized(t, up, "fleet/apps-bundles", rev1, 3, 1<<20)

	// The shore link is a proxy too, so every hop is counted the same way.
	shoreReg := linkproxy.Start(t, up.Addr)
	shoreGit := linkproxy.Start(t, strings.SplitN(strings.TrimPrefix(shoreURL, "http://"), "/", 2)[0])
	gitPath := strings.SplitN(strings.TrimPrefix(shoreURL, "http://"), "/", 2)[1]

	start := func(repoURL, bundles, regAddr string) *hop {
		cfg := &config.Config{
			DataDir: t.TempDir(),
			Repositories: []config.Repository{{URL: repoURL, Bundles: bundles, Track: []string{"refs/heads/main"},
				KeepRevisions: 3, PollInterval: config.Duration{Duration: time.Second}}},
			UpstreamRegistries: map[string]config.UpstreamRegistry{regAddr: {Insecure: true}},
		}
		return &hop{d: edged.Start(t, cfg), cfg: cfg, repoURL: repoURL}
	}
	var chain []*hop
	// Port: upstream is the shore, through its link.
	portURL := "http://" + shoreGit.Addr + "/" + gitPath
	port := start(portURL, shoreReg.Addr+"/fleet/apps-bundles", shoreReg.Addr)
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
		h := start("http://"+g.Addr+"/git/"+id+".git", r.Addr+"/"+br, r.Addr)
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
		deadline := time.Now().Add(90 * time.Second)
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

	// Each hop carried what the shore link carried, once: resume after a
	// cut re-sends at most the bytes of a request in flight.
	base := chain[0].reg.Down()
	const unique = 2 * 3 << 20 // two revisions, three 1 MiB layers each
	if r := float64(base) / unique; r > 1.02 {
		t.Errorf("the shore link carried %.4fx the bundles' unique layer bytes", r)
	}
	for i, h := range chain {
		ratio := float64(h.reg.Down()) / float64(base)
		t.Logf("hop %d: registry %d bytes down (%.4fx the first hop), %d cuts; git %d bytes", i, h.reg.Down(), ratio, h.reg.Cuts(), h.git.Down())
		if h.reg.Cuts() == 0 {
			t.Errorf("hop %d: the link never cut", i)
		}
		if ratio > 1.10 || ratio < 0.90 {
			t.Errorf("hop %d carried %.3fx the first hop's bytes, want each blob once per hop", i, ratio)
		}
	}

	// The shore, the port and the ship go dark: the tender still verifies
	// both revisions and rolls back to rev1.
	last := chain[len(chain)-1]
	for _, h := range chain {
		h.git.Close()
		h.reg.Close()
	}
	token, err := apiauth.ReadFile(last.cfg.APITokenFile())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, sha := range []string{rev2, rev1} {
		res, err := verify.Run(ctx, verify.Options{RepoURL: last.repoURL, Revision: sha, MirrorURL: last.d.URL, Registry: last.d.Registry,
			Activate: sha == rev1, Token: token})
		if err != nil || !res.Ready {
			t.Fatalf("tender: verify %s: %+v, %v", sha, res, err)
		}
	}
}
