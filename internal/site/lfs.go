package site

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ballast-dev/ballast/internal/lfs"
)

// openLFS builds the LFS store of the site's repositories: the objects of
// every revision the mirror holds, fetched under the same link policy as
// git polls.
func (s *Site) openLFS(metrics prometheus.Registerer) error {
	var repos []lfs.Repo
	for _, r := range s.Config.Repositories {
		repos = append(repos, lfs.Repo{URL: r.URL})
	}
	m, err := lfs.New(lfs.Options{DataDir: s.Config.DataDir, Repos: repos, Git: s.Mirror, Logger: s.log, Metrics: metrics,
		MayFetch: func() bool { return s.Sync == nil || s.Sync.GitPollAllowed() }})
	if err != nil {
		return err
	}
	s.LFS = m
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
