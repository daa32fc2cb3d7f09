package syncer

import (
	"context"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/gitmirror"
)

// GitDepsNeeder is implemented by a RevisionSource that mirrors the other
// repositories a revision needs (gitmirror.Mirror): sync hands it the
// submodules and remote bases each bundle records.
type GitDepsNeeder interface {
	NeedGitDeps(ctx context.Context, repoURL, rev string, deps []gitmirror.Dep) error
}

// needGitDeps passes the git dependencies of bundle b (revision sha of
// repository id) to the mirror. A failure is logged: the gate (verify)
// names what is missing.
func (s *Syncer) needGitDeps(ctx context.Context, id, sha string, b *bundle.Bundle) {
	n, ok := s.o.Mirror.(GitDepsNeeder)
	if !ok || b == nil || len(b.GitDeps) == 0 {
		return
	}
	deps := make([]gitmirror.Dep, 0, len(b.GitDeps))
	for _, d := range b.GitDeps {
		deps = append(deps, gitmirror.Dep{URL: d.URL, Commit: d.Commit, Ref: d.Ref})
	}
	if err := n.NeedGitDeps(ctx, id, sha, deps); err != nil {
		s.log.Warn("git dependencies of a bundle not recorded", "repo", id, "revision", sha, "err", err)
	}
}
