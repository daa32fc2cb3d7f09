package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/lfs"
	"github.com/ballast-dev/ballast/internal/site"
	"github.com/ballast-dev/ballast/internal/syncer"
)

// lfsRevisions is what the gate needs of the site's LFS store
// (*lfs.Mirror): the report of one revision's LFS objects, the one behind
// GET /api/v1/lfs/<id>/commits/<sha> that `ballast verify` reads.
type lfsRevisions interface {
	Revision(ctx context.Context, idOrURL, commit string) (*lfs.RevisionReport, error)
}

// gatedBranches are the branches of r that the mirror advertises only once
// ready: its tracked branches, when gate is on. Tracked tags are not gated
// (a tag is not expected to move).
func gatedBranches(r config.Repository) []string { return site.GatedBranches(r) }

// gate keeps each gated branch advertised at the newest revision of its
// upstream first-parent history (as deep as sync keeps revisions) whose
// bundle is complete at the edge. When none is, the branch stays at what
// it advertises now while that is still complete, and is withdrawn
// otherwise: Argo CD then keeps running what it has (a branch that
// vanishes would turn the application into a ComparisonError), and never
// sees a revision it cannot deploy.
//
// It recomputes a repository when sync completes one of its revisions or
// ends a pass over it, when the mirror's refs change, and at start: the
// advertised refs are durable in git, so after a restart they are what was
// ready before, until the first recompute (which /readyz waits for).
type gate struct {
	mirror *gitmirror.Mirror
	sync   *syncer.Syncer // set once sync is built
	lfs    lfsRevisions   // nil: the site keeps no LFS store
	log    *slog.Logger
	repos  map[string]config.Repository // gated repositories by mirror id
	// retryMin and retryMax bound the wait before a failed recompute is
	// tried again.
	retryMin, retryMax time.Duration

	mu    sync.Mutex
	dirty map[string]bool
	wake  chan struct{}
	ready chan struct{} // closed after the first recompute of every repository
}

func newGate(cfg *config.Config, m *gitmirror.Mirror, log *slog.Logger) *gate {
	g := &gate{
		mirror: m, log: log.With("component", "gate"), repos: map[string]config.Repository{},
		retryMin: time.Second, retryMax: time.Minute,
		dirty: map[string]bool{}, wake: make(chan struct{}, 1), ready: make(chan struct{}),
	}
	for _, r := range cfg.Repositories {
		if len(gatedBranches(r)) == 0 {
			continue
		}
		if id, err := imageref.RepoID(r.URL); err == nil {
			g.repos[id] = r
		}
	}
	return g
}

// enabled reports whether any repository is gated.
func (g *gate) enabled() bool { return len(g.repos) > 0 }

// mark asks for a recompute of repository id. It never blocks: sync calls
// it from its pass.
func (g *gate) mark(id string) {
	if _, ok := g.repos[id]; !ok {
		return
	}
	g.mu.Lock()
	g.dirty[id] = true
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// markAll asks for a recompute of every gated repository. It never
// blocks.
func (g *gate) markAll() {
	if g == nil {
		return
	}
	for id := range g.repos {
		g.mark(id)
	}
}

// lfsFetched hears that LFS objects of repository id arrived
// (site.Options.LFSFetched): a gated repository's revision held back for
// them may be ready now. Objects of any other repository (a git
// dependency's) mark every gated repository. It never blocks.
func (g *gate) lfsFetched(id string) {
	if g == nil {
		return
	}
	if _, ok := g.repos[id]; ok {
		g.mark(id)
		return
	}
	g.markAll()
}

// run recomputes marked repositories until ctx is done.
func (g *gate) run(ctx context.Context) error {
	select {
	case <-g.mirror.Started():
	case <-ctx.Done():
		return nil
	}
	// Subscribe before the first recompute: a change seen meanwhile is
	// then not lost.
	events := g.mirror.Subscribe(ctx)
	for id := range g.repos {
		g.mark(id)
	}
	first := true
	failures := 0
	failing := map[string]bool{} // repositories to retry
	var retry <-chan time.Time
	for {
		g.mu.Lock()
		todo := g.dirty
		g.dirty = map[string]bool{}
		g.mu.Unlock()
		failed := false
		for id := range todo {
			if err := g.settle(ctx, id); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				failed, failing[id] = true, true
				g.log.Warn("gate: could not recompute advertised branches; retrying", "repo", id, "err", err)
				continue
			}
			delete(failing, id)
		}
		if first {
			first = false
			close(g.ready)
		}
		switch {
		case len(failing) == 0:
			failures, retry = 0, nil
		case failed:
			failures++
			retry = time.After(min(g.retryMin<<min(failures-1, 10), g.retryMax))
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			g.mark(ev.Repo)
		case <-g.wake:
		case <-retry:
			retry = nil
			for id := range failing {
				g.mark(id)
			}
		}
	}
}

