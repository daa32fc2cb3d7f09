package gitmirror

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// A gated repository (Upstream.Gated) keeps the upstream's branches under
// the hidden refUpstreamHeads namespace, where fetches write them, and
// serves refs/heads/ as a view of them: branches that are not gated follow
// the upstream after every fetch; a gated branch shows only what SetReady
// last set (a revision whose bundle is complete at the edge) and is not
// advertised until then. Tags are fetched and served as usual.
//
// The mirror knows nothing of bundles: whoever decides readiness (the edge
// daemon) calls SetReady.

// refUpstreamHeads holds a gated repository's upstream branch tips. Hidden
// from clients (uploadpack.hideRefs covers refs/ballast), fetchable by SHA.
const refUpstreamHeads = "refs/ballast/upstream/heads/"

// gatedConfigKey records in a repository that its branches live under
// refUpstreamHeads, so that switching gate on or off migrates them once.
const gatedConfigKey = "ballast.gated"

// ErrNotGated is returned by SetReady for a repository or branch that is
// not gated.
var ErrNotGated = errors.New("branch is not gated")

// ErrBranchGone is returned by SetReady when the upstream no longer has
// the branch: a deleted branch is not advertised again.
var ErrBranchGone = errors.New("branch not present upstream")

func (r *repo) isGated() bool { return len(r.gated) > 0 }

// refSpecs are the fetch refspecs of this repository.
func (r *repo) refSpecs() []string {
	if r.isGated() {
		return []string{"+refs/heads/*:" + refUpstreamHeads + "*", "+refs/tags/*:refs/tags/*"}
	}
	return refSpecs
}

// validateGatedRef accepts a plain branch name under refs/heads/. The rules
// are a subset of git check-ref-format's, enough that the name is safe in
// an update-ref line and a ref pattern.
func validateGatedRef(name string) error {
	rest, ok := strings.CutPrefix(name, "refs/heads/")
	if !ok || rest == "" {
		return fmt.Errorf("gated ref %q: only branches (refs/heads/…) can be gated", name)
	}
	if strings.ContainsAny(rest, " \t\r\n\x00\x7f~^:?*[\\") || strings.Contains(rest, "..") ||
		strings.Contains(rest, "//") || strings.Contains(rest, "@{") || strings.HasSuffix(rest, "/") ||
		strings.HasSuffix(rest, ".lock") || strings.HasSuffix(rest, ".") || strings.HasPrefix(rest, "/") {
		return fmt.Errorf("gated ref %q: not a valid branch name", name)
	}
	for _, seg := range strings.Split(rest, "/") {
		if strings.HasPrefix(seg, ".") {
			return fmt.Errorf("gated ref %q: not a valid branch name", name)
		}
	}
	return nil
}

// upstreamRefs lists the upstream's branches and tags as the repository at
// dir holds them, under their upstream names (refs/heads/…, refs/tags/…),
// sorted by name. For a gated repository the branches are read from the
// hidden namespace, not from what is served.
func (r *repo) upstreamRefs(ctx context.Context, dir string) ([]Ref, error) {
	return upstreamRefsIn(ctx, dir, r.isGated())
}

// upstreamRefsIn is upstreamRefs for a repository known by path only.
func upstreamRefsIn(ctx context.Context, dir string, gated bool) ([]Ref, error) {
	if !gated {
		return localRefs(ctx, dir)
	}
	out, err := gitIn(ctx, dir, "for-each-ref", forEachRefFormat, refUpstreamHeads, "refs/tags/")
	if err != nil {
		return nil, err
	}
	refs, err := parseForEachRef(out)
	if err != nil {
		return nil, err
	}
	for i := range refs {
		if b, ok := strings.CutPrefix(refs[i].Name, refUpstreamHeads); ok {
			refs[i].Name = "refs/heads/" + b
		}
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].Name < refs[j].Name })
	return refs, nil
}

// servedBranches lists refs/heads/ of the repository at dir: name → object.
func servedBranches(ctx context.Context, dir string) (map[string]string, error) {
	return listRefs(ctx, dir, "refs/heads/")
}

