package site

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ballast-dev/ballast/internal/lfs"
)

// openLFS builds the LFS store of the site's repositories: the objects of
// every revision the mirror holds, and those of the commits its dependency
// repositories (submodules, remote bases) are kept for, fetched under the
// same link policy as git polls. fetched, when set, hears of objects that
// arrived (lfs.Options.Fetched).
func (s *Site) openLFS(metrics prometheus.Registerer, fetched func(repoID string)) error {
	var repos []lfs.Repo
	for _, r := range s.Config.Repositories {
		repos = append(repos, lfs.Repo{URL: r.URL})
	}
	m, err := lfs.New(lfs.Options{DataDir: s.Config.DataDir, Repos: repos, Deps: s.lfsDeps, Git: s.Mirror, Logger: s.log, Metrics: metrics,
		MayFetch: func() bool { return s.Sync == nil || s.Sync.GitPollAllowed() }, Fetched: fetched})
	if err != nil {
		return err
	}
	s.LFS = m
	return nil
}

// lfsDeps lists the git mirror's dependency repositories for the LFS
// store, each keeping the objects of its needed commits that are present.
func (s *Site) lfsDeps() []lfs.Repo {
	var out []lfs.Repo
	for _, d := range s.Mirror.GitDeps() {
		id := d.ID
		out = append(out, lfs.Repo{URL: d.URL, Commits: func() []string { return s.depCommits(id) }})
	}
	return out
}

// depCommits returns the needed commits of dependency repository id that
// the mirror holds.
func (s *Site) depCommits(id string) []string {
	for _, d := range s.Mirror.GitDeps() {
		if d.ID != id {
			continue
		}
		missing := map[string]bool{}
		for _, c := range d.Missing {
			missing[c] = true
		}
		var out []string
		for _, c := range d.Commits {
			if !missing[c] {
				out = append(out, c)
			}
		}
		return out
	}
	return nil
}

// passLFS brings the LFS objects of every repository's kept revisions
// aboard (sync --once). Failures are logged: an LFS object missing upstream
// makes its revision fail verify, not the whole pass.
func (s *Site) passLFS(ctx context.Context) {
	for _, r := range s.Config.Repositories {
		if err := s.LFS.Pass(ctx, r.URL); err != nil && ctx.Err() == nil {
			s.log.Warn("LFS objects not all on site", "repo", r.URL, "err", err)
		}
	}
}

// passLFSDeps brings aboard the LFS objects of the commits the dependency
// repositories are kept for (sync --once, after their git pass).
func (s *Site) passLFSDeps(ctx context.Context) {
	if err := s.LFS.PassDeps(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("LFS objects of dependency repositories not all on site", "err", err)
	}
}