// settle recomputes every gated branch of repository id and moves those
// whose advertised revision changes.
func (g *gate) settle(ctx context.Context, id string) error {
	rc := g.repos[id]
	tips, err := g.mirror.RefTips(ctx, rc.URL)
	if errors.Is(err, gitmirror.ErrNotReady) {
		return nil // never cloned: nothing is served yet
	}
	if err != nil {
		return err
	}
	adv, err := g.mirror.Advertised(ctx, rc.URL)
	if err != nil {
		return err
	}
	upstream := map[string]string{}
	for _, t := range tips {
		upstream[t.Name] = t.Object
	}
	current := map[string]string{}
	for _, a := range adv {
		current[a.Name] = a.Object
	}
	states := map[string]string{}
	for _, r := range g.sync.Status().Repos {
		if r.Repo == id {
			for _, rv := range r.Revisions {
				states[rv.Revision] = rv.State
			}
		}
	}
	var errs []error
	for _, ref := range gatedBranches(rc) {
		want, err := g.choose(ctx, rc, upstream[ref], current[ref], states)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ref, err))
			continue
		}
		if want == current[ref] {
			continue
		}
		if err := g.mirror.SetReady(ctx, rc.URL, ref, want); err != nil && !errors.Is(err, gitmirror.ErrBranchGone) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// choose returns the revision to advertise for a branch whose upstream
// tip is tip and which advertises cur now ("" for none).
func (g *gate) choose(ctx context.Context, rc config.Repository, tip, cur string, states map[string]string) (string, error) {
	if tip == "" {
		return "", nil // deleted upstream: the mirror withdraws it
	}
	hist, err := g.mirror.FirstParents(ctx, rc.URL, tip, rc.KeepRevisions)
	if err != nil {
		return "", err
	}
	for _, sha := range hist {
		// The advertised revision was judged when it was advertised: it
		// stays on its bundle alone, so that a revision whose git
		// dependencies or LFS objects went missing since (a data dir from
		// before the gate checked them) is not passed over for an older
		// one.
		check := g.deployable
		if sha == cur {
			check = g.complete
		}
		ok, err := check(ctx, rc.URL, sha, states)
		if err != nil {
			return "", err
		}
		if ok {
			return sha, nil
		}
	}
	if cur == "" {
		return "", nil
	}
	ok, err := g.complete(ctx, rc.URL, cur, states)
	if err != nil || !ok {
		return "", err
	}
	return cur, nil
}

// complete trusts sync's state when it says complete, and otherwise asks
// the registry (after a restart sync has not looked yet; older revisions
// may be complete from before, or imported from a file).
func (g *gate) complete(ctx context.Context, url, sha string, states map[string]string) (bool, error) {
	switch states[sha] {
	case syncer.StateComplete:
		return true, nil
	case syncer.StateSyncing, syncer.StateNoBundle:
		// The bundle index is written last: not there while these hold.
		return false, nil
	}
	return g.sync.BundleComplete(ctx, url, sha)
}

// deployable reports whether a revision not advertised yet can deploy
// from the site alone: its bundle is complete, the mirror holds every git
// dependency (submodule and remote base commits) the bundle records, and
// every LFS object its own tree and those dependency commits' trees point
// at is in the site's LFS store (lfsReady), as verify checks them. A
// revision held back for its dependencies is looked at again when the
// mirror fetches dependency commits (markAll), one held back for its LFS
// objects when the LFS store brings objects of its repository or of a
// dependency aboard (lfsFetched). The revision advertised now stays while
// its bundle is complete (choose): withdrawing what Argo CD runs would
// only turn it into a ComparisonError.
func (g *gate) deployable(ctx context.Context, url, sha string, states map[string]string) (bool, error) {
	if ok, err := g.complete(ctx, url, sha, states); err != nil || !ok {
		return false, err
	}
	deps, err := g.sync.GitDeps(ctx, url, sha)
	if err != nil {
		return false, err
	}
	missing, err := g.sync.GitDepsMissing(ctx, deps)
	if err != nil {
		return false, err
	}
	if len(missing) > 0 {
		g.log.Debug("gate: revision waits for git dependencies", "repo", url, "revision", sha, "missing", len(missing), "first", missing[0])
		return false, nil
	}
	if ok, err := g.lfsReady(ctx, url, sha); err != nil || !ok {
		return false, err
	}
	// The LFS objects of its submodule and remote base commits, as
	// verify checks them.
	commits, err := bundle.DistinctCommits(deps)
	if err != nil {
		return false, err
	}
	for _, c := range commits {
		if ok, err := g.lfsReady(ctx, c.ID, c.Dep.Commit); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// lfsReady reports whether every LFS object commit sha's tree points at
// (in repository url, configured or a git dependency: URL or mirror id)
// is on site, as the LFS store's revision report (lfs.Mirror.Revision)
// finds them: the objects `ballast verify` checks for the revision
// itself. Objects only other revisions need (the report's
// HistoryMissing) do not hold it back: a branch is not withdrawn for what
// it does not use. A revision with a malformed pointer is not ready:
// verify fails it whatever arrives, so it is never advertised (the
// revision advertised now stays, choose). A site without an LFS store, or
// a repository it does not keep, is ready; a revision without pointers
// costs one cached scan of its tree's small files.
func (g *gate) lfsReady(ctx context.Context, url, sha string) (bool, error) {
	if g.lfs == nil {
		return true, nil
	}
	rep, err := g.lfs.Revision(ctx, url, sha)
	if errors.Is(err, gitmirror.ErrUnknownRepo) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("LFS objects of %s: %w", sha, err)
	}
	switch {
	case len(rep.Malformed) > 0:
		g.log.Debug("gate: revision has malformed LFS pointers", "repo", url, "revision", sha,
			"malformed", len(rep.Malformed), "first", rep.Malformed[0].Path)
		return false, nil
	case len(rep.Missing) > 0:
		g.log.Debug("gate: revision waits for LFS objects", "repo", url, "revision", sha,
			"missing", len(rep.Missing), "first", rep.Missing[0].Path)
		return false, nil
	}
	return true, nil
}