// publishBranches brings the served branches of a gated repository at dir
// in line with its upstream branches, in one transaction: branches that are
// not gated follow the upstream; a gated branch the upstream deleted is
// withdrawn; a gated branch the upstream still has keeps what SetReady set.
// It runs after every fetch and at start (a crash between the two redoes it).
func (r *repo) publishBranches(ctx context.Context, dir string) error {
	if !r.isGated() {
		return nil
	}
	r.gateMu.Lock()
	defer r.gateMu.Unlock()
	up, err := r.upstreamRefs(ctx, dir)
	if err != nil {
		return err
	}
	upstream := map[string]string{}
	for _, ref := range up {
		if strings.HasPrefix(ref.Name, "refs/heads/") {
			upstream[ref.Name] = ref.Object
		}
	}
	served, err := servedBranches(ctx, dir)
	if err != nil {
		return err
	}
	var lines []string
	for name, obj := range upstream {
		if !r.gated[name] && served[name] != obj {
			lines = append(lines, "update "+name+" "+obj)
		}
	}
	for name, obj := range served {
		if _, ok := upstream[name]; !ok {
			lines = append(lines, "delete "+name+" "+obj)
			if r.gated[name] {
				r.m.log.Info("git mirror: gated branch deleted upstream; no longer advertised", "repo", r.id, "ref", name)
			}
		}
	}
	if err := applyRefLines(ctx, dir, lines); err != nil {
		return fmt.Errorf("publish branches: %w", err)
	}
	if dir == r.dir {
		return r.loadAdvertised(ctx)
	}
	return nil
}

// migrateGate moves an existing repository's branches in or out of the
// hidden namespace when gating was switched on or off in the configuration.
// Switched on, the gated branches are withdrawn until SetReady: what they
// pointed at was never judged ready. Idempotent, so a crash half-way redoes it.
func (r *repo) migrateGate(ctx context.Context) error {
	out, err := r.git(ctx, "config", "--get", gatedConfigKey)
	if err != nil && exitCode(err) != 1 {
		return fmt.Errorf("read %s: %w", gatedConfigKey, err)
	}
	wasGated := strings.TrimSpace(string(out)) == "true"
	if wasGated == r.isGated() {
		return nil
	}
	served, err := servedBranches(ctx, r.dir)
	if err != nil {
		return err
	}
	hiddenOut, err := r.git(ctx, "for-each-ref", "--format=%(objectname) %(refname)", refUpstreamHeads)
	if err != nil {
		return err
	}
	hidden := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(hiddenOut)), "\n") {
		if obj, name, ok := strings.Cut(line, " "); ok {
			hidden[strings.TrimPrefix(name, refUpstreamHeads)] = obj
		}
	}
	var lines []string
	if r.isGated() {
		for name, obj := range served {
			lines = append(lines, "update "+refUpstreamHeads+strings.TrimPrefix(name, "refs/heads/")+" "+obj)
			if r.gated[name] {
				lines = append(lines, "delete "+name+" "+obj)
			}
		}
	} else {
		// Back to a plain mirror: serve the upstream tips again.
		for b, obj := range hidden {
			lines = append(lines, "update refs/heads/"+b+" "+obj, "delete "+refUpstreamHeads+b+" "+obj)
		}
		for name, obj := range served {
			if _, ok := hidden[strings.TrimPrefix(name, "refs/heads/")]; !ok {
				lines = append(lines, "delete "+name+" "+obj)
			}
		}
	}
	sort.Strings(lines)
	if err := updateRefs(ctx, r.dir, lines); err != nil {
		return fmt.Errorf("migrate gated branches: %w", err)
	}
	if r.isGated() {
		_, err = r.git(ctx, "config", gatedConfigKey, "true")
	} else {
		_, err = r.git(ctx, "config", "--unset-all", gatedConfigKey)
	}
	if err != nil {
		return fmt.Errorf("record %s: %w", gatedConfigKey, err)
	}
	r.m.log.Info("git mirror: gate switched", "repo", r.id, "gated", r.isGated())
	return nil
}

// carryAdvertised copies the served gated branches of the (broken)
// repository into a fresh clone at into, each whose commit the clone holds,
// so a re-clone does not withdraw what was ready. Best effort: the gate
// recomputes after the clone anyway.
func (r *repo) carryAdvertised(ctx context.Context, into string) {
	served, err := servedBranches(ctx, r.dir)
	if err != nil {
		return
	}
	var lines []string
	for name, obj := range served {
		if !r.gated[name] {
			continue
		}
		if _, err := gitIn(ctx, into, "cat-file", "-e", obj+"^{commit}"); err == nil {
			lines = append(lines, "update "+name+" "+obj)
		}
	}
	sort.Strings(lines)
	if err := updateRefs(ctx, into, lines); err != nil {
		r.m.log.Warn("git mirror: could not carry gated branches over from the broken copy", "repo", r.id, "err", err)
	}
}

