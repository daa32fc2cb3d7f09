package gitmirror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

// Moving refs of dependency repositories. A remote base pinned by a branch
// or a tag (`?ref=main`) is fetched by kustomize by that name, so the
// mirror can advertise one commit per ref while every kept revision of the
// app repository recorded its own. Which one is not the mirror's policy:
// the syncer points each ref at the commit of the revision that owns it
// (the revision being activated, then the deployed one, then the newest
// of the tracked tip; docs/mirror.md, "Moving refs"), through
// PointGitDepRefs. The choice is persisted in .gitdeps.json with the
// needs (temp file, fsync, rename) before any git ref moves; a kill in
// between is finished by the next pass (fetchNeeds writes every ref the
// file names).

// DepRefMove is one dependency ref PointGitDepRefs re-pointed.
type DepRefMove struct {
	Repo string `json:"repo"` // dependency repository id
	Ref  string `json:"ref"`  // as the remote base names it
	From string `json:"from"` // commit it was advertised at before ("" when new)
	To   string `json:"to"`
}

// PointGitDepRefs points the ref of every dependency of ds that names one
// (Ref set and not its Commit) at that dependency's Commit, recording the
// commit as a need as NeedGitDeps does. Later entries of ds do not move a
// ref an earlier entry named. It returns once the choice is on disk and
// every moved ref whose commit is present is advertised, unless a fetch
// holds that repository for longer than applyLockWait (then the pass
// after the fetch moves it); a ref whose commit is still missing keeps
// advertising its old commit until a pass fetched the new one. Dependencies in a configured repository (mirrored
// whole, its refs the upstream's) are left alone. Bad URLs, SHAs or refs
// are errors and nothing of the call is recorded.
func (m *Mirror) PointGitDepRefs(ctx context.Context, ds []Dep) ([]DepRefMove, error) {
	if err := checkDeps("", "", ds); err != nil {
		return nil, err
	}
	d := m.deps
	named := map[string]bool{}
	var moves []DepRefMove
	touched := map[string]*repo{}
	for _, dp := range ds {
		if dp.Ref == "" || dp.Ref == dp.Commit {
			continue
		}
		id, err := d.add(dp.URL, dp.Commit, "")
		if err != nil {
			return moves, fmt.Errorf("gitmirror: %w", err)
		}
		key := strings.ToLower(id)
		if named[key+"\x00"+dp.Ref] {
			continue
		}
		named[key+"\x00"+dp.Ref] = true
		d.mu.Lock()
		n, r := d.needs[key], d.repos[key]
		if n == nil || r == nil {
			d.mu.Unlock()
			continue // a configured repository
		}
		if n.Refs == nil {
			n.Refs = map[string]string{}
		}
		if old := n.Refs[dp.Ref]; old != dp.Commit {
			n.Refs[dp.Ref] = dp.Commit
			moves = append(moves, DepRefMove{Repo: id, Ref: dp.Ref, From: old, To: dp.Commit})
			touched[key] = r
		}
		d.mu.Unlock()
	}
	if len(moves) == 0 {
		return nil, ctx.Err()
	}
	if err := d.save(); err != nil {
		return nil, fmt.Errorf("gitmirror: save dependencies: %w", err)
	}
	keys := make([]string, 0, len(touched))
	for k := range touched {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		if err := d.applyRefs(ctx, touched[k]); err != nil {
			errs = append(errs, err)
		}
	}
	d.wake()
	if err := errors.Join(errs...); err != nil {
		return moves, fmt.Errorf("gitmirror: %w", err)
	}
	return moves, nil
}

// applyLockWait bounds how long PointGitDepRefs waits for a dependency
// repository a fetch holds: the caller holds the syncer's state lock (an
// activation waits on it), and a fetch over a slow link takes minutes.
const applyLockWait = 2 * time.Second

// applyRefs writes the recorded refs of a dependency repository whose
// commits are present, in one ref transaction, without the link. A
// repository not made yet, or busy with a fetch for longer than
// applyLockWait, is left to the next pass (woken by the caller), which
// writes every recorded ref.
func (d *deps) applyRefs(ctx context.Context, r *repo) error {
	if err := d.m.ensureDirs(); err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, applyLockWait)
	lk, err := lockFile(lctx, r.lockPath)
	cancel()
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			d.m.log.Info("git mirror: dependency repository busy; its refs move after the fetch", "repo", r.id)
			return nil
		}
		return err
	}
	defer lk.unlock()
	if _, err := os.Stat(r.dir); err != nil {
		return nil
	}
	d.mu.Lock()
	refs := map[string]string{}
	for k, v := range d.needs[strings.ToLower(r.id)].Refs {
		refs[k] = v
	}
	d.mu.Unlock()
	have, err := listRefs(ctx, r.dir, "refs/")
	if err != nil {
		return fmt.Errorf("%s: %w", r.id, err)
	}
	var lines []string
	for ref, c := range refs {
		full := d.refName(ctx, r, ref)
		if have[full] == c {
			continue
		}
		if _, err := gitIn(ctx, r.dir, "cat-file", "-e", c+"^{commit}"); err != nil {
			continue // not fetched yet: the pass that fetches it points the ref
		}
		lines = append(lines, "update "+full+" "+c)
		if have[refKeepPrefix+c] != c {
			lines = append(lines, "update "+refKeepPrefix+c+" "+c)
		}
	}
	sort.Strings(lines)
	if err := updateRefs(ctx, r.dir, lines); err != nil {
		return fmt.Errorf("%s: %w", r.id, err)
	}
	return nil
}

