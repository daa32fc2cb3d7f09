package site_test

import (
	"context"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/site"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
)

// `sync --once --revision` (site.Options.Revisions): a revision beyond the
// kept history is fetched when asked for, and only then; one the mirror
// does not have is not wanted at all.
func TestSyncOnceOnDemandRevision(t *testing.T) {
	gitserver.RequireGit(t)
	git := gitserver.New(t)
	up := regserver.Start(t, regserver.Options{})
	repo := git.CreateRepo(t, "fleet/apps")
	old := repo.Commit("main", map[string]string{"a": "0"})
	pushBundleSized(t, up, "fleet/apps-bundles", old, 1, 64<<10)
	repo.Commit("main", map[string]string{"a": "0.5"}) // no bundle
	tip := repo.Commit("main", map[string]string{"a": "1"})
	pushBundleSized(t, up, "fleet/apps-bundles", tip, 1, 64<<10)
	cfg := &config.Config{
		DataDir: t.TempDir(),
		Listen:  config.Listen{HTTP: "127.0.0.1:0", Registry: "127.0.0.1:0"},
		Repositories: []config.Repository{{URL: git.URL("fleet/apps"), Bundles: up.Repo("fleet/apps-bundles"),
			Track: []string{"refs/heads/main"}, KeepRevisions: 1, PollInterval: config.Duration{Duration: time.Hour}}},
		UpstreamRegistries: map[string]config.UpstreamRegistry{up.Addr: {Insecure: true}},
	}
	once := func(revs ...string) map[string]string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := site.Open(ctx, cfg, site.Options{Revisions: revs})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, st, err := s.SyncOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]string{}
		for _, r := range st.Repos {
			for _, rv := range r.Revisions {
				states[rv.Revision] = rv.State
			}
		}
		return states
	}
	if st := once(); st[tip] != syncer.StateComplete || st[old] != "" {
		t.Fatalf("without --revision: %v", st)
	}
	absent := "0123456789abcdef0123456789abcdef01234567"
	st := once(old, absent)
	if st[old] != syncer.StateComplete || st[tip] != syncer.StateComplete || st[absent] != "" {
		t.Fatalf("with --revision %s (and one the mirror lacks): %v", old[:7], st)
	}
}