// loadAdvertised refreshes the cached served values of the gated branches.
func (r *repo) loadAdvertised(ctx context.Context) error {
	served, err := servedBranches(ctx, r.dir)
	if err != nil {
		return err
	}
	adv := map[string]string{}
	for name := range r.gated {
		if obj, ok := served[name]; ok {
			adv[name] = obj
		}
	}
	r.mu.Lock()
	r.advertised = adv
	r.mu.Unlock()
	return nil
}

// advertisedRefs returns the cached served gated branches, sorted.
func (r *repo) advertisedRefs() []Ref {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Ref, 0, len(r.advertised))
	for name, obj := range r.advertised {
		out = append(out, Ref{Name: name, Object: obj, Commit: obj})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Advertised returns what a gated repository serves for its gated branches
// (a branch not advertised is absent), sorted by name. It is empty for a
// repository that is not gated. Sync keeps these revisions' bundles:
// Argo CD may deploy them at any moment.
func (m *Mirror) Advertised(ctx context.Context, idOrURL string) ([]Ref, error) {
	r, err := m.lookup(idOrURL)
	if err != nil {
		return nil, err
	}
	if !r.isGated() || !r.isReady() {
		return nil, nil
	}
	if err := r.loadAdvertised(ctx); err != nil {
		return nil, err
	}
	return r.advertisedRefs(), nil
}

// Gated returns the gated branches of a repository (nil if it is not
// gated), sorted.
func (m *Mirror) Gated(idOrURL string) ([]string, error) {
	r, err := m.lookup(idOrURL)
	if err != nil {
		return nil, err
	}
	var out []string
	for name := range r.gated {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

// SetReady makes a gated repository advertise branch ref at commit sha, or
// withdraw it when sha is "". The commit must be in the mirror and the
// upstream must still have the branch. The update is one atomic,
// fsynced ref transaction: clients see the old or the new value, also
// across a crash. It returns quickly: it never waits for a fetch.
func (m *Mirror) SetReady(ctx context.Context, idOrURL, ref, sha string) error {
	r, err := m.lookup(idOrURL)
	if err != nil {
		return err
	}
	if !r.gated[ref] {
		return fmt.Errorf("%s %s: %w", r.id, trim(ref), ErrNotGated)
	}
	if !r.isReady() {
		return ErrNotReady
	}
	sha = strings.ToLower(sha)
	if sha != "" {
		if !isHex(sha) {
			return fmt.Errorf("commit %q: want a full hex object name", trim(sha))
		}
		ok, err := m.HasCommit(ctx, r.id, sha)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("set %s of %s to %s: commit not in the mirror", ref, r.id, sha)
		}
	}
	r.gateMu.Lock()
	defer r.gateMu.Unlock()
	out, err := r.git(ctx, "for-each-ref", "--format=%(objectname) %(refname)", ref, refUpstreamHeads+strings.TrimPrefix(ref, "refs/heads/"))
	if err != nil {
		return err
	}
	var cur, tip string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		obj, name, _ := strings.Cut(line, " ")
		switch name {
		case ref:
			cur = obj
		case refUpstreamHeads + strings.TrimPrefix(ref, "refs/heads/"):
			tip = obj
		}
	}
	if sha != "" && tip == "" {
		return fmt.Errorf("%s %s: %w", r.id, ref, ErrBranchGone)
	}
	if cur == sha {
		return nil
	}
	var line string
	switch {
	case sha == "":
		line = "delete " + ref + " " + cur
	case cur == "":
		line = "create " + ref + " " + sha
	default:
		line = "update " + ref + " " + sha + " " + cur
	}
	if err := updateRefs(ctx, r.dir, []string{line}); err != nil {
		return fmt.Errorf("set %s of %s: %w", ref, r.id, err)
	}
	r.mu.Lock()
	if r.advertised == nil {
		r.advertised = map[string]string{}
	}
	if sha == "" {
		delete(r.advertised, ref)
	} else {
		r.advertised[ref] = sha
	}
	r.mu.Unlock()
	if sha == "" {
		m.log.Info("git mirror: gated branch withdrawn", "repo", r.id, "ref", ref, "was", cur)
	} else {
		m.log.Info("git mirror: gated branch advertised", "repo", r.id, "ref", ref, "revision", sha, "was", cur, "upstream", tip)
	}
	return nil
}