var errBadRef = errors.New("bad ref")

// DepRef is what a fetch of a ref by name from the mirror gets, and what
// the mirror recorded for it.
type DepRef struct {
	Repo string `json:"repo"`
	Ref  string `json:"ref"` // as asked
	// Name is the full ref a `git fetch <url> <ref>` from the mirror
	// resolves Ref to ("" when none); Commit the commit it peels to.
	Name   string `json:"name,omitempty"`
	Commit string `json:"commit,omitempty"`
	// Recorded is the commit the mirror's dependency state points the
	// ref at ("" for a configured repository: its refs are upstream's).
	Recorded string `json:"recorded,omitempty"`
	// Configured is set for a repository of the edge config, mirrored
	// whole: its refs follow the upstream and are never re-pointed.
	Configured bool `json:"configured,omitempty"`
}

// ResolveDepRef tells what a client fetching ref by name from the
// mirror's copy of repository idOrURL (a dependency or a configured
// repository) gets: git's rules for a short name (refs/<ref>, then
// refs/tags/, refs/heads/, refs/remotes/), hidden refs left out. A ref
// the mirror does not advertise has an empty Name. An unknown repository
// is an ErrUnknownRepo error; one not fetched yet ErrNotReady.
func (m *Mirror) ResolveDepRef(ctx context.Context, idOrURL, ref string) (DepRef, error) {
	if !validDepRef(ref) || strings.HasPrefix(ref, "ballast/") {
		return DepRef{}, fmt.Errorf("gitmirror: %w %q", errBadRef, trim(ref))
	}
	r, err := m.lookup(idOrURL)
	if err != nil {
		return DepRef{}, err
	}
	_, configured := m.byKey[strings.ToLower(r.id)]
	out := DepRef{Repo: r.id, Ref: ref, Configured: configured}
	d := m.deps
	d.mu.Lock()
	if n := d.needs[strings.ToLower(r.id)]; n != nil && d.repos[strings.ToLower(r.id)] == r {
		out.Recorded = n.Refs[ref]
	}
	d.mu.Unlock()
	if !r.isReady() {
		return out, ErrNotReady
	}
	cands := []string{ref}
	if !strings.HasPrefix(ref, "refs/") {
		cands = []string{"refs/" + ref, "refs/tags/" + ref, "refs/heads/" + ref, "refs/remotes/" + ref, "refs/remotes/" + ref + "/HEAD"}
	}
	for _, c := range cands {
		if strings.HasPrefix(c, "refs/ballast/") {
			continue
		}
		if _, err := gitIn(ctx, r.dir, "rev-parse", "-q", "--verify", c); err != nil {
			continue
		}
		sha, err := gitIn(ctx, r.dir, "rev-parse", "-q", "--verify", c+"^{commit}")
		if err != nil {
			return out, fmt.Errorf("gitmirror: %s: %s does not name a commit", r.id, c)
		}
		out.Name, out.Commit = c, strings.TrimSpace(string(sha))
		return out, nil
	}
	return out, ctx.Err()
}

// serveDepRef answers GET /api/v1/gitdeps/ref?repo=<id>&ref=<ref>: 200
// with a DepRef (Name empty when the mirror does not advertise the ref),
// 404 for a repository the mirror does not hold, 400 for a bad ref, 503
// with Retry-After while every serving slot (MaxConcurrentRequests) stays
// taken for the request timeout.
func (m *Mirror) serveDepRef(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	repo, ref := q.Get("repo"), q.Get("ref")
	if repo == "" || ref == "" || len(repo) > 1024 || len(ref) > 1024 {
		apiError(w, http.StatusBadRequest, "want ?repo=<id>&ref=<ref>")
		return
	}
	// Anonymous and a few git processes each: served within the same
	// concurrency bound as git's own requests.
	ctx, cancel := context.WithTimeout(req.Context(), m.opts.RequestTimeout)
	defer cancel()
	select {
	case m.sem <- struct{}{}:
		defer func() { <-m.sem }()
	case <-ctx.Done():
		w.Header().Set("Retry-After", "10")
		apiError(w, http.StatusServiceUnavailable, "mirror busy")
		return
	}
	dr, err := m.ResolveDepRef(ctx, repo, ref)
	switch {
	case IsUnknownRepo(err):
		apiError(w, http.StatusNotFound, "repository not mirrored")
	case errors.Is(err, ErrNotReady):
		apiError(w, http.StatusNotFound, "repository not mirrored yet")
	case errors.Is(err, errBadRef):
		apiError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		apiError(w, http.StatusInternalServerError, "ref lookup failed")
		m.log.Warn("git mirror: dependency ref lookup failed", "repo", repo, "ref", ref, "err", err)
	default:
		writeAPIJSON(w, http.StatusOK, dr)
	}
}
