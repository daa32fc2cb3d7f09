package syncer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/gitdeps"
	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// GitDepsNeeder is implemented by a RevisionSource that mirrors the other
// repositories a revision needs (gitmirror.Mirror): sync hands it the
// submodules and remote bases each bundle records.
type GitDepsNeeder interface {
	NeedGitDeps(ctx context.Context, repoURL, rev string, deps []gitmirror.Dep) error
}

// GitRefPointer is implemented by a RevisionSource that advertises the
// moving refs of remote bases (gitmirror.Mirror): the ref a remote base
// names (`?ref=main`) is pointed at the commit the revision owning it
// recorded.
type GitRefPointer interface {
	PointGitDepRefs(ctx context.Context, deps []gitmirror.Dep) ([]gitmirror.DepRefMove, error)
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

// movingRefs returns the remote bases of b that name a ref (a branch or a
// tag, which may move upstream) rather than a commit.
func movingRefs(b *bundle.Bundle) []gitmirror.Dep {
	if b == nil {
		return nil
	}
	var out []gitmirror.Dep
	for _, d := range b.GitDeps {
		if d.Kind == bundle.GitDepRemoteBase && d.Ref != "" && d.Ref != d.Commit {
			out = append(out, gitmirror.Dep{URL: d.URL, Commit: d.Commit, Ref: d.Ref})
		}
	}
	return out
}

// gitRefKey names a dependency's ref in claims ("git:<repo-id>?ref=<ref>",
// the id lowercased), or "" for a URL the mirror would refuse.
func gitRefKey(d gitmirror.Dep) string {
	n, err := gitdeps.Normalize(d.URL)
	if err != nil {
		return ""
	}
	id, err := gitdeps.ID(n)
	if err != nil {
		return ""
	}
	return "git:" + strings.ToLower(id) + "?ref=" + d.Ref
}

// claimGitRefs marks the moving refs of b's remote bases as taken and
// points each one not claimed by a revision that owns it first (the
// deployed one, a newer one) at b's recorded commit: the git counterpart
// of claimTags. A failure is logged: verify names a ref advertised at
// another commit.
func (s *Syncer) claimGitRefs(ctx context.Context, b *bundle.Bundle, claimed map[string]bool) {
	p, ok := s.o.Mirror.(GitRefPointer)
	if !ok {
		return
	}
	var mine []gitmirror.Dep
	for _, d := range movingRefs(b) {
		key := gitRefKey(d)
		if key == "" || claimed[key] {
			continue
		}
		claimed[key] = true
		mine = append(mine, d)
	}
	if len(mine) == 0 {
		return
	}
	moves, err := p.PointGitDepRefs(ctx, mine)
	for _, mv := range moves {
		s.log.Info("remote base ref re-pointed", "repo", mv.Repo, "ref", mv.Ref, "from", mv.From, "to", mv.To, "revision", b.Revision)
	}
	if err != nil {
		s.log.Warn("remote base refs not re-pointed", "revision", b.Revision, "err", err)
	}
}

// activateGitRefs points every moving ref of b's remote bases at b's
// recorded commits (verify --activate: the revision being deployed owns
// them all).
func (s *Syncer) activateGitRefs(ctx context.Context, b *bundle.Bundle) error {
	p, ok := s.o.Mirror.(GitRefPointer)
	deps := movingRefs(b)
	if !ok || len(deps) == 0 {
		return nil
	}
	moves, err := p.PointGitDepRefs(ctx, deps)
	for _, mv := range moves {
		s.log.Info("remote base ref re-pointed for deployment", "repo", mv.Repo, "ref", mv.Ref, "from", mv.From, "to", mv.To, "revision", b.Revision)
	}
	if err != nil {
		return fmt.Errorf("remote base refs: %w", err)
	}
	return nil
}

// tipsAtActivation is implemented by a Deployed store that remembers the
// tracked refs' tips at each activation (DeployedStore).
type tipsAtActivation interface {
	TipsAtActivation(repoID string) []string
}

// claimRepoGitRefs points the moving refs of a repository's remote bases
// at the commits of their owners: the deployed revision (unless a newer
// tip took over, deployedOwnsRefs), then the complete revisions of cl in
// wanted order (tips first, newest first), then extra (a landed import
// outside the wanted ones). The caller holds stateMu.
func (s *Syncer) claimRepoGitRefs(ctx context.Context, cl *claims, wanted []wantedRev, extra *bundle.Bundle) {
	if _, ok := s.o.Mirror.(GitRefPointer); !ok || cl == nil {
		return
	}
	if err := s.claimDeployed(ctx, cl); err != nil {
		s.log.Debug("deployed revision's claims", "repo", cl.id, "err", err)
	}
	keys := map[string]bool{}
	if cl.deployedBundle != nil && len(movingRefs(cl.deployedBundle)) > 0 && s.deployedOwnsRefs(ctx, cl) {
		s.claimGitRefs(ctx, cl.deployedBundle, keys)
	}
	for _, w := range wanted {
		if b := cl.complete[w.sha]; b != nil {
			s.claimGitRefs(ctx, b, keys)
		}
	}
	if extra != nil {
		s.claimGitRefs(ctx, extra, keys)
	}
}

// deployedOwnsRefs tells whether the deployed revision keeps its remote
// bases' moving refs: yes unless a revision arrived on a tracked ref
// after it was activated and is complete. Argo CD renders a revision
// before its PreSync hook runs, so the ref must already point at the
// commit of the revision about to be deployed: the new tip (a forward
// deployment) rather than the running one. After a rollback (the tips
// are those of the activation) the deployed revision keeps them, so a
// pass never moves them forward behind the operator's back.
func (s *Syncer) deployedOwnsRefs(ctx context.Context, cl *claims) bool {
	if ta, ok := s.o.Deployed.(tipsAtActivation); ok && len(cl.tips) > 0 {
		at := map[string]bool{}
		for _, t := range ta.TipsAtActivation(cl.id) {
			at[t] = true
		}
		if len(at) > 0 {
			for _, t := range cl.tips {
				if at[t] {
					continue
				}
				// A newer tip owns them once it is complete (the pass
				// reaches it next); until then the deployed one keeps them.
				if cl.complete[t] != nil {
					return false
				}
				rep, err := bundle.CheckComplete(ctx, s.presence, layout(cl.bundleRepo, false), t, s.platforms)
				if err == nil && rep.Complete() {
					return false
				}
			}
		}
	}
	return true
}

func tipsOf(wanted []wantedRev) []string {
	var out []string
	for _, w := range wanted {
		if w.tip {
			out = append(out, w.sha)
		}
	}
	return out
}

// tips returns the tracked refs' tip revisions of repository id now (nil
// when they cannot be read: the deployed revision then keeps its refs).
func (s *Syncer) tips(ctx context.Context, id string) []string {
	r, ok := s.o.Config.Repository(id)
	if !ok {
		return nil
	}
	wanted, err := s.wanted(ctx, r)
	if err != nil {
		return nil
	}
	return tipsOf(wanted)
}

// CommitHolder is implemented by a git mirror that says which commits a
// repository, configured or a dependency, lacks (*gitmirror.Mirror does).
type CommitHolder interface {
	MissingCommits(ctx context.Context, idOrURL string, shas []string) ([]string, error)
}

// GitDeps returns the git dependencies (submodule and remote base commits)
// that revision sha's bundle index in the edge registry records; none when
// the index is not on site or records none. An error means the registry
// could not be read.
func (s *Syncer) GitDeps(ctx context.Context, repoURL, sha string) ([]bundle.GitDep, error) {
	br, err := imageref.BundleRepository(repoURL)
	if err != nil {
		return nil, err
	}
	r, err := s.local(br)
	if err != nil {
		return nil, err
	}
	b, _, err := s.localBundle(ctx, r, sha)
	if errors.Is(err, transfer.ErrNotFound) || b == nil {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bundle index of %s: %w", sha, err)
	}
	return b.GitDeps, nil
}

// GitDepsMissing returns the git dependencies of deps (a bundle's,
// GitDeps) that the git mirror does not hold yet, each as "<url> at
// <commit>"; none when the mirror cannot say. A dependency repository the
// mirror does not know yet lacks them all. One question to the mirror per
// dependency repository. An error means the mirror could not be read.
func (s *Syncer) GitDepsMissing(ctx context.Context, deps []bundle.GitDep) ([]string, error) {
	h, ok := s.o.Mirror.(CommitHolder)
	if !ok || len(deps) == 0 {
		return nil, nil
	}
	byURL := map[string][]string{}
	var urls []string
	for _, d := range deps {
		if _, ok := byURL[d.URL]; !ok {
			urls = append(urls, d.URL)
		}
		byURL[d.URL] = append(byURL[d.URL], d.Commit)
	}
	var missing []string
	for _, u := range urls {
		miss, err := h.MissingCommits(ctx, u, byURL[u])
		if errors.Is(err, gitmirror.ErrUnknownRepo) {
			miss, err = byURL[u], nil // not recorded by the mirror yet
		}
		if err != nil {
			return nil, fmt.Errorf("git dependency %s: %w", u, err)
		}
		for _, c := range miss {
			missing = append(missing, u+" at "+c)
		}
	}
	return missing, nil
}
